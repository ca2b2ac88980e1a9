package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// workloads are the loads besides the secrets: certificates and agents.
// Each records its requests through the harness's API and checks its own
// rules at the end.
type workloads struct {
	h    *harness
	stop <-chan struct{}
	wg   sync.WaitGroup
}

// start launches the loads.
func (l *workloads) start(ctx context.Context) {}

// wait returns once every load has stopped (after stop closed).
func (l *workloads) wait() { l.wg.Wait() }

// check runs the loads' checkers after the final heal.
func (l *workloads) check(ctx context.Context, res *Result) {}

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
