package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
)

// TestBadInput checks that bad input gets a clear one-line error that
// names what to fix, and changes nothing. The subtests that start
// processes run in parallel: they wait on elections more than they
// compute.
func TestBadInput(t *testing.T) {
	t.Parallel()
	t.Run("Flags", testBadInputFlags)
	t.Run("DataDirNotWritable", testBadInputDataDir)
	t.Run("PortInUse", testBadInputPortInUse)
	t.Run("Join", testBadInputJoin)
	t.Run("SnapshotRestore", testBadInputSnapshotRestore)
	t.Run("API", testBadInputAPI)
	t.Run("StrictInput", testBadInputStrict)
}

func testBadInputFlags(t *testing.T) {
	daemon, cli := testcluster.Binaries(t)
	for _, tc := range []struct {
		name string
		bin  string
		args []string
		// want are the words the one error line must contain.
		want []string
		// hint: a parse error also points to --help.
		hint bool
	}{
		{"certvaultd unknown flag", daemon, []string{"--bogus-flag"}, []string{"unknown flag", "--bogus-flag"}, true},
		{"certvaultd stray argument", daemon, []string{"bootstrap"}, []string{"unexpected argument", "bootstrap"}, true},
		{"certvaultd bad log level", daemon, []string{"--log-level", "loud"}, []string{"--log-level", "loud", "debug, info, warn or error"}, false},
		{"certvaultd zero request deadline", daemon, []string{"--request-deadline", "0s"}, []string{"--request-deadline", "positive duration"}, false},
		{"certvaultd raft timeout too short", daemon, []string{"--raft-timeout", "10ms"}, []string{"--raft-timeout", "10ms", "100ms to 1m"}, false},
		{"certvaultd negative body read timeout", daemon, []string{"--body-read-timeout", "-1s"}, []string{"--body-read-timeout", "positive duration"}, false},
		{"certvaultd zero retention interval", daemon, []string{"--retention-interval", "0s"}, []string{"--retention-interval", "positive duration"}, false},
		{"certvault unknown flag", cli, []string{"--bogus"}, []string{"unknown flag", "--bogus"}, true},
		{"certvault unknown subcommand flag", cli, []string{"cluster", "status", "--bogus"}, []string{"unknown flag", "--bogus"}, true},
		{"certvault remove without ID", cli, []string{"cluster", "remove"}, []string{"accepts 1 arg", "received 0"}, true},
		{"certvault bad output format", cli, []string{"cluster", "status", "-o", "yaml"}, []string{"--output", "yaml", "table or json"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog := filepath.Base(tc.bin)
			_, stderr, code := biRun(t, tc.bin, tc.args...)
			if code != 2 {
				t.Fatalf("%s %v: got exit %d, want 2 (usage error); stderr:\n%s", prog, tc.args, code, stderr)
			}
			line := biErrorLine(t, stderr, prog+": ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not mention %q", line, w)
				}
			}
			// certvault points to the --help of the command that was called.
			path := []string{prog}
			for _, a := range tc.args {
				if tc.bin != cli || strings.HasPrefix(a, "-") {
					break
				}
				path = append(path, a)
			}
			if hint := "Run '" + strings.Join(path, " ") + " --help' for usage."; tc.hint && !strings.Contains(stderr, hint) {
				t.Errorf("stderr does not point to --help (%q):\n%s", hint, stderr)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Errorf("stderr has more than the error and the --help hint:\n%s", stderr)
			}
		})
	}
}

