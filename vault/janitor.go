package vault

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
)

// janitorInterval is how often the leader looks for deleted objects whose
// retention has ended.
const janitorInterval = time.Minute

// runLeader is the leader-only work; it stops when ctx is cancelled
// (leadership lost). Everything it does is a raft command computed from
// replicated state, so a new leader simply carries on.
func (n *Node) runLeader(ctx context.Context) {
	var loops sync.WaitGroup
	defer loops.Wait()
	retention := func(ctx context.Context) { n.RunRetention(ctx, n.opts.RetentionInterval) }
	for _, run := range []func(context.Context){n.RunOrders, n.RunRenewals, n.runOutbox, n.RunRollouts, retention} {
		loops.Go(func() { run(ctx) })
	}
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
