package fleet

import (
	"context"
	"fmt"

	"github.com/certvault/certvault/vault/core"
)

// Waiting for the fleet to change, for live views (the console's event
// streams): a view remembers the index it reflects and waits for a
// record it shows to change after it. The wait is the store's watch on
// the local state, so any node serves it and a change is never missed;
// a wake-up may come once too often.

// ChangeScope names the records a view shows.
type ChangeScope int

const (
	// RolloutChanges are the rollout plans and states and the agents'
	// reports (which make a wave's counts).
	RolloutChanges ChangeScope = iota + 1
	// AgentChanges are the agent records (enrollment, renewal,
	// revocation) and the agents' reports.
	AgentChanges
)

// prefixes are the store prefixes of the scope's records.
func (s ChangeScope) prefixes() []string {
	switch s {
	case RolloutChanges:
		return []string{core.PrefixRolloutPlans, core.PrefixRollouts, prefixAgentBindings}
	case AgentChanges:
		return []string{PrefixAgents, prefixAgentBindings}
	}
	return nil
}

// ChangeIndex is the index of the local state now: a view built from it
// passes it to WaitChange.
func (f *Fleet) ChangeIndex() uint64 { return f.Store.AppliedIndex() }

// WaitChange blocks until a record of scope changes at an index greater
// than after, and returns the latest change's index (the next after). An
// after beyond the local state (an index from another node, or made up)
// counts from the local state. It returns an error wrapping ctx.Err()
// when ctx ends first, and at once for an unknown scope.
func (f *Fleet) WaitChange(ctx context.Context, scope ChangeScope, after uint64) (uint64, error) {
	prefixes := scope.prefixes()
	if prefixes == nil {
		return after, fmt.Errorf("fleet: wait for a change: unknown scope %d", scope)
	}
	after = min(after, f.Store.AppliedIndex())
	for {
		idx, err := f.Store.Watch(ctx, prefixes, after)
		if err != nil {
			return after, fmt.Errorf("fleet: wait for a change: %w", err)
		}
		if idx > after {
			return idx, nil
		}
	}
}