func testBadInputDataDir(t *testing.T) {
	daemon, _ := testcluster.Binaries(t)
	// We run as root, so permissions do not stop us: a data directory
	// under a regular file cannot be created by anyone.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(file, "sub")
	_, stderr, code := biRun(t, daemon, "--data", data, "--listen", testcluster.FreeAddr(t), "--raft-listen", testcluster.FreeAddr(t))
	if code != 1 {
		t.Fatalf("got exit %d, want 1; stderr:\n%s", code, stderr)
	}
	line := biErrorLine(t, stderr, "certvaultd: ")
	for _, w := range []string{"data directory", data, "cannot be created"} {
		if !strings.Contains(line, w) {
			t.Errorf("error line %q does not mention %q", line, w)
		}
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != "keep me" {
		t.Errorf("the file in the way changed: %q, %v", got, err)
	}
}

func testBadInputPortInUse(t *testing.T) {
	t.Parallel()
	daemon, _ := testcluster.Binaries(t)
	for _, tc := range []struct {
		flag string
	}{{"--listen"}, {"--raft-listen"}} {
		t.Run(tc.flag, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			addrs := map[string]string{
				"--listen":      testcluster.FreeAddr(t),
				"--raft-listen": testcluster.FreeAddr(t),
			}
			addrs[tc.flag] = busy.Addr().String()
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"--data", data, "--node-id", "n1", "--listen", addrs["--listen"], "--raft-listen", addrs["--raft-listen"]}
			start := time.Now()
			_, stderr, code := biRun(t, daemon, args...)
			if code != 1 {
				t.Fatalf("got exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v to give up on a busy port", d)
			}
			line := biErrorLine(t, stderr, "certvaultd: ")
			for _, w := range []string{busy.Addr().String(), "address already in use", tc.flag} {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not mention %q", line, w)
				}
			}
			// Nothing was written: no seal key, no identity, no raft state
			// that would make the next start take another path.
			if left := biFiles(t, data); len(left) > 0 {
				t.Errorf("the failed start left %v in the data directory", left)
			}
			// With the port freed, the same command line starts a node.
			busy.Close()
			biStartAndStop(t, daemon, data, args)
		})
	}
}

func testBadInputJoin(t *testing.T) {
	t.Parallel()
	daemon, _ := testcluster.Binaries(t)
	c := testcluster.Start(t, 1, testcluster.Options{})
	first := c.Nodes[0]
	biPutSecret(t, c, first, "join-sentinel", "before-the-joins")

	out, stderr, code := c.CLI("cluster", "join-token", "--uses", "1")
	if code != 0 {
		t.Fatalf("join-token: exit %d: %s", code, stderr)
	}
	token := strings.TrimSpace(out)
	parts := strings.Split(token, ".")
	if len(parts) != 4 {
		t.Fatalf("join token %q: want cvj.<id>.<secret>.<ca>", token)
	}
	otherSecret := make([]byte, 24)
	rand.Read(otherSecret)
	wrongSecret := strings.Join([]string{parts[0], parts[1], base64.RawURLEncoding.EncodeToString(otherSecret), parts[3]}, ".")

	goodSeal := filepath.Join(first.Dir, "seal.key")
	otherSeal := filepath.Join(t.TempDir(), "other-seal.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(otherSeal, []byte("certvault-seal-v1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	untouched := func(t *testing.T) {
		t.Helper()
		st, err := c.Status(first)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if len(st.Servers) != 1 || st.Leader != first.ID {
			t.Errorf("cluster changed: got %d servers, leader %q; want 1, %q", len(st.Servers), st.Leader, first.ID)
		}
		if got := biGetSecret(t, c, first, "join-sentinel"); got != "before-the-joins" {
			t.Errorf("join-sentinel: got %q, want %q", got, "before-the-joins")
		}
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, tc := range []struct {
		name, token, seal string
		// raft is the joiner's --raft-listen; "" picks a free port.
		raft string
		want []string
	}{
		{"wrong secret", wrongSecret, goodSeal, "", []string{"join", "join token is not valid"}},
		{"garbage token", "not-a-join-token", goodSeal, "", []string{"join token is not valid", "certvault cluster join-token"}},
		{"other seal key", token, otherSeal, "", []string{"join refused", otherSeal, "seal key"}},
		// A valid join that cannot run raft must fail before it asks the
		// cluster for anything.
		{"busy raft port", token, goodSeal, busy.Addr().String(), []string{busy.Addr().String(), "--raft-listen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "joiner")
			raftAddr := tc.raft
			if raftAddr == "" {
				raftAddr = testcluster.FreeAddr(t)
			}
			_, stderr, code := biRun(t, daemon, "--data", data, "--node-id", "joiner",
				"--listen", testcluster.FreeAddr(t), "--raft-listen", raftAddr,
				"--join", first.URL(), "--join-token", tc.token, "--seal-key-file", tc.seal)
			if code != 1 {
				t.Fatalf("got exit %d, want 1; stderr:\n%s", code, stderr)
			}
			line := biErrorLine(t, stderr, "certvaultd: ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not mention %q", line, w)
				}
			}
			if left := biFiles(t, data); len(left) > 0 {
				t.Errorf("the refused join left %v in its data directory", left)
			}
			untouched(t)
		})
	}

	// The server checks the seal proof too, for a joiner that skips the
	// check on its side.
	t.Run("forged seal proof", func(t *testing.T) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "forger"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		proof := make([]byte, 32)
		rand.Read(proof)
		body, err := json.Marshal(map[string]any{
			"token": token, "node_id": "forger", "api_addr": "https://127.0.0.1:1", "raft_addr": "127.0.0.1:1",
			"csr":   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
			"proof": proof,
		})
		if err != nil {
			t.Fatalf("marshal the join request: %v", err)
		}
		resp := biDo(t, c.HTTPClient(), http.MethodPost, first.URL()+"/v1/sys/cluster/join", "", body)
		code, msg := biAPIError(t, resp, http.StatusForbidden)
		if code != "Forbidden" || !strings.Contains(msg, "seal key") {
			t.Errorf("got %s %q, want Forbidden about the seal key", code, msg)
		}
		untouched(t)
	})

	// None of the refusals used the single-use token up: a node with the
	// cluster's seal key joins with it.
	second := c.AddNode(testcluster.Options{}, first.URL(), token)
	c.WaitVoters(2)
	if got := biGetSecret(t, c, second, "join-sentinel"); got != "before-the-joins" {
		t.Errorf("join-sentinel on %s: got %q, want %q", second.ID, got, "before-the-joins")
	}
}

