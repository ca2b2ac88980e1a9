package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/audit"
	"github.com/certvault/certvault/vault/core"
)

// Version retention's rounds (issue 20). The leader walks the live
// objects, asks the core which old versions the object's retention lets
// go (core/retention.go), keeps back every version an agent holds or a
// rollout refers to, and purges the rest in small raft batches, each
// built on the state it read (compare-and-set on the object's meta
// record, its pending operation, its rollout, its retention and the
// settings), so a batch that raced a new version fails and the next
// round tries again. Each batch leaves an audit record on the leader.

const (
	// DefaultRetentionInterval is how often the leader runs a round.
	DefaultRetentionInterval = 10 * time.Minute
	// RetentionBatchVersions bounds the versions one raft batch purges.
	RetentionBatchVersions = 100
	// RetentionRoundVersions bounds the versions one round purges; the
	// next round goes on where it stopped (what it purged is gone).
	RetentionRoundVersions = 1000
	// retentionPause separates two batches of a round, so that retention
	// never holds the log for long.
	retentionPause = 100 * time.Millisecond
	// RetentionPrincipal is who the audit trail says purged versions.
	RetentionPrincipal = "retention"
)

// AuditTrail is where leader-driven work records what it did: the
// node's own audit trail. Err says whether the trail can be written now;
// AppendSync returns once the record is durable. Both are safe for
// concurrent use.
type AuditTrail interface {
	Err() error
	AppendSync(ctx context.Context, r audit.Record) error
}

// nodeTrail is a node's audit trail and the node's ID.
type nodeTrail struct {
	trail AuditTrail
	node  string
}

// SetSystemAudit gives the fleet the audit trail of this node (ID node),
// in which the leader's own work is recorded; until it has one, no
// retention round runs. Safe for concurrent use with the rounds.
func (f *Fleet) SetSystemAudit(trail AuditTrail, node string) {
	f.systemAudit.Store(&nodeTrail{trail, node})
}

// RetentionResult sums up one round.
type RetentionResult struct {
	// Purged counts the versions purged, Batches the raft batches that
	// did it, Stale the batches refused because the object changed.
	Purged, Batches, Stale int
}

