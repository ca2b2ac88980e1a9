//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// benchValue is the secret value every write sets: small, like a password
// or an API key.
const benchValue = "bench-value-0123456789abcdef0123"

// apiBench writes secrets through the HTTPS API of a real cluster.
type apiBench struct {
	t       testing.TB
	cluster *testcluster.Cluster
	body    []byte
}

// newAPIBench starts a cluster of nodes and logs their process IDs, for
// attaching a profiler during a run.
func newAPIBench(t testing.TB, nodes int) *apiBench {
	t.Helper()
	return newAPIBenchArgs(t, nodes, nil)
}

// newAPIBenchArgs is newAPIBench with extra certvaultd flags for every
// node (the HSM group's --seal pkcs11 and token).
func newAPIBenchArgs(t testing.TB, nodes int, extra []string) *apiBench {
	t.Helper()
	opts := testcluster.Options{ExtraArgs: append([]string(nil), extra...)}
	if addr := os.Getenv("CERTVAULT_BENCH_PPROF"); addr != "" && nodes == 1 {
		opts.ExtraArgs = append(opts.ExtraArgs, "--pprof-listen", addr)
		t.Logf("profiles of the single node at http://%s/debug/pprof/", addr)
	} else if addr != "" {
		// Node i (node1, node2, …) serves its profiles at the port
		// after node i-1's: the flag is added by a shell that then
		// execs the daemon, so that each node gets its own address.
		host, port, err := net.SplitHostPort(addr)
		base, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			t.Fatalf("CERTVAULT_BENCH_PPROF=%q: want HOST:PORT", addr)
		}
		opts.Command = func(id string) []string {
			i, err := strconv.Atoi(strings.TrimPrefix(id, "node"))
			if err != nil {
				t.Fatalf("node id %q: %v", id, err)
			}
			a := net.JoinHostPort(host, strconv.Itoa(base+i-1))
			t.Logf("profiles of %s at http://%s/debug/pprof/", id, a)
			return []string{"sh", "-c", `exec "$@" --pprof-listen ` + a, "sh"}
		}
	}
	return apiBenchOn(t, testcluster.Start(t, nodes, opts))
}

// newPlainAPIBench is newAPIBench(t, 1) without CERTVAULT_BENCH_PPROF's
// address: a second single node beside the one that holds it.
func newPlainAPIBench(t testing.TB) *apiBench {
	t.Helper()
	return apiBenchOn(t, testcluster.Start(t, 1, testcluster.Options{}))
}

// apiBenchOn is the bench of the started cluster c.
func apiBenchOn(t testing.TB, c *testcluster.Cluster) *apiBench {
	for _, n := range c.Nodes {
		t.Logf("%s: pid %d, %s", n.ID, n.PID(), n.URL())
	}
	body := []byte(fmt.Sprintf(`{"value":%q}`, benchValue))
	return &apiBench{t: t, cluster: c, body: body}
}

// httpClient returns one client for clients concurrent callers: HTTP/1.1
// with keep-alive and a connection per caller, as separate SDK clients
// would have.
func (a *apiBench) httpClient(clients int) *http.Client {
	a.t.Helper()
	pem, err := os.ReadFile(a.cluster.CACert)
	if err != nil {
		a.t.Fatalf("read cluster CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		a.t.Fatalf("no certificate in %s", a.cluster.CACert)
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2:   false,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConns:        clients + 8,
			MaxIdleConnsPerHost: clients + 8,
			MaxConnsPerHost:     clients + 8,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// load returns a load of clients callers; caller i writes to targets[i %
// len(targets)] and to the secret bench-<i mod names>.
func (a *apiBench) load(clients, names int, targets []*testcluster.Node, warmup, measure time.Duration) load {
	hc := a.httpClient(clients)
	urls := make([]string, clients)
	for i := range urls {
		n := targets[i%len(targets)]
		urls[i] = n.URL() + "/secrets/bench-" + strconv.Itoa(i%names) + "?api-version=7.6"
	}
	bufs := make([]bytes.Buffer, clients) // caller i touches only bufs[i]
	auth := "Bearer " + a.cluster.Token
	write := func(i int) string {
		req, err := http.NewRequest(http.MethodPut, urls[i], bytes.NewReader(a.body))
		if err != nil {
			return "request"
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		return roundTrip(hc, req, &bufs[i])
	}
	return a.newLoad(hc, clients, write, warmup, measure)
}

// newLoad returns a load of clients callers of op that records the CPU
// time of every node of the cluster and their counters, and closes hc's
// connections when it is done.
func (a *apiBench) newLoad(hc *http.Client, clients int, op writeFunc, warmup, measure time.Duration) load {
	nodes := a.cluster.Nodes
	cpu := func() ([]float64, error) {
		out := make([]float64, len(nodes))
		for i, n := range nodes {
			s, err := procCPU(n.PID())
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	counters := func() (map[string]float64, error) {
		out := map[string]float64{}
		for _, n := range nodes {
			if err := a.scrape(hc, n, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return load{clients: clients, warmup: warmup, measure: measure, write: op, serverCPU: cpu, counters: counters, done: hc.CloseIdleConnections}
}

// roundTrip sends req with hc, reads the answer into b and returns "" for
// a 200, else a short error class.
func roundTrip(hc *http.Client, req *http.Request, b *bytes.Buffer) string {
	resp, err := hc.Do(req)
	if err != nil {
		if os.IsTimeout(err) {
			return "timeout"
		}
		return "transport"
	}
	b.Reset()
	_, err = b.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "body"
	}
	if resp.StatusCode != http.StatusOK {
		return strconv.Itoa(resp.StatusCode)
	}
	return ""
}

// Server counters the benchmark records, from each node's /metrics.
const (
	// counterConflicts counts writes the leader's state machine refused
	// because a compare-and-set lost a race; the vault retries them, so
	// each is a wasted raft round, not an error for the client.
	counterConflicts = "certvault_raft_conflicts_total"
	// counterForwards counts requests followers forwarded to the leader:
	// writes and read indexes.
	counterForwards = "certvault_raft_forwards_total"
)

// scrape adds node n's counters to sum.
func (a *apiBench) scrape(hc *http.Client, n *testcluster.Node, sum map[string]float64) error {
	resp, err := hc.Get(n.URL() + "/metrics")
	if err != nil {
		return fmt.Errorf("scrape %s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape %s: status %d", n.ID, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != counterConflicts && name != counterForwards) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return fmt.Errorf("scrape %s: %s: %w", n.ID, name, err)
		}
		sum[name] += v
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("scrape %s: %w", n.ID, err)
	}
	return nil
}

// checkRead reads a secret the benchmark wrote through a linearizable GET
// so that a run which only ever saw errors does not pass unnoticed.
func (a *apiBench) checkRead(n *testcluster.Node) error {
	hc := a.httpClient(1)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, n.URL()+"/secrets/bench-0/?api-version=7.6", nil)
	if err != nil {
		return fmt.Errorf("read back bench-0: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cluster.Token)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("read back bench-0: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read back bench-0: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(benchValue)) {
		return fmt.Errorf("read back bench-0: status %d, body %.200s", resp.StatusCode, b)
	}
	return nil
}