func testBadInputSnapshotRestore(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 2, testcluster.Options{})
	leader := c.Leader()
	var follower *testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
		}
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.snap")

	biPutSecret(t, c, leader, "kept", "before-the-save")
	if _, stderr, code := c.CLIAt(leader, "cluster", "snapshot", "save", good); code != 0 {
		t.Fatalf("snapshot save: exit %d: %s", code, stderr)
	}
	snap, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	biPutSecret(t, c, leader, "kept", "after-the-save")
	biPutSecret(t, c, leader, "added", "after-the-save")

	// Snapshots of other clusters: one sealed with another key, one with
	// this cluster's seal key but its own CA.
	foreign := map[string]string{}
	for name, extra := range map[string][]string{
		"other seal key": nil,
		"other CA":       {"--seal-key-file", filepath.Join(c.Nodes[0].Dir, "seal.key")},
	} {
		other := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: extra})
		biPutSecret(t, other, other.Nodes[0], "kept", "from-another-cluster")
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".snap")
		if _, stderr, code := other.CLI("cluster", "snapshot", "save", path); code != 0 {
			t.Fatalf("snapshot save on the other cluster: exit %d: %s", code, stderr)
		}
		other.Nodes[0].Kill()
		foreign[name] = path
	}

	flipped := bytes.Clone(snap)
	flipped[len(flipped)/2] ^= 0x5a
	random := make([]byte, len(snap))
	rand.Read(random)
	for _, tc := range []struct {
		name string
		data []byte
		// file, if set, is restored instead of data.
		file string
		via  *testcluster.Node
		// want is what the error must say besides that nothing changed.
		want string
	}{
		{name: "truncated", data: snap[:len(snap)/2], via: leader},
		{name: "byte flipped", data: flipped, via: leader, want: "corrupt"},
		{name: "random", data: random, via: leader, want: "not a certvault snapshot"},
		{name: "empty", data: nil, via: leader, want: "not a certvault snapshot"},
		{name: "truncated through a follower", data: snap[:len(snap)-1], via: follower},
		{name: "byte flipped through a follower", data: flipped, via: follower, want: "corrupt"},
		{name: "other cluster's seal key", file: foreign["other seal key"], via: leader, want: "seal key"},
		{name: "other cluster's CA", file: foreign["other CA"], via: leader, want: "another CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.file
			if path == "" {
				path = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".snap")
				if err := os.WriteFile(path, tc.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, stderr, code := c.CLIAt(tc.via, "cluster", "snapshot", "restore", path, "--yes")
			if code != 1 {
				t.Fatalf("restore: got exit %d, want 1; stderr:\n%s", code, stderr)
			}
			line := biErrorLine(t, stderr, "certvault: ")
			for _, w := range []string{"snapshot refused", "nothing was changed", tc.want} {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not say %q", line, w)
				}
			}
			for _, n := range c.Nodes {
				for _, name := range []string{"kept", "added"} {
					if got := biGetSecret(t, c, n, name); got != "after-the-save" {
						t.Errorf("%s on %s: got %q, want %q (unchanged)", name, n.ID, got, "after-the-save")
					}
				}
			}
		})
	}

	restored := func(t *testing.T) {
		t.Helper()
		for _, n := range c.Nodes {
			if got := biGetSecret(t, c, n, "kept"); got != "before-the-save" {
				t.Errorf("kept on %s: got %q, want the saved %q", n.ID, got, "before-the-save")
			}
			err := c.Client(n).Do(context.Background(), http.MethodGet, "/secrets/added", nil, nil)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != "SecretNotFound" {
				t.Errorf("added on %s after the restore: got %v, want 404 SecretNotFound", n.ID, err)
			}
		}
	}
	t.Run("good", func(t *testing.T) {
		if _, stderr, code := c.CLIAt(leader, "cluster", "snapshot", "restore", good, "--yes"); code != 0 {
			t.Fatalf("restore: exit %d: %s", code, stderr)
		}
		restored(t)
	})
	t.Run("good through a follower", func(t *testing.T) {
		biPutSecret(t, c, leader, "kept", "after-the-first-restore")
		biPutSecret(t, c, leader, "added", "after-the-first-restore")
		if _, stderr, code := c.CLIAt(follower, "cluster", "snapshot", "restore", good, "--yes"); code != 0 {
			t.Fatalf("restore through %s: exit %d: %s", follower.ID, code, stderr)
		}
		restored(t)
	})
	// A vault bigger than the API's 1 MiB request limit still restores.
	t.Run("larger than 1 MiB", func(t *testing.T) {
		big := strings.Repeat("b", 700<<10)
		biPutSecret(t, c, leader, "big-1", big)
		biPutSecret(t, c, leader, "big-2", big)
		path := filepath.Join(dir, "big.snap")
		if _, stderr, code := c.CLIAt(leader, "cluster", "snapshot", "save", path); code != 0 {
			t.Fatalf("snapshot save: exit %d: %s", code, stderr)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() <= 1<<20 {
			t.Fatalf("snapshot: %v, %v; want more than 1 MiB", fi, err)
		}
		biPutSecret(t, c, leader, "big-1", "small")
		// Through the follower, so that both nodes' limits apply.
		if _, stderr, code := c.CLIAt(follower, "cluster", "snapshot", "restore", path, "--yes"); code != 0 {
			t.Fatalf("restore through %s: exit %d: %s", follower.ID, code, stderr)
		}
		for _, n := range c.Nodes {
			if got := biGetSecret(t, c, n, "big-1"); got != big {
				t.Errorf("big-1 on %s after the restore: got %d bytes, want the saved %d", n.ID, len(got), len(big))
			}
		}
	})
}

