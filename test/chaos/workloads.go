package chaos

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
)

// Names and sizes of the certificate and agent workloads.
const (
	// certClients each create certificates on names of their own
	// (certNamesPerClient of them), alternating the Self issuer and the
	// vault's internal CA, and list versions.
	certClients        = 2
	certNamesPerClient = 3
	// renewName is a certificate valid for a minute that renews itself
	// at renewPercent of its lifetime, all through the run: every 33 s,
	// slower than the renewal brake allows (three renewals within a
	// minute halt a certificate, vault/renewal/brake.go).
	renewName    = "chaos-renew"
	renewPercent = 55
	// agentCert is the certificate the agents install; a rotator makes a
	// new version of it every few seconds.
	agentCert = "chaos-agent"
	agents    = 3
	// caName is the internal issuer.
	caName = "chaos-ca"
)

// policy returns a certificate policy: EC P-256, the given issuer and
// validity, AutoRenew at renewPct % (0: no lifetime action).
func policy(cn, issuer, validity string, renewPct int) map[string]any {
	p := map[string]any{
		"key_props":    map[string]any{"exportable": true, "kty": "EC", "crv": "P-256", "reuse_key": false},
		"secret_props": map[string]any{"contentType": "application/x-pem-file"},
		"x509_props":   map[string]any{"subject": "CN=" + cn, "sans": map[string]any{"dns_names": []string{cn}}, "validity_duration": validity},
		"issuer":       map[string]any{"name": issuer},
	}
	if renewPct > 0 {
		p["lifetime_actions"] = []map[string]any{{"trigger": map[string]any{"lifetime_percentage": renewPct}, "action": map[string]any{"action_type": "AutoRenew"}}}
	}
	return p
}

// workloads are the loads besides the secrets: certificates and agents.
// Each records its requests through the harness's API and checks its own
// rules at the end.
type workloads struct {
	h    *harness
	stop <-chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	// creates per name: acknowledged, unknown (refusals changed nothing).
	acked, unknown map[string]int
	// latest holds, per name, the versions read back right after each
	// acknowledged create, in the order of the acknowledgements, with
	// their created time.
	latest map[string][]versionSeen
	// listings are version listings seen during the run: name -> version
	// -> created, to check that a version never changes or disappears.
	listed map[string]map[string]int64
	// problems found while the load ran.
	problems []string

	agentDir string
	agentLog []*procLog
	agentCmd []*exec.Cmd
	agentEnd []chan struct{}
}

type versionSeen struct {
	Version string
	Created int64
	Acked   time.Time
}