// RunRetention runs a retention round every interval (0:
// DefaultRetentionInterval) until ctx ends (leadership lost).
func (f *Fleet) RunRetention(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRetentionInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := f.RetentionRound(ctx, f.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			f.Log.Warn("version retention round stopped", "err", err, "purged", res.Purged)
		case res.Purged > 0 || res.Stale > 0:
			f.Log.Info("version retention round", "purged", res.Purged, "batches", res.Batches, "stale", res.Stale)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RetentionRound purges, at now, up to RetentionRoundVersions versions
// that retention lets go, in batches of at most RetentionBatchVersions.
// A batch whose object changed meanwhile is skipped (Stale); the error
// is the first that stops the round (the audit trail cannot be written,
// the store refuses).
func (f *Fleet) RetentionRound(ctx context.Context, now time.Time) (RetentionResult, error) {
	var res RetentionResult
	// Nothing is purged that the trail cannot record.
	trail := f.systemAudit.Load()
	if f.Barrier.Load() == nil || trail == nil {
		return res, nil
	}
	needed := f.neededVersions()
	for _, kind := range []string{core.KindCertificates, core.KindSecrets, core.KindKeys} {
		prefix := "meta/" + kind + "/"
		es, _ := f.Store.List(prefix, "", 0)
		for _, me := range es {
			if res.Purged >= RetentionRoundVersions {
				return res, nil
			}
			var m core.ObjectMeta
			if json.Unmarshal(me.Value, &m) != nil {
				continue
			}
			name := strings.TrimPrefix(me.Key, prefix)
			if err := f.retainObject(ctx, trail, kind, name, m, me, needed, now, &res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// retainObject purges what retention lets go of one object.
func (f *Fleet) retainObject(ctx context.Context, trail *nodeTrail, kind, name string, m core.ObjectMeta, me raftstore.Entry, needed map[string]map[string]string, now time.Time, res *RetentionResult) error {
	need := map[string]string{}
	kinds := []string{kind}
	if kind == core.KindCertificates {
		// Agents bind a certificate's secret too; it has the same versions.
		kinds = append(kinds, core.KindSecrets)
	}
	var rollouts []raftstore.Entry
	for _, k := range kinds {
		for v, why := range needed[k+"/"+name] {
			need[v] = why
		}
		r, idx := f.loadRollout(k, name)
		rollouts = append(rollouts, raftstore.Entry{Key: RolloutKey(k, name), Index: idx})
		if r != nil {
			need[r.Version] = "target of the rollout (" + r.Status + ")"
			if r.Previous != "" {
				need[r.Previous] = "previous version of the rollout (" + r.Status + ")"
			}
		}
	}
	plan, err := f.PlanRetention(kind, name, m, me, need, now)
	if err != nil {
		return fmt.Errorf("retention of %s/%s: %w", kind, name, err)
	}
	for _, e := range rollouts {
		plan.Check(e)
	}
	victims := plan.Victims
	for len(victims) > 0 && res.Purged < RetentionRoundVersions {
		n := min(len(victims), RetentionBatchVersions, RetentionRoundVersions-res.Purged)
		batch := victims[:n]
		victims = victims[n:]
		if err := trail.trail.Err(); err != nil {
			return fmt.Errorf("audit trail: %w", err)
		}
		b, err := f.RetentionBatch(plan, batch, now)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		idx, err := f.Commit(actx, b)
		cancel()
		if core.IsConflict(err) {
			res.Stale++
			return nil
		}
		if err != nil {
			return fmt.Errorf("purge versions of %s/%s: %w", kind, name, err)
		}
		res.Purged += n
		res.Batches++
		versions := make([]string, n)
		for i, v := range batch {
			versions[i] = v.Version
		}
		f.Log.Info("retention purged versions", "object", kind+"/"+name, "versions", len(versions), "rule", plan.Rule.String())
		if err := f.auditRetention(ctx, trail, kind, name, m, plan.Rule, batch, idx, now); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retentionPause):
		}
	}
	return nil
}

// auditRetention records one purged batch in the leader's audit trail:
// the object, the versions, the rule, the raft index that purged them.
func (f *Fleet) auditRetention(ctx context.Context, trail *nodeTrail, kind, name string, m core.ObjectMeta, rule core.Retention, batch []core.RetentionVictim, idx uint64, now time.Time) error {
	versions := make([]string, len(batch))
	expired := 0
	for i, v := range batch {
		versions[i] = v.Version
		if v.Expires != 0 {
			expired++
		}
	}
	display := name
	if m.Name != "" {
		display = m.Name
	}
	action := map[string]access.Action{core.KindCertificates: access.CertificatesDelete, core.KindSecrets: access.SecretsDelete, core.KindKeys: access.KeysDelete}[kind]
	rec := audit.Record{Time: now.UTC(), Node: trail.node, RequestID: fmt.Sprintf("retention-%d", idx), Principal: RetentionPrincipal, Source: "leader",
		Method: "PURGE", Operation: "retention: purge versions", Action: string(action), Object: "/" + kind + "/" + display,
		Version: strings.Join(versions, ","), Status: 200, Outcome: "allowed",
		Detail: fmt.Sprintf("%s: %d version(s) older than the last %d, not current, held by no agent, rollout or pending operation; %d expired more than %d days ago, %d without expiry",
			rule, len(batch), rule.Versions, expired, rule.ExpiredDays, len(batch)-expired)}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := trail.trail.AppendSync(actx, rec); err != nil {
		return fmt.Errorf("audit record of the purge of %s/%s at index %d: %w", kind, name, idx, err)
	}
	return nil
}

// neededVersions maps each object (KIND/canonical name) to the versions
// agents hold — the one each last reported and the one before it, which
// it may roll back to — and who holds them. Revoked agents hold nothing:
// they can fetch nothing more.
func (f *Fleet) neededVersions() map[string]map[string]string {
	revoked := map[string]bool{}
	for _, a := range f.agents() {
		if a.Revoked {
			revoked[a.ID] = true
		}
	}
	out := map[string]map[string]string{}
	add := func(object, version, why string) {
		if version == "" {
			return
		}
		if out[object] == nil {
			out[object] = map[string]string{}
		}
		out[object][version] = why
	}
	for _, st := range core.ListJSON[BindingState](f.Core, prefixAgentBindings, "") {
		if revoked[st.Agent] {
			continue
		}
		add(st.Object, st.Version, "reported by agent "+st.Agent)
		add(st.Object, st.Previous, "previous version of agent "+st.Agent)
	}
	return out
}
