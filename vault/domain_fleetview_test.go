package vault

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
)

// putAgent stores an agent record and its bindings' reports as the
// enrollment and report paths would.
func putAgent(t *testing.T, n *Node, rec fleet.AgentRecord, reports ...fleet.AgentReport) uint64 {
	t.Helper()
	b := (&raftstore.Batch{}).Put(fleet.PrefixAgents+rec.ID, core.MustJSON(rec))
	for i, rep := range reports {
		st := fleet.BindingState{Agent: rec.ID, Time: time.Unix(1_900_000_000+int64(i), 0).UTC(), AgentReport: rep}
		b.Put("agent-bindings/"+rec.ID+"/"+rep.Object, core.MustJSON(st))
	}
	idx, err := n.Store.Apply(context.Background(), b)
	if err != nil {
		t.Fatalf("store agent %s: %v", rec.ID, err)
	}
	return idx
}

// TestFleetOverview (issue 19): the fleet page's domain: agents a page at
// a time and by group, each binding set against the object's current
// version (drift) and its last result (failures); the objects with a
// rollout plan, a page at a time, filtered by the caller's access; and
// the wait for a change that feeds the live pages.
func TestFleetOverview(t *testing.T) {
	n := startClockNode(t, &testClock{t: time.Now()})
	ctx := context.Background()
	createCert(t, n, "www", keyvault.X509Properties{Subject: "CN=www", ValidityInMonths: 12}, keyvault.Trigger{LifetimePercentage: 80})
	m, _, _, err := n.LoadMeta(core.KindCertificates, "www")
	if err != nil || m.Current == "" {
		t.Fatalf("www has no current version: %v", err)
	}
	cur := m.Current
	for i := range 5 {
		group := "web"
		if i%2 == 1 {
			group = "edge"
		}
		putAgent(t, n, fleet.AgentRecord{ID: fmt.Sprintf("a%d", i), Name: fmt.Sprintf("vm-%d", i), Group: group},
			fleet.AgentReport{Object: "certificates/www", Result: "installed", Version: cur})
	}
	putAgent(t, n, fleet.AgentRecord{ID: "a5", Name: "vm-5", Group: "web"},
		fleet.AgentReport{Object: "certificates/www", Result: "installed", Version: "old"},
		fleet.AgentReport{Object: "certificates/gone", Result: "installed", Version: "x"})
	putAgent(t, n, fleet.AgentRecord{ID: "a6", Name: "vm-6", Group: "web"},
		fleet.AgentReport{Object: "certificates/www", Result: "rolled-back", Version: cur, Previous: "old", Detail: "health check failed"})

	// Pages of 2 over the web group: a0 a2 | a4 a5 | a6.
	var got [][]string
	after := ""
	for {
		pg, err := n.ListAgentPage(ctx, core.Caller{}, fleet.AgentPageRequest{Group: "web", After: after, Limit: 2})
		if err != nil {
			t.Fatalf("ListAgentPage after %q: %v", after, err)
		}
		var ids []string
		for _, a := range pg.Agents {
			ids = append(ids, a.ID)
		}
		got = append(got, ids)
		if pg.Next == "" {
			break
		}
		after = pg.Next
	}
	if fmt.Sprint(got) != "[[a0 a2] [a4 a5] [a6]]" {
		t.Errorf("pages of the web group: got %v, want [[a0 a2] [a4 a5] [a6]]", got)
	}

	pg, err := n.ListAgentPage(ctx, core.Caller{}, fleet.AgentPageRequest{})
	if err != nil || len(pg.Agents) != 7 || pg.Next != "" {
		t.Fatalf("all agents: %d, next %q, %v; want 7 on one page", len(pg.Agents), pg.Next, err)
	}
	by := map[string]fleet.AgentOverview{}
	for _, a := range pg.Agents {
		by[a.ID] = a
	}
	if a := by["a0"]; a.Drift != 0 || a.Failures != 0 || len(a.Objects) != 1 || a.Objects[0].Held != cur || a.Objects[0].Current != cur || a.LastSeen.IsZero() {
		t.Errorf("a0 holds the current version: got %+v", a)
	}
	if a := by["a5"]; a.Drift != 1 || a.Failures != 0 || len(a.Objects) != 2 {
		t.Errorf("a5 holds an old version of www and a deleted object: got drift %d, failures %d, %d objects; want 1, 0, 2", a.Drift, a.Failures, len(a.Objects))
	} else if gone := a.Objects[0]; gone.Object != "certificates/gone" || gone.Drift || gone.Current != "" {
		t.Errorf("a binding of an object that does not exist: %+v, want no current version and no drift", gone)
	}
	if a := by["a6"]; a.Failures != 1 || a.Drift != 1 || !a.Objects[0].Failed || a.Objects[0].Held != "old" || a.Objects[0].Detail != "health check failed" {
		t.Errorf("a6 rolled back: got %+v, want one failure holding the previous version", a)
	}

	// Rollouts: the objects with a plan, those the caller may see.
	createCert(t, n, "api", keyvault.X509Properties{Subject: "CN=api", ValidityInMonths: 12}, keyvault.Trigger{LifetimePercentage: 80})
	for _, name := range []string{"www", "api"} {
		if _, err := n.SetRolloutPlan(ctx, core.Caller{}, fleet.SetRolloutPlanRequest{Kind: core.KindCertificates, Name: name,
			Plan: fleet.RolloutPlan{Waves: []string{"1", "100%"}}}); err != nil {
			t.Fatalf("plan %s: %v", name, err)
		}
	}
	rp, err := n.ListRollouts(ctx, core.Caller{}, fleet.RolloutPageRequest{Limit: 1})
	if err != nil || len(rp.Items) != 1 || rp.Items[0].Name != "api" || rp.Next != "certificates/api" {
		t.Fatalf("first page of rollouts: %+v %v, want api and a next page", rp, err)
	}
	rp, err = n.ListRollouts(ctx, core.Caller{}, fleet.RolloutPageRequest{After: rp.Next, Limit: 1})
	if err != nil || len(rp.Items) != 1 || rp.Items[0].Name != "www" || rp.Next != "" {
		t.Fatalf("second page of rollouts: %+v %v, want www, the last", rp, err)
	}
	rp, err = n.ListRollouts(ctx, core.Caller{}, fleet.RolloutPageRequest{Keep: func(r fleet.RolloutRef) bool { return r.Name == "www" }})
	if err != nil || len(rp.Items) != 1 || rp.Items[0].Name != "www" {
		t.Fatalf("rollouts kept by the caller's access: %+v %v, want www only", rp, err)
	}

	// The wait: a report wakes the agents' and the rollouts' views.
	for _, scope := range []fleet.ChangeScope{fleet.AgentChanges, fleet.RolloutChanges} {
		from := n.ChangeIndex()
		woke := make(chan uint64, 1)
		errs := make(chan error, 1)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		go func() {
			idx, err := n.WaitChange(wctx, scope, from)
			errs <- err
			woke <- idx
		}()
		idx := putAgent(t, n, fleet.AgentRecord{ID: "a0", Name: "vm-0", Group: "web"},
			fleet.AgentReport{Object: "certificates/www", Result: "unchanged", Version: cur})
		if err := <-errs; err != nil {
			t.Fatalf("scope %d: WaitChange: %v", scope, err)
		}
		if got := <-woke; got < idx {
			t.Errorf("scope %d: woke at %d, want the report's index %d or later", scope, got, idx)
		}
		cancel()
	}
	// Nothing changes: the wait ends with its context.
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := n.WaitChange(qctx, fleet.RolloutChanges, n.ChangeIndex()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a quiet wait: got %v, want the context's deadline", err)
	}
	if _, err := n.WaitChange(ctx, fleet.ChangeScope(99), 0); err == nil {
		t.Errorf("an unknown scope: got no error")
	}
}
