// Package testcluster starts real certvaultd processes on 127.0.0.1 for
// end-to-end tests and benchmarks: it builds the binaries once, bootstraps
// a node, joins others with a join token, and can kill, stop, pause
// (SIGSTOP) and restart them. It fakes nothing; it is test support, not part of any binary.
package testcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// RaftTimeout is the --raft-timeout of every node the tests start (Options
// ExtraArgs may give another). It is twice certvaultd's default: the
// suite must pass on a 2-core machine beside two CPU hogs (make
// test-busy), where -race nodes missed 1 s heartbeats, stepped down and
// failed requests that the test was not about.
const RaftTimeout = 2 * time.Second

// Binaries builds certvaultd and certvault (with -race when the test
// binary has it) and certvault-agent (static, CGO_ENABLED=0) once per
// process and returns the paths of the first two (AgentBinary gives the
// third).
func Binaries(t testing.TB) (daemon, cli string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "certvault-bin-")
		if buildErr != nil {
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		for _, b := range []string{"certvaultd", "certvault", "certvault-agent", "azapp"} {
			args := []string{"build", "-o", filepath.Join(binDir, b)}
			if raceEnabled && b != "certvault-agent" && b != "azapp" {
				args = append(args, "-race")
			}
			if b == "azapp" {
				args = append(args, "./test/azapp")
			} else {
				args = append(args, "./cmd/"+b)
			}
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			if b == "certvault-agent" {
				// As shipped: a static binary.
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "certvaultd"), filepath.Join(binDir, "certvault")
}

// AgentBinary returns the path of the certvault-agent built by Binaries.
func AgentBinary(t testing.TB) string {
	Binaries(t)
	return filepath.Join(binDir, "certvault-agent")
}

// AzappBinary returns the path of test/azapp, an application written for
// Azure Key Vault (built by Binaries).
func AzappBinary(t testing.TB) string {
	Binaries(t)
	return filepath.Join(binDir, "azapp")
}

func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the module root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Node is one certvaultd process.
type Node struct {
	ID   string
	Dir  string
	API  string // host:port
	Raft string // host:port
	// Args are the flags the node was first started with; Restart reuses
	// them minus the join flags.
	Args []string

	t      testing.TB
	daemon string
	// prefix is the argv that runs the daemon (Options.Command); empty
	// runs it directly.
	prefix []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	log    *syncBuffer
}

// URL is the node's API URL.
func (n *Node) URL() string { return "https://" + n.API }

// PID returns the process ID of the node's current process (the latest
// start or restart), or 0 if it was never started. Benchmarks read the
// process's CPU time from /proc with it.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Log returns what the process wrote to stderr so far.
func (n *Node) Log() string { return n.log.String() }

// Running reports whether the process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start launches the process with args.
func (n *Node) start(args []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	argv := append(append(append([]string(nil), n.prefix...), n.daemon), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if n.log == nil {
		n.log = &syncBuffer{}
	}
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	n.cmd = cmd
	done := make(chan struct{})
	n.done = done
	go func() { cmd.Wait(); close(done) }()
	return nil
}

// Kill sends SIGKILL and waits for the process to die.
func (n *Node) Kill() {
	n.signal(syscall.SIGKILL)
}

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop() {
	n.signal(syscall.SIGTERM)
}

// Pause freezes the process with SIGSTOP, as a hung machine or one cut
// off by a partition: its sockets stay open, so the kernel still accepts
// connections to it, but nothing answers. It returns once the kernel
// reports the process stopped. Resume undoes it; Kill works on a paused
// process too.
func (n *Node) Pause() {
	n.t.Helper()
	if err := n.sendSignal(syscall.SIGSTOP); err != nil {
		n.t.Fatalf("pause %s: %v", n.ID, err)
	}
	n.waitState(true)
}

// Resume continues a paused process with SIGCONT and returns once it
// runs again.
func (n *Node) Resume() {
	n.t.Helper()
	if err := n.sendSignal(syscall.SIGCONT); err != nil {
		n.t.Fatalf("resume %s: %v", n.ID, err)
	}
	n.waitState(false)
}

// waitState polls /proc until the process is stopped (or no longer).
func (n *Node) waitState(stopped bool) {
	n.t.Helper()
	pid := n.PID()
	deadline := time.Now().Add(30 * time.Second)
	state := ""
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			n.t.Fatalf("read the state of %s: %v", n.ID, err)
		}
		// pid (comm) state ...: comm may hold spaces, so look after ')'.
		if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) {
			state = string(data[i+2])
		}
		if (state == "T") == stopped {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("waited 30s for %s to be stopped=%v: its process state is %q", n.ID, stopped, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sendSignal signals the current process without waiting for it.
func (n *Node) sendSignal(sig syscall.Signal) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("%s was never started", n.ID)
	}
	return cmd.Process.Signal(sig)
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped node again on its data directory.
func (n *Node) Restart() {
	n.t.Helper()
	var args []string
	for i := 0; i < len(n.Args); i++ {
		if n.Args[i] == "--join" || n.Args[i] == "--join-token" {
			i++
			continue
		}
		args = append(args, n.Args[i])
	}
	if err := n.start(args); err != nil {
		n.t.Fatal(err)
	}
}

// Cluster is a set of nodes that share a CA and a root token.
type Cluster struct {
	T      testing.TB
	Base   string
	Nodes  []*Node
	CACert string // path to the CA PEM
	Token  string // root token
	CLIBin string
	daemon string
}

// Options tune the nodes a cluster starts.
type Options struct {
	// ExtraArgs are added to every node's command line.
	ExtraArgs []string
	// DataDirs gives a node, by its ID (node1, node2, …), a data
	// directory of the test's choosing instead of one under the cluster's
	// temporary directory: a file system of its own, such as a small
	// tmpfs for a disk-full test. The directory may exist and be empty.
	// Mount it before Start: cleanups run last in, first out, so the
	// nodes are killed before the test's unmount runs.
	DataDirs map[string]string
	// Command, when set, returns the argv prefix that runs a node's
	// process, by its ID: e.g. ip netns exec NS, to start it in a network
	// namespace. The prefix must exec the daemon (keep its process ID),
	// so that signals reach the daemon itself. Restart uses it too.
	Command func(id string) []string
	// Addrs, when set, returns a node's API and raft listen addresses by
	// its ID (host:port, also what the node advertises) instead of free
	// ports on 127.0.0.1.
	Addrs func(id string) (api, raft string)
	// NodeArgs, when set, returns more flags for a node by its ID (after
	// ExtraArgs): e.g. a --pprof-listen address of its own.
	NodeArgs func(id string) []string
}

// Start bootstraps node 1 and joins n-1 more, waiting until every node is
// ready. Processes are killed when the test ends.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	daemon, cli := Binaries(t)
	c := &Cluster{T: t, Base: t.TempDir(), CLIBin: cli, daemon: daemon}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			nd.Kill()
		}
		c.sweepSecrets()
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("--- log of %s ---\n%s", nd.ID, tail(nd.Log(), 4000))
			}
		}
	})
	first := c.AddNode(opts, "", "")
	c.CACert = filepath.Join(first.Dir, "ca.pem")
	tok, err := os.ReadFile(filepath.Join(first.Dir, "root-token"))
	if err != nil {
		t.Fatalf("read root token: %v", err)
	}
	c.Token = strings.TrimSpace(string(tok))
	if n > 1 {
		out, errOut, code := c.CLI("cluster", "join-token", "--uses", fmt.Sprint(n-1))
		if code != 0 {
			t.Fatalf("join-token: %s %s", out, errOut)
		}
		join := strings.TrimSpace(out)
		for i := 1; i < n; i++ {
			c.AddNode(opts, first.URL(), join)
		}
	}
	c.WaitVoters(n)
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// AddNode starts a node: a bootstrap when joinURL is empty, else a join.
// It waits until the node is ready.
func (c *Cluster) AddNode(opts Options, joinURL, joinToken string) *Node {
	c.T.Helper()
	id := fmt.Sprintf("node%d", len(c.Nodes)+1)
	dir := filepath.Join(c.Base, id)
	if d := opts.DataDirs[id]; d != "" {
		dir = d
	}
	n := &Node{ID: id, Dir: dir, t: c.T, daemon: c.daemon}
	if opts.Addrs != nil {
		n.API, n.Raft = opts.Addrs(id)
	} else {
		n.API, n.Raft = FreeAddr(c.T), FreeAddr(c.T)
	}
	if opts.Command != nil {
		n.prefix = opts.Command(id)
	}
	// --config= reads no configuration file: a machine with the .deb
	// installed has /etc/certvault/certvaultd.yaml, which is not the test's.
	n.Args = []string{"--config=", "--data", n.Dir, "--node-id", id, "--listen", n.API, "--raft-listen", n.Raft, "--log-level", "warn", "--raft-timeout", RaftTimeout.String()}
	if joinURL != "" {
		n.Args = append(n.Args, "--join", joinURL, "--join-token", joinToken,
			"--seal-key-file", filepath.Join(c.Nodes[0].Dir, "seal.key"))
	}
	n.Args = append(n.Args, opts.ExtraArgs...)
	if opts.NodeArgs != nil {
		n.Args = append(n.Args, opts.NodeArgs(id)...)
	}
	c.Nodes = append(c.Nodes, n)
	if err := n.start(n.Args); err != nil {
		c.T.Fatal(err)
	}
	if joinURL == "" {
		c.waitFile(filepath.Join(n.Dir, "root-token"), n)
	}
	c.WaitReady(n)
	return n
}

