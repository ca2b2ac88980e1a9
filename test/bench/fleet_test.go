//go:build bench

package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
)

// groupFleet measures issue "fleet rollout and scale": simulated agents
// that speak the real protocol (enrollment by CSR, mutual TLS with their
// own identities, the long poll) wait on one vault (or cluster); a new
// version is committed without waves and each agent's time to hear of it
// is recorded.
const groupFleet = "fleet"

// simAgent is one simulated agent: an identity and its own connection.
type simAgent struct {
	id string
	hc *http.Client
	// base is the node it polls.
	base string
}

// enrollFleet enrolls n agents into group "bench" through nodes (round
// robin), with several join tokens so that enrollments do not all
// compare-and-set one record.
func enrollFleet(t *testing.T, c *testcluster.Cluster, n int) []*simAgent {
	t.Helper()
	caPEM, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	root, err := client.New(client.Config{Addr: c.Nodes[0].URL(), Token: c.Token, CACert: c.CACert, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const perToken = 200
	var tokens []string
	for i := 0; i < (n+perToken-1)/perToken; i++ {
		var res struct{ Token string }
		if err := root.Do(context.Background(), http.MethodPost, "/v1/agents/join-tokens", map[string]any{"group": "bench", "ttl": "1h", "uses": perToken, "cert_ttl": "1d"}, &res); err != nil {
			t.Fatalf("join token: %v", err)
		}
		tokens = append(tokens, res.Token)
	}
	enrollHC := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}
	defer enrollHC.CloseIdleConnections()
	agents := make([]*simAgent, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				a, err := enrollOne(enrollHC, pool, c.Nodes[i%len(c.Nodes)].URL(), tokens[i/perToken], i)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				agents[i] = a
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return agents
}

func enrollOne(hc *http.Client, pool *x509.CertPool, base, token string, i int) (*simAgent, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: fmt.Sprintf("sim-%05d", i)}}, key)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]string{"token": token, "name": fmt.Sprintf("sim-%05d", i),
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if err != nil {
		return nil, fmt.Errorf("encode enrollment %d: %w", i, err)
	}
	for attempt := 0; ; attempt++ {
		resp, err := hc.Post(base+"/v1/agents/enroll", "application/json", bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("enroll %d: %w", i, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("enroll %d: read the answer: %w", i, err)
		}
		if resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusServiceUnavailable {
			if attempt < 20 {
				time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
				continue
			}
		}
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("enroll %d: %d %s", i, resp.StatusCode, data)
		}
		var er struct {
			AgentID     string `json:"agent_id"`
			Certificate string `json:"certificate"`
			Chain       string `json:"chain"`
		}
		if err := json.Unmarshal(data, &er); err != nil {
			return nil, err
		}
		var chain [][]byte
		for rest := []byte(er.Certificate + er.Chain); ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			chain = append(chain, b.Bytes)
		}
		cert := &tls.Certificate{Certificate: chain, PrivateKey: key}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }},
			MaxConnsPerHost: 1, IdleConnTimeout: 5 * time.Minute}
		return &simAgent{id: er.AgentID, hc: &http.Client{Transport: tr}, base: base}, nil
	}
}

