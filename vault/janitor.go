package vault

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/audit"
)

// janitorInterval is how often the leader looks for deleted objects whose
// retention has ended.
const janitorInterval = time.Minute

// runLeader is the leader-only work; it stops when ctx is cancelled
// (leadership lost). Everything it does is a raft command computed from
// replicated state, so a new leader simply carries on.
func (n *Node) runLeader(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunOrders(ctx)
	}()
	defer func() { <-done }()
	renewals := make(chan struct{})
	go func() {
		defer close(renewals)
		n.RunRenewals(ctx)
	}()
	defer func() { <-renewals }()
	outbox := make(chan struct{})
	go func() {
		defer close(outbox)
		n.runOutbox(ctx)
	}()
	defer func() { <-outbox }()
	rollouts := make(chan struct{})
	go func() {
		defer close(rollouts)
		n.RunRollouts(ctx)
	}()
	defer func() { <-rollouts }()
	retention := make(chan struct{})
	go func() {
		defer close(retention)
		n.RunRetention(ctx, n.opts.RetentionInterval)
	}()
	defer func() { <-retention }()
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		n.purgeExpired(ctx, time.Now())
		if err := n.PurgeExpiredSessions(ctx, time.Now()); err != nil {
			n.Log.Warn("purging expired console sessions failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// systemAudit is this node's audit trail as the leader's own work
// (version retention) records in it (fleet.AuditTrail).
type systemAudit struct{ n *Node }

func (s systemAudit) Err() error {
	if s.n.auditLog == nil {
		return nil
	}
	return s.n.auditLog.Err()
}

func (s systemAudit) AppendSync(ctx context.Context, r audit.Record) error {
	if s.n.auditLog == nil {
		return nil
	}
	r.Node = s.n.opts.NodeID
	return s.n.auditLog.AppendSync(ctx, r)
}

// purgeExpired purges soft-deleted objects whose scheduled purge date has
// passed. Each purge is conditional on the object's meta record being
// unchanged, so a concurrent recover wins.
func (n *Node) purgeExpired(ctx context.Context, now time.Time) {
	if n.Barrier.Load() == nil {
		return
	}
	for _, kind := range []string{core.KindCertificates, core.KindSecrets, core.KindKeys} {
		prefix := "deleted/" + kind + "/"
		entries, _ := n.Store.List(prefix, "", 0)
		for _, e := range entries {
			var d core.Deletion
			if json.Unmarshal(e.Value, &d) != nil || d.ScheduledPurge > now.Unix() {
				continue
			}
			name := strings.TrimPrefix(e.Key, prefix)
			_, me, found, err := n.LoadMeta(kind, name)
			if err != nil || !found {
				continue
			}
			b := (&raftstore.Batch{}).Check(core.MetaKey(kind, name), me.Index)
			core.PurgeOps(b, kind, name)
			if kind == core.KindCertificates {
				for _, mk := range core.ManagedKinds {
					if mm, _, ok, _ := n.LoadMeta(mk, name); ok && mm.ManagedBy == core.KindCertificates {
						core.PurgeOps(b, mk, name)
					}
				}
			}
			if _, err := n.Store.Apply(ctx, b); err != nil {
				n.Log.Warn("scheduled purge failed", "kind", kind, "name", name, "err", err)
				continue
			}
			n.Log.Info("purged at the end of its retention", "kind", kind, "name", name)
		}
	}
}
