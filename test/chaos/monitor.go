package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// nodeStatus is the part of GET /v1/sys/cluster/status the harness reads.
type nodeStatus struct {
	Leader       string `json:"leader"`
	NodeID       string `json:"node_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	DiskFull     string `json:"disk_full"`
	// StateDigest and DigestIndex are asked for with ?digest=true.
	StateDigest string `json:"state_digest"`
	DigestIndex uint64 `json:"digest_index"`
}

// leaderEvent is a change of the leader the monitor saw: the node that
// claims leadership with the highest term.
type leaderEvent struct {
	At     time.Time
	Leader string
	Term   uint64
}

// monitor polls every node's status a few times a second and keeps the
// history of leaders. Its requests are not part of the recorded load.
type monitor struct {
	api   *API
	nodes []string

	mu     sync.Mutex
	events []leaderEvent
	last   map[string]nodeStatus
}

func newMonitor(api *API, nodes []string) *monitor {
	return &monitor{api: api, nodes: nodes, last: map[string]nodeStatus{}}
}

// status asks one node, with a short timeout.
func (m *monitor) status(ctx context.Context, node string, digest bool) (nodeStatus, error) {
	var st nodeStatus
	path := "/v1/sys/cluster/status"
	if digest {
		path += "?digest=true"
	}
	_, err := m.api.Do(ctx, "", node, http.MethodGet, path, nil, &st, 2*time.Second)
	return st, err
}

// run polls until ctx ends: one loop per node, so that a node that does
// not answer (paused) does not slow down what the others report.
func (m *monitor) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range m.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if st, err := m.status(ctx, n, false); err == nil {
					m.observe(n, st, time.Now())
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
}

// observe records what node reported at now and appends a leader event
// when the node that claims leadership with the highest term changed.
func (m *monitor) observe(node string, st nodeStatus, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[node] = st
	var best leaderEvent
	for _, s := range m.last {
		if s.Leader == s.NodeID && s.Term >= best.Term {
			best = leaderEvent{At: now, Leader: s.NodeID, Term: s.Term}
		}
	}
	if best.Leader == "" {
		return
	}
	if n := len(m.events); n == 0 || m.events[n-1].Term < best.Term || (m.events[n-1].Term == best.Term && m.events[n-1].Leader != best.Leader) {
		m.events = append(m.events, best)
	}
}

// leaderAt returns the last leader seen at or before t.
func (m *monitor) leaderAt(t time.Time) leaderEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out leaderEvent
	for _, e := range m.events {
		if e.At.After(t) {
			break
		}
		out = e
	}
	return out
}

// newLeaderAfter returns how long after t a leader with a higher term than
// the one at t was first seen, before until; ok is false when none was.
func (m *monitor) newLeaderAfter(t, until time.Time) (time.Duration, bool) {
	before := m.leaderAt(t)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.events {
		if e.At.After(t) && !e.At.After(until) && e.Term > before.Term {
			return e.At.Sub(t), true
		}
	}
	return 0, false
}

// current returns the leader as last seen.
func (m *monitor) current() leaderEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.events) == 0 {
		return leaderEvent{}
	}
	return m.events[len(m.events)-1]
}

// describe lists the leaders seen between from and to, with their time
// relative to from.
func (m *monitor) describe(from, to time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var parts []string
	for _, e := range m.events {
		if e.At.Before(from) || e.At.After(to) {
			continue
		}
		parts = append(parts, fmt.Sprintf("+%s %s (term %d)", e.At.Sub(from).Round(10*time.Millisecond), e.Leader, e.Term))
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, ", ")
}