// watch runs one long poll and returns its version and whether it changed.
func (a *simAgent) watch(ctx context.Context, held string, wait time.Duration) (string, bool, error) {
	q := url.Values{"o": {"certificates/fleet@" + held}, "wait": {wait.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/agents/watch?"+q.Encode(), nil)
	if err != nil {
		return "", false, fmt.Errorf("watch: %w", err)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false, fmt.Errorf("watch: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", false, fmt.Errorf("watch: %d %s", resp.StatusCode, data)
	}
	var w struct {
		Objects []struct{ Version, Error string }
		Changed bool
	}
	if err := json.Unmarshal(data, &w); err != nil || len(w.Objects) != 1 {
		return "", false, fmt.Errorf("watch answer %s: %v", data, err)
	}
	if w.Objects[0].Error != "" {
		return "", false, fmt.Errorf("watch: %s", w.Objects[0].Error)
	}
	return w.Objects[0].Version, w.Changed, nil
}

var watchersRE = regexp.MustCompile(`(?m)^certvault_raft_watchers (\d+)`)

// watchers reads a node's count of blocked watches from /metrics.
func watchers(hc *http.Client, base string) int {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	m := watchersRE.FindSubmatch(data)
	if m == nil {
		return -1
	}
	v, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return -1 // -1 is "unknown" to the callers, as for a failed scrape
	}
	return v
}

// liveKB forces a garbage collection in every node (its pprof heap
// profile with gc=1) and sums what the Go runtime then holds for live
// objects and goroutine stacks (HeapInuse + StackInuse), in KB.
func liveKB(c *testcluster.Cluster, pprof map[string]string) (int64, error) {
	var sum int64
	for _, n := range c.Nodes {
		resp, err := http.Get("http://" + pprof[n.ID] + "/debug/pprof/heap?gc=1&debug=1")
		if err != nil {
			return 0, fmt.Errorf("heap of %s: %w", n.ID, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("heap of %s: %w", n.ID, err)
		}
		heap, ok1 := memStat(b, "# HeapInuse = ")
		stack, ok2 := memStat(b, "# Stack = ")
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("heap of %s: no HeapInuse or Stack in the profile", n.ID)
		}
		sum += (heap + stack) / 1024
	}
	return sum, nil
}

// memStat reads the number after prefix at the start of a line of a
// debug=1 heap profile.
func memStat(b []byte, prefix string) (int64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			f, _, _ := strings.Cut(rest, " ")
			v, err := strconv.ParseInt(f, 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

func rssKB(c *testcluster.Cluster) int64 {
	var sum int64
	for _, n := range c.Nodes {
		sum += procKB(n.PID(), "VmRSS")
	}
	return sum
}

// raiseNoFile lifts this process's open-file limit to its hard limit.
func raiseNoFile(t *testing.T) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("open-file limit: %v", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Logf("raise the open-file limit to %d: %v (the fleet group may run out of descriptors)", lim.Max, err)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("open-file limit: %v", err)
	}
	return lim.Cur
}

func runFleet(t *testing.T, nodes, n int) fleetResult {
	if lim := raiseNoFile(t); lim < uint64(n)+1024 {
		t.Skipf("open-file limit %d is too low for %d agents", lim, n)
	}
	// Each node serves its profiles on a loopback port of its own, so
	// that the bench can force a garbage collection before it reads the
	// heap (memory per agent that does not move with the collector's
	// timing).
	pprofAddrs := map[string]string{}
	c := testcluster.Start(t, nodes, testcluster.Options{NodeArgs: func(id string) []string {
		pprofAddrs[id] = testcluster.FreeAddr(t)
		return []string{"--pprof-listen", pprofAddrs[id]}
	}})
	res := fleetResult{Nodes: nodes, Agents: n}
	cl, err := client.New(client.Config{Addr: c.Nodes[0].URL(), Token: c.Token, CACert: c.CACert, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.Do(ctx, http.MethodPost, "/v1/roles/assignments", map[string]string{"role": "Certificate User", "assignee": "group:bench", "scope": "/certificates/fleet"}, nil); err != nil {
		t.Fatal(err)
	}
	policy := map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"}, "key_props": map[string]any{"kty": "EC", "crv": "P-256"},
		"x509_props": map[string]any{"subject": "CN=fleet.example.com"}}}
	if err := cl.Do(ctx, http.MethodPost, "/certificates/fleet/create", policy, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	agents := enrollFleet(t, c, n)
	// Each agent learns the current version once (a short poll).
	v1 := ""
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, a := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v, _, err := a.watch(ctx, "", time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			v1 = v
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	res.VaultRSSBaseKB = rssKB(c)
	heapBase, err := liveKB(c, pprofAddrs)
	if err != nil {
		t.Fatal(err)
	}

	// Every agent long-polls holding v1.
	type hit struct {
		at      time.Time
		version string
	}
	hits := make([]hit, n)
	pollCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pollCtx.Err() == nil {
				v, changed, err := a.watch(pollCtx, v1, 2*time.Minute)
				if err != nil {
					if pollCtx.Err() == nil {
						t.Errorf("agent %d: %v", i, err)
					}
					return
				}
				if changed {
					hits[i] = hit{time.Now(), v}
					return
				}
			}
		}()
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		total := 0
		for _, nd := range c.Nodes {
			total += max(0, watchers(hc, nd.URL()))
		}
		if total >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d agents are waiting", total, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // let the last connections settle before measuring memory
	res.VaultRSSConnectedKB = rssKB(c)
	res.PerAgentRSSKB = float64(res.VaultRSSConnectedKB-res.VaultRSSBaseKB) / float64(n)
	heapConnected, err := liveKB(c, pprofAddrs)
	if err != nil {
		t.Fatal(err)
	}
	res.PerAgentKB = float64(heapConnected-heapBase) / float64(n)

	var cpu0 float64
	for _, nd := range c.Nodes {
		v, err := procCPU(nd.PID())
		if err != nil {
			t.Fatalf("vault CPU before the version: %v", err)
		}
		cpu0 += v
	}
	t0 := time.Now()
	if err := cl.Do(ctx, http.MethodPost, "/certificates/fleet/create", policy, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cancel()
		<-done
	}
	elapsed := time.Since(t0).Seconds()
	var cpu1 float64
	for _, nd := range c.Nodes {
		v, err := procCPU(nd.PID())
		if err != nil {
			t.Fatalf("vault CPU after the version: %v", err)
		}
		cpu1 += v
	}
	res.VaultCPUPct = 100 * (cpu1 - cpu0) / elapsed
	for _, h := range hits {
		if h.at.IsZero() || h.version == v1 {
			res.PropagationMS = append(res.PropagationMS, fleetNotReachedMS)
			continue
		}
		res.PropagationMS = append(res.PropagationMS, float64(h.at.Sub(t0).Microseconds())/1000)
	}
	slices.Sort(res.PropagationMS)
	p := func(q float64) float64 {
		return res.PropagationMS[min(len(res.PropagationMS)-1, int(q*float64(len(res.PropagationMS))))]
	}
	res.P50ms, res.P99ms, res.MaxMS = p(0.5), p(0.99), res.PropagationMS[len(res.PropagationMS)-1]
	for _, v := range res.PropagationMS {
		if v <= 1000 {
			res.Within1s++
		}
		if v <= 3000 {
			res.Within3s++
		}
	}
	res.Within1s /= float64(n)
	res.Within3s /= float64(n)
	for _, a := range agents {
		a.hc.CloseIdleConnections()
	}
	return res
}

// fleetTable prints the fleet runs with the goals.
func fleetTable(rs []fleetResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "\nfleet: a new version without waves to N long-polling agents (goals: 99%% within 1 s, all within 3 s; < 20 KB vault memory per agent)\n")
	fmt.Fprintf(&b, "%-6s %-7s %9s %9s %9s %8s %8s %10s %10s %9s %10s\n", "nodes", "agents", "p50 ms", "p99 ms", "max ms", "<=1s", "<=3s", "KB/agent", "RSS KB/a", "vault CPU", "connect s")
	for _, r := range rs {
		fmt.Fprintf(&b, "%-6d %-7d %9.1f %9.1f %9.1f %7.1f%% %7.1f%% %10.1f %10.1f %8.0f%% %10.1f\n", r.Nodes, r.Agents, r.P50ms, r.P99ms, r.MaxMS, 100*r.Within1s, 100*r.Within3s, r.PerAgentKB, r.PerAgentRSSKB, r.VaultCPUPct, r.ConnectSeconds)
	}
	b.WriteString("KB/agent: the Go heap and stacks after a forced garbage collection, per waiting agent (summed over nodes); RSS KB/a: resident memory, which moves with the collector's timing.\n")
	return b.String()
}