func (c *Cluster) waitFile(path string, n *Node) {
	c.T.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if !n.Running() || time.Now().After(deadline) {
			c.T.Fatalf("%s never appeared; log of %s:\n%s", path, n.ID, n.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HTTPClient returns an HTTP client that trusts the cluster CA.
func (c *Cluster) HTTPClient() *http.Client {
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		c.T.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// WaitReady polls the node's /readyz until it answers 200.
func (c *Cluster) WaitReady(n *Node) {
	c.T.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var hc *http.Client
	for {
		if hc == nil && c.CACert != "" {
			hc = c.HTTPClient()
		} else if hc == nil {
			if _, err := os.Stat(filepath.Join(n.Dir, "ca.pem")); err == nil {
				c.CACert = filepath.Join(n.Dir, "ca.pem")
				hc = c.HTTPClient()
			}
		}
		if hc != nil {
			resp, err := hc.Get(n.URL() + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if !n.Running() {
			c.T.Fatalf("%s exited; log:\n%s", n.ID, n.Log())
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("%s not ready within 60s; log:\n%s", n.ID, tail(n.Log(), 4000))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Status is the cluster status as a node reports it.
type Status struct {
	Leader       string `json:"leader"`
	NodeID       string `json:"node_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// LastSnapshotIndex is the log index of the node's latest raft
	// snapshot, taken locally or installed from the leader.
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	Servers           []struct {
		ID       string `json:"id"`
		Address  string `json:"address"`
		Suffrage string `json:"suffrage"`
		State    string `json:"state"`
	} `json:"servers"`
}

// Status asks node n for the cluster status.
func (c *Cluster) Status(n *Node) (Status, error) {
	var st Status
	err := c.Client(n).Do(context.Background(), http.MethodGet, "/v1/sys/cluster/status", nil, &st)
	return st, err
}

// WaitVoters waits until a running node reports a leader and want voters.
func (c *Cluster) WaitVoters(want int) {
	c.T.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			st, err := c.Status(n)
			if err == nil && st.Leader != "" && len(st.Servers) == want {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.T.Fatalf("cluster did not reach %d voters with a leader within 60s", want)
}

// Leader returns the node that a running node reports as leader, waiting
// up to 30s for one, optionally excluding a node known to be dead.
func (c *Cluster) Leader() *Node {
	c.T.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			st, err := c.Status(n)
			if err != nil || st.Leader == "" {
				continue
			}
			for _, l := range c.Nodes {
				if l.ID == st.Leader && l.Running() {
					return l
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.T.Fatal("no running leader within 30s")
	return nil
}

// Client returns an API client for node n with the root token.
func (c *Cluster) Client(n *Node) *client.Client {
	cl, err := client.New(client.Config{Addr: n.URL(), Token: c.Token, CACert: c.CACert, Timeout: 15 * time.Second})
	if err != nil {
		c.T.Fatal(err)
	}
	return cl
}

// CLI runs the certvault CLI against node 1 (override with --addr in
// args) and returns stdout, stderr and the exit code.
func (c *Cluster) CLI(args ...string) (string, string, int) {
	return c.CLIAt(c.Nodes[0], args...)
}

// CLIAt runs the CLI against node n.
func (c *Cluster) CLIAt(n *Node, args ...string) (string, string, int) {
	c.T.Helper()
	cmd := exec.Command(c.CLIBin, args...)
	cmd.Env = append(os.Environ(), "CERTVAULT_ADDR="+n.URL(), "CERTVAULT_TOKEN="+c.Token, "CERTVAULT_CACERT="+c.CACert)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			c.T.Fatalf("run certvault: %v", err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// knownSecrets are secret values tests used (tokens, secret values, EAB
// keys); every cluster's logs and audit trails are searched for them when
// the cluster stops.
var knownSecrets struct {
	sync.Mutex
	values []string
}

// KnownSecret registers a secret value that must never appear in a node's
// log or audit trail.
func KnownSecret(v string) {
	if len(v) < 8 {
		return // too short to search for without false alarms
	}
	knownSecrets.Lock()
	knownSecrets.values = append(knownSecrets.values, v)
	knownSecrets.Unlock()
}

// tokenPattern matches any bearer or join token with its secret part.
var tokenPattern = regexp.MustCompile(`cv[taj]\.[0-9a-z]+\.[A-Za-z0-9_-]{20,}`)

// sweepSecrets fails the test when a node's log or any file of its audit
// trail holds a known secret value or anything shaped like a token.
func (c *Cluster) sweepSecrets() {
	knownSecrets.Lock()
	secrets := append([]string{c.Token}, knownSecrets.values...)
	knownSecrets.Unlock()
	check := func(where, text string) {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				c.T.Errorf("secret leak: %s contains a known secret value (%d characters, starting %q)", where, len(s), s[:4])
			}
		}
		if m := tokenPattern.FindString(text); m != "" {
			c.T.Errorf("secret leak: %s contains a token: %.12s...", where, m)
		}
	}
	for _, n := range c.Nodes {
		check("the log of "+n.ID, n.Log())
		filepath.WalkDir(filepath.Join(n.Dir, "audit"), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err == nil {
				check(path, string(data))
			}
			return nil
		})
	}
}