func testBadInputAPI(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	hc := c.HTTPClient()
	big, err := json.Marshal(map[string]string{"value": strings.Repeat("x", 1<<20)})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}

	for _, tc := range []struct {
		name         string
		method, path string
		token        string
		body         []byte
		status       int
		code         string
		// msg is a word the message must contain.
		msg string
	}{
		{"no token", http.MethodGet, "/secrets/x?api-version=7.6", "", nil, 401, "Unauthorized", "bearer token"},
		{"wrong token", http.MethodGet, "/secrets/x?api-version=7.6", "cvt.root.not-the-secret", nil, 401, "Unauthorized", "not valid"},
		{"no api-version", http.MethodGet, "/secrets/x", c.Token, nil, 400, "BadParameter", "api-version"},
		{"unknown api-version", http.MethodGet, "/secrets/x?api-version=1.0", c.Token, nil, 400, "BadParameter", `"1.0"`},
		{"bad secret name", http.MethodPut, "/secrets/bad_name!?api-version=7.6", c.Token, []byte(`{"value":"v"}`), 400, "BadParameter", "bad_name!"},
		{"malformed JSON", http.MethodPut, "/secrets/malformed?api-version=7.6", c.Token, []byte(`{"value": "v"`), 400, "BadParameter", "JSON"},
		{"empty body", http.MethodPut, "/secrets/empty?api-version=7.6", c.Token, nil, 400, "BadParameter", "empty"},
		{"body over 1 MiB", http.MethodPut, "/secrets/too-big?api-version=7.6", c.Token, big, 413, "RequestTooLarge", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := biDo(t, hc, tc.method, n.URL()+tc.path, tc.token, tc.body)
			challenge := resp.Header.Get("WWW-Authenticate")
			code, msg := biAPIError(t, resp, tc.status)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %s %q, want %s mentioning %q", code, msg, tc.code, tc.msg)
			}
			if tc.status == http.StatusUnauthorized {
				if !strings.HasPrefix(challenge, `Bearer authorization="https://`) || !strings.Contains(challenge, `resource="https://`+n.API+`"`) {
					t.Errorf("WWW-Authenticate: got %q, want Bearer authorization=\"https://...\" with resource=\"https://%s\"", challenge, n.API)
				}
			}
		})
	}

	// None of the refused writes stored anything.
	var list struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	if err := c.Client(n).Do(context.Background(), http.MethodGet, "/secrets", nil, &list); err != nil {
		t.Fatalf("list secrets: %v", err)
	}
	if len(list.Value) != 0 {
		t.Errorf("refused writes stored secrets: %+v", list.Value)
	}
}