// procLog is a process's output, safe for concurrent use.
type procLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// setup makes what the loads need before the nemeses begin: the internal
// CA, the renewing certificate, the agents' certificate, role and agents.
func (l *workloads) setup(ctx context.Context) {
	t := l.h.t
	l.acked, l.unknown = map[string]int{}, map[string]int{}
	l.latest, l.listed = map[string][]versionSeen{}, map[string]map[string]int64{}
	node := l.h.nodes[0]
	retry := func(what string, f func() error) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("set up the workloads: %s: %v", what, err)
			}
			time.Sleep(200 * time.Millisecond) // between tries of a setup step
		}
	}
	retry("create the internal CA", func() error {
		_, err := l.h.api.Do(ctx, "setup", node, http.MethodPut, "/certificates/issuers/"+caName,
			map[string]any{"provider": "internal", "ca": map[string]any{"subject": "CN=Chaos CA", "kty": "EC", "crv": "P-256", "validity_months": 12}}, nil, opTimeout)
		return err
	})
	for _, name := range []string{renewName, agentCert} {
		p := policy(name+".example.test", "Self", "1m", renewPercent)
		if name == agentCert {
			p = policy(name+".example.test", caName, "24h", 0)
		}
		retry("create "+name, func() error {
			_, err := l.h.api.Do(ctx, "setup", node, http.MethodPost, "/certificates/"+name+"/create", map[string]any{"policy": p}, nil, opTimeout)
			return err
		})
	}
	// The agents: a group with the Certificate User role on their
	// certificate, a join token, one agent per node.
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := l.h.c.CLI(args...)
		if code != 0 {
			var states []string
			for _, n := range l.h.c.Nodes {
				states = append(states, fmt.Sprintf("%s running=%v pid=%d", n.ID, n.Running(), n.PID()))
			}
			t.Fatalf("set up the agents: certvault %s: exit %d: %s (nodes: %s)", strings.Join(args, " "), code, errOut, strings.Join(states, ", "))
		}
		return out
	}
	run("role", "assign", "Certificate User", "--to", "group:chaos", "--scope", "/certificates/"+agentCert)
	var tok struct {
		Token         string `json:"token"`
		CAFingerprint string `json:"ca_fingerprint"`
	}
	out := run("agent", "join-token", "create", "-o", "json", "--group", "chaos", "--uses", fmt.Sprint(agents))
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatalf("set up the agents: join token: %v: %q", err, out)
	}
	testcluster.KnownSecret(tok.Token)
	bin := testcluster.AgentBinary(t)
	// Named for the run, so that Sweep finds agents a killed run left.
	dir, err := os.MkdirTemp("", l.h.nw.Dir()+"-agents-")
	if err != nil {
		t.Fatalf("set up the agents: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l.agentDir = dir
	for i := range agents {
		node := l.h.nodeByID(l.h.nodes[i%len(l.h.nodes)])
		dir := filepath.Join(l.agentDir, fmt.Sprintf("agent%d", i+1))
		state := filepath.Join(dir, "state")
		if o, err := exec.Command(bin, "join", "--vault", node.URL(), "--token", tok.Token, "--ca-fingerprint", tok.CAFingerprint,
			"--state-dir", state, "--name", fmt.Sprintf("chaos-%d", i+1)).CombinedOutput(); err != nil {
			t.Fatalf("set up the agents: certvault-agent join: %v\n%s", err, o)
		}
		tls := filepath.Join(dir, "tls")
		cfg := filepath.Join(dir, "agent.yaml")
		data := fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
certificates:
  - name: %s
    dir: %s
    files: {cert: cert.pem, key: key.pem}
    reload: "echo $CERTVAULT_EVENT $CERTVAULT_VERSION >> %s"
    timeout: 10s
`, node.URL(), l.h.c.CACert, state, agentCert, tls, filepath.Join(dir, "installs.log"))
		if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
			t.Fatalf("set up the agents: %v", err)
		}
		cmd := exec.Command(bin, "run", "--config", cfg, "--log-level", "info")
		lg := &procLog{}
		cmd.Stdout, cmd.Stderr = lg, lg
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("set up the agents: start: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		l.agentCmd = append(l.agentCmd, cmd)
		l.agentLog = append(l.agentLog, lg)
		l.agentEnd = append(l.agentEnd, done)
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("--- log of agent %d ---\n%s", i+1, tail(lg.String(), 3000))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// start launches the loads.
func (l *workloads) start(ctx context.Context) {
	for c := range certClients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.certClient(ctx, c)
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.rotator(ctx)
	}()
}

// pause waits d unless the loads stop first; it reports whether to go on.
func (l *workloads) pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-l.stop:
		return false
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// create asks node to create a new version of name and, when it was
// acknowledged, reads back the current version.
func (l *workloads) create(ctx context.Context, node, name string, p map[string]any) {
	var op struct {
		Status string `json:"status"`
	}
	_, err := l.h.api.Do(ctx, "cert-create", node, http.MethodPost, "/certificates/"+name+"/create", map[string]any{"policy": p}, &op, opTimeout)
	l.mu.Lock()
	switch {
	case err == nil:
		l.acked[name]++
		if op.Status != "completed" {
			l.problems = append(l.problems, fmt.Sprintf("create of %s via %s acknowledged with status %q, want completed (Self and internal issuers sign at once)", name, node, op.Status))
		}
	case refusedForSure(err):
	default:
		l.unknown[name]++
	}
	l.mu.Unlock()
	if err != nil {
		return
	}
	acked := time.Now()
	var cur struct {
		ID         string `json:"id"`
		Attributes struct {
			Created int64 `json:"created"`
		} `json:"attributes"`
	}
	if _, err := l.h.api.Do(ctx, "cert-get", node, http.MethodGet, "/certificates/"+name+"/", nil, &cur, opTimeout); err != nil {
		return // the create is still counted; the read says nothing
	}
	l.mu.Lock()
	l.latest[name] = append(l.latest[name], versionSeen{Version: path.Base(cur.ID), Created: cur.Attributes.Created, Acked: acked})
	l.mu.Unlock()
}

// certClient creates certificates on its own names through random nodes
// and lists versions, one request at a time.
func (l *workloads) certClient(ctx context.Context, c int) {
	rng := rand.New(rand.NewPCG(l.h.cfg.Seed, uint64(100+c)))
	for i := 0; i < 100_000; i++ {
		node := l.h.nodes[rng.IntN(len(l.h.nodes))]
		k := rng.IntN(certNamesPerClient)
		name := fmt.Sprintf("chaos-c%d-%d", c, k)
		if i%3 == 2 {
			l.list(ctx, node, name)
		} else {
			issuer := "Self"
			if k%2 == 1 {
				issuer = caName
			}
			l.create(ctx, node, name, policy(name+".example.test", issuer, "24h", 0))
		}
		if !l.pause(ctx, time.Duration(100+rng.IntN(200))*time.Millisecond) {
			return
		}
	}
}

// rotator makes a new version of the agents' certificate every few
// seconds.
func (l *workloads) rotator(ctx context.Context) {
	rng := rand.New(rand.NewPCG(l.h.cfg.Seed, 200))
	p := policy(agentCert+".example.test", caName, "24h", 0)
	for i := 0; i < 10_000; i++ {
		if !l.pause(ctx, time.Duration(2000+rng.IntN(3000))*time.Millisecond) {
			return
		}
		l.create(ctx, l.h.nodes[rng.IntN(len(l.h.nodes))], agentCert, p)
	}
}

// list reads the versions of name through node and remembers them.
func (l *workloads) list(ctx context.Context, node, name string) (map[string]int64, error) {
	got := map[string]int64{}
	next := "/certificates/" + name + "/versions?maxresults=25"
	for next != "" {
		var page struct {
			Value []struct {
				ID         string `json:"id"`
				Attributes struct {
					Created int64 `json:"created"`
				} `json:"attributes"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if _, err := l.h.api.Do(ctx, "cert-versions", node, http.MethodGet, next, nil, &page, opTimeout); err != nil {
			var ae *client.Error
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "CertificateNotFound" {
				// Never created (every create of it was refused, or
				// none was made): no versions.
				break
			}
			return nil, err
		}
		for _, v := range page.Value {
			got[path.Base(v.ID)] = v.Attributes.Created
		}
		next = ""
		if page.NextLink != "" {
			u, err := url.Parse(page.NextLink)
			if err != nil {
				return nil, fmt.Errorf("list %s: nextLink %q: %w", name, page.NextLink, err)
			}
			q := u.Query()
			q.Del("api-version") // Do adds its own
			next = u.Path + "?" + q.Encode()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.listed[name] == nil {
		l.listed[name] = map[string]int64{}
	}
	for v, created := range got {
		if c, ok := l.listed[name][v]; ok && c != created {
			l.problems = append(l.problems, fmt.Sprintf("%s version %s: created %d in one listing, %d in another (via %s)", name, v, c, created, node))
		}
		l.listed[name][v] = created
	}
	return got, nil
}

// wait returns once every load has stopped (after stop closed).
func (l *workloads) wait() { l.wg.Wait() }

// check runs the certificate and agent checkers after the final heal.
func (l *workloads) check(ctx context.Context, res *Result) {
	l.mu.Lock()
	problems := append([]string(nil), l.problems...)
	l.mu.Unlock()
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// Every node lists the same versions; every acknowledged create is
	// there; nothing seen during the run is gone.
	var names []string
	for c := range certClients {
		for k := range certNamesPerClient {
			names = append(names, fmt.Sprintf("chaos-c%d-%d", c, k))
		}
	}
	names = append(names, agentCert, renewName)
	final := map[string]map[string]int64{}
	totalVersions := 0
	for _, name := range names {
		// The listings come one after the other, each a linearizable
		// read: a later one holds every version of an earlier one (the
		// renewing certificate may gain one in between; nothing else is
		// written any more).
		var first, prev map[string]int64
		for _, node := range l.h.nodes {
			var got map[string]int64
			var err error
			deadline := time.Now().Add(convergeWait)
			for {
				got, err = l.list(ctx, node, name)
				if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
					break
				}
				l.h.t.Logf("final listing of %s via %s failed, trying again: %v", name, node, err)
				time.Sleep(200 * time.Millisecond) // between tries of a final listing
			}
			if err != nil {
				bad("final listing of %s via %s: %v", name, node, err)
				continue
			}
			if first == nil {
				first = got
			}
			for v := range prev {
				if _, ok := got[v]; !ok {
					bad("%s: version %s, listed by the node before, is missing from the listing of %s", name, v, node)
				}
			}
			if name != renewName && prev != nil && len(got) != len(prev) {
				bad("%s: %s lists %d versions, the node before %d", name, node, len(got), len(prev))
			}
			prev = got
		}
		final[name] = first
		totalVersions += len(first)
		l.mu.Lock()
		acked, unknown, seen, latest := l.acked[name], l.unknown[name], l.listed[name], l.latest[name]
		l.mu.Unlock()
		if name != renewName && name != agentCert {
			if len(first) < acked || len(first) > acked+unknown {
				bad("%s: %d versions, want between %d acknowledged creates and %d (with the %d unknown)", name, len(first), acked, acked+unknown, unknown)
			}
		}
		for v := range seen {
			if _, ok := first[v]; !ok {
				bad("%s: version %s was listed during the run and is gone after it", name, v)
			}
		}
		// Versions read back after each acknowledged create: new each
		// time, and in the order of the acknowledgements.
		have := map[string]bool{}
		for i, s := range latest {
			if _, ok := first[s.Version]; !ok {
				bad("%s: version %s, current after a create acknowledged at %s, is not listed at the end", name, s.Version, s.Acked.Format("15:04:05.000"))
			}
			if have[s.Version] && name != renewName {
				bad("%s: version %s was current after two acknowledged creates (a create acknowledged without a new version)", name, s.Version)
			}
			have[s.Version] = true
			if i > 0 && s.Created < latest[i-1].Created {
				bad("%s: version %s (created %d) was made after %s (created %d) yet is older", name, s.Version, s.Created, latest[i-1].Version, latest[i-1].Created)
			}
		}
	}

	// Automatic renewal: one new version per renewal. The versions of
	// the renewing certificate are at least most of the renewal period
	// apart; two renewals of one version would be close together.
	period := int64(60 * renewPercent / 100)
	var created []int64
	for _, c := range final[renewName] {
		created = append(created, c)
	}
	sort.Slice(created, func(i, j int) bool { return created[i] < created[j] })
	for i := 1; i < len(created); i++ {
		if gap := created[i] - created[i-1]; gap < period*2/3 {
			bad("%s: two versions created %ds apart, want about %ds (one renewal per version)", renewName, gap, period)
		}
	}

	// No two versions share a serial.
	serials := map[string]string{}
	for _, name := range names {
		for v := range final[name] {
			var bundle struct {
				Cer string `json:"cer"`
			}
			if _, err := l.h.api.Do(ctx, "cert-get", l.h.nodes[0], http.MethodGet, "/certificates/"+name+"/"+v, nil, &bundle, opTimeout); err != nil {
				bad("get %s/%s: %v", name, v, err)
				continue
			}
			der, err := base64.StdEncoding.DecodeString(bundle.Cer)
			if err != nil {
				der, err = base64.RawURLEncoding.DecodeString(bundle.Cer)
			}
			if err != nil {
				bad("%s/%s: cer is not base64: %v", name, v, err)
				continue
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				bad("%s/%s: cer does not parse: %v", name, v, err)
				continue
			}
			key := cert.Issuer.String() + "/" + cert.SerialNumber.Text(16)
			if prev, ok := serials[key]; ok {
				bad("%s/%s and %s share the serial %s of issuer %s", name, v, prev, cert.SerialNumber.Text(16), cert.Issuer)
			}
			serials[key] = name + "/" + v
		}
	}
	res.Certificates = []string{fmt.Sprintf("%d versions of %d names", totalVersions, len(names)), fmt.Sprintf("%d renewals", max(0, len(created)-1))}
	res.CertProblems = problems
	l.checkAgents(ctx, res)
}

// checkAgents waits for every agent to install the current version of
// its certificate and reads their install logs.
func (l *workloads) checkAgents(ctx context.Context, res *Result) {
	var problems []string
	var cur struct {
		ID string `json:"id"`
	}
	if _, err := l.h.api.Do(ctx, "cert-get", l.h.nodes[0], http.MethodGet, "/certificates/"+agentCert+"/", nil, &cur, opTimeout); err != nil {
		res.AgentProblem = append(res.AgentProblem, fmt.Sprintf("read the current version of %s: %v", agentCert, err))
		return
	}
	target := path.Base(cur.ID)
	installsTotal := 0
	for i := range agents {
		logFile := filepath.Join(l.agentDir, fmt.Sprintf("agent%d", i+1), "installs.log")
		var installs []string
		deadline := time.Now().Add(agentWait)
		for {
			installs = readInstalls(logFile)
			if (len(installs) > 0 && installs[len(installs)-1] == target) || time.Now().After(deadline) {
				break
			}
			select {
			case <-l.agentEnd[i]:
				problems = append(problems, fmt.Sprintf("agent %d exited", i+1))
				deadline = time.Time{}
			case <-ctx.Done():
				deadline = time.Time{}
			case <-time.After(250 * time.Millisecond):
			}
		}
		if len(installs) == 0 || installs[len(installs)-1] != target {
			last := "nothing"
			if len(installs) > 0 {
				last = installs[len(installs)-1]
			}
			problems = append(problems, fmt.Sprintf("agent %d ends on %s, want the current version %s (waited %s)", i+1, last, target, agentWait))
		}
		seen := map[string]bool{}
		for _, v := range installs {
			if seen[v] {
				problems = append(problems, fmt.Sprintf("agent %d installed version %s twice", i+1, v))
			}
			seen[v] = true
		}
		installsTotal += len(installs)
	}
	res.Agents = []string{fmt.Sprintf("%d agents on version %.8s", agents, target), fmt.Sprintf("%d installs", installsTotal)}
	res.AgentProblem = problems
}

// readInstalls returns the versions an agent's reload hook logged for
// installs, in order.
func readInstalls(file string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if ok && ev == "install" {
			out = append(out, v)
		}
	}
	return out
}

// auditVerify runs certvault audit verify against every node.
func (h *harness) auditVerify(ctx context.Context) []string {
	var out []string
	ok := true
	for _, n := range h.c.Nodes {
		stdout, stderr, code := h.c.CLIAt(n, "audit", "verify", "-o", "json")
		var res struct {
			OK    bool `json:"ok"`
			Nodes []struct {
				Node      string            `json:"node"`
				OK        bool              `json:"ok"`
				Records   uint64            `json:"records"`
				Gaps      int               `json:"gaps"`
				Lost      uint64            `json:"lost"`
				Error     string            `json:"error"`
				Incidents []json.RawMessage `json:"incidents"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			ok = false
			out = append(out, fmt.Sprintf("via %s: exit %d, output not JSON (%v): %s %s", n.ID, code, err, strings.TrimSpace(stdout), strings.TrimSpace(stderr)))
			continue
		}
		var parts []string
		for _, nd := range res.Nodes {
			s := fmt.Sprintf("%s ok=%v records=%d gaps=%d lost=%d", nd.Node, nd.OK, nd.Records, nd.Gaps, nd.Lost)
			if nd.Error != "" {
				s += " error=" + nd.Error
			}
			if len(nd.Incidents) > 0 {
				s += fmt.Sprintf(" incidents=%s", nd.Incidents)
			}
			parts = append(parts, s)
		}
		if code != 0 || !res.OK {
			ok = false
			out = append(out, fmt.Sprintf("via %s: exit %d: %s", n.ID, code, strings.Join(parts, "; ")))
		} else if n == h.c.Nodes[0] {
			out = append(out, strings.Join(parts, "; "))
		}
	}
	h.mu.Lock()
	h.auditOK = ok
	h.mu.Unlock()
	return out
}
