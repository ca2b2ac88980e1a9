//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
	"github.com/fsnotify/fsnotify"
)

// groupAgent measures certvault-agent (issue "certvault-agent"): binary
// size, resident memory idle and while installing, and the time from the
// vault's commit of a new version to the agent's switch of the files.
const groupAgent = "agent"

// agentResult is the agent group's figures.
type agentResult struct {
	BinaryBytes         int64   `json:"binary_bytes"`
	BinaryStrippedBytes int64   `json:"binary_stripped_bytes"`
	RSSIdleKB           int64   `json:"rss_idle_kb"`
	RSSPeakKB           int64   `json:"rss_peak_kb"`
	Rotations           int     `json:"rotations"`
	SwapP50ms           float64 `json:"commit_to_swap_p50_ms"`
	SwapP99ms           float64 `json:"commit_to_swap_p99_ms"`
	SwapMaxms           float64 `json:"commit_to_swap_max_ms"`
	Goals               string  `json:"goals"`
}

// procKB reads a "VmRSS:" style field of /proc/PID/status in kB.
func procKB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0 // not a figure: reported as unknown (0), like a missing field
			}
			return kb
		}
	}
	return 0
}

func runAgentBench(t *testing.T) *agentResult {
	c := testcluster.Start(t, 1, testcluster.Options{})
	bin := testcluster.AgentBinary(t)
	res := &agentResult{Goals: "issue \"certvault-agent\": < 15 MB resident idle, < 15 MB binary, < 50 ms commit-to-swap on loopback"}
	if fi, err := os.Stat(bin); err == nil {
		res.BinaryBytes = fi.Size()
	}
	stripped := filepath.Join(t.TempDir(), "certvault-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", stripped, "./cmd/certvault-agent")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build stripped agent: %v\n%s", err, out)
	}
	if fi, err := os.Stat(stripped); err == nil {
		res.BinaryStrippedBytes = fi.Size()
	}

	cli := func(args ...string) string {
		out, errOut, code := c.CLI(args...)
		if code != 0 {
			t.Fatalf("certvault %v: %s%s", args, out, errOut)
		}
		return out
	}
	cli("role", "assign", "Certificate User", "--to", "group:bench", "--scope", "/certificates/www")
	cl, err := client.New(client.Config{Addr: c.Nodes[0].URL(), Token: c.Token, CACert: c.CACert})
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"}, "key_props": map[string]any{"kty": "EC", "crv": "P-256"},
		"x509_props": map[string]any{"subject": "CN=www.example.com"}}}
	create := func() {
		if err := cl.Do(context.Background(), http.MethodPost, "/certificates/www/create", policy, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	create()
	out := cli("agent", "join-token", "create", "--group", "bench", "-o", "json")
	tok := between(out, `"token": "`, `"`)
	fp := between(out, `"ca_fingerprint": "`, `"`)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if out, err := exec.Command(bin, "join", "--vault", c.Nodes[0].URL(), "--token", tok, "--ca-fingerprint", fp, "--state-dir", state).CombinedOutput(); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	tlsDir := filepath.Join(dir, "tls")
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("vault: %s\nca_file: %s\nstate_dir: %s\ncertificates:\n  - name: www\n    dir: %s\n    files: {cert: cert.pem, fullchain: fullchain.pem, key: key.pem}\n",
		c.Nodes[0].URL(), c.CACert, state, tlsDir)), 0o644); err != nil {
		t.Fatalf("write the agent's config: %v", err)
	}
	var logBuf bytes.Buffer
	agent := exec.Command(stripped, "run", "--config", cfg, "--log-level", "warn")
	agent.Stdout, agent.Stderr = &logBuf, &logBuf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Signal(syscall.SIGKILL); agent.Wait() }()
	stateDir := filepath.Join(tlsDir, ".certvault", "www")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(stateDir, "current")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first install not done:\n%s", logBuf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Idle: after the first install, waiting on its long poll.
	time.Sleep(3 * time.Second)
	res.RSSIdleKB = procKB(agent.Process.Pid, "VmRSS")

	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(stateDir); err != nil {
		t.Fatal(err)
	}
	var lat []float64
	res.Rotations = 50
	for range res.Rotations {
		create() // answered once the version is committed and applied
		t0 := time.Now()
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case ev := <-w.Events:
				if filepath.Base(ev.Name) == "current" && ev.Has(fsnotify.Create) {
					break wait
				}
			case <-timeout:
				t.Fatalf("no swap within 10 s:\n%s", logBuf.String())
			}
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	res.RSSPeakKB = procKB(agent.Process.Pid, "VmHWM")
	slices.Sort(lat)
	res.SwapP50ms = lat[len(lat)/2]
	res.SwapP99ms = lat[(len(lat)*99)/100]
	res.SwapMaxms = lat[len(lat)-1]
	return res
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return v
}

// agentTable prints the agent group's figures with the goals.
func agentTable(r *agentResult) string {
	if r == nil {
		return ""
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ncertvault-agent (%s)\n", r.Goals)
	fmt.Fprintf(&b, "  binary            %6.1f MB (stripped -s -w: %.1f MB)   goal < 15 MB: %s\n", float64(r.BinaryBytes)/1e6, float64(r.BinaryStrippedBytes)/1e6, mark(r.BinaryBytes < 15e6))
	fmt.Fprintf(&b, "  resident idle     %6.1f MB                               goal < 15 MB: %s\n", float64(r.RSSIdleKB)/1024, mark(r.RSSIdleKB < 15*1024))
	fmt.Fprintf(&b, "  resident peak     %6.1f MB (after %d installs)\n", float64(r.RSSPeakKB)/1024, r.Rotations)
	fmt.Fprintf(&b, "  commit-to-swap    p50 %.1f ms  p99 %.1f ms  max %.1f ms   goal < 50 ms: %s\n", r.SwapP50ms, r.SwapP99ms, r.SwapMaxms, mark(r.SwapP99ms < 50))
	return b.String()
}