// biRun runs a binary that must exit on its own, with no CERTVAULT_*
// environment, and returns its output and exit code.
func biRun(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTVAULT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not exit within 60s; stderr:\n%s", filepath.Base(bin), args, errOut.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", bin, err)
	}
	return out.String(), errOut.String(), code
}

// biErrorLine returns the one stderr line that starts with prefix (the
// program's error line; log lines do not start with it).
func biErrorLine(t *testing.T, stderr, prefix string) string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want exactly one line starting with %q, got %d; stderr:\n%s", prefix, len(lines), stderr)
	}
	return lines[0]
}

// biFiles lists what is under dir (relative paths), nothing if dir does
// not exist.
func biFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if p != dir {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				t.Fatalf("relative path: %v", err)
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// biStartAndStop starts certvaultd with args, waits until it has
// bootstrapped (the root token exists), then stops it with SIGTERM and
// expects a clean exit.
func biStartAndStop(t *testing.T, daemon, data string, args []string) {
	t.Helper()
	cmd := exec.Command(daemon, args...)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errOut, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(data, "root-token")); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("certvaultd exited (%v) instead of starting; output:\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("certvaultd did not bootstrap within 60s; output:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("certvaultd did not stop cleanly: %v; output:\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("certvaultd did not stop within 30s of SIGTERM")
	}
}

// biDo sends a raw request; token "" sends no Authorization header.
func biDo(t *testing.T, hc *http.Client, method, url, token string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// biAPIError checks that resp has the status and exactly Key Vault's
// error shape, {"error":{"code":"...","message":"..."}}, and returns the
// code and message.
func biAPIError(t *testing.T, resp *http.Response, status int) (code, msg string) {
	t.Helper()
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatalf("read the %d answer's body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != status {
		t.Fatalf("got status %d, want %d; body: %s", resp.StatusCode, status, body.String())
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(&body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body is not {\"error\":{\"code\":...,\"message\":...}} (%v): %s", err, body.String())
	}
	return e.Error.Code, e.Error.Message
}

func biPutSecret(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, name, value string) {
	t.Helper()
	testcluster.KnownSecret(value)
	if err := c.Client(n).Do(context.Background(), http.MethodPut, "/secrets/"+name, map[string]string{"value": value}, nil); err != nil {
		t.Fatalf("set %s on %s: %v", name, n.ID, err)
	}
}

func biGetSecret(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, name string) string {
	t.Helper()
	var s struct {
		Value string `json:"value"`
	}
	// A node that joined a moment ago may still be catching up: it
	// answers 503 (retry) until then, never a wrong answer.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Client(n).DoResponse(context.Background(), http.MethodGet, "/secrets/"+name, nil, &s)
		if err == nil {
			return s.Value
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("get %s on %s: %v", name, n.ID, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
