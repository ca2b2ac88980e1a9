package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
)

// Names are case-insensitive (Key Vault's rule). Every storage key that
// holds an object or issuer name holds its canonical form (objname), and
// the record keeps the creator's spelling for display. Data written before
// that rule may hold other spellings; this file finds them: two names that
// differ only by case are refused at start (nobody can tell which one a
// request meant), and a lone non-canonical spelling is moved to its
// canonical key by the leader, once.

// ErrNameCollision is returned (and stops the node) when the state holds
// two names that differ only by letter case.
var ErrNameCollision = errors.New("vault: names that differ only by letter case")

// nameCollisions lists, for the meta records and issuers that keys
// returns, every group of names that differ only by case, e.g.
// "secrets: CASEY, casey".
func nameCollisions(keys func(prefix string) []string) []string {
	groups := map[string][]string{}
	for _, prefix := range []string{"meta/" + core.KindCertificates + "/", "meta/" + core.KindSecrets + "/", "meta/" + core.KindKeys + "/", "issuers/"} {
		kind := strings.TrimSuffix(strings.TrimPrefix(prefix, "meta/"), "/")
		for _, k := range keys(prefix) {
			name := strings.TrimPrefix(k, prefix)
			g := kind + ": " + objname.Canonical(name)
			groups[g] = append(groups[g], name)
		}
	}
	var out []string
	for g, names := range groups {
		if len(names) > 1 {
			sort.Strings(names)
			kind, _, _ := strings.Cut(g, ":")
			out = append(out, kind+": "+strings.Join(names, ", "))
		}
	}
	sort.Strings(out)
	return out
}

// collisionError is the error that stops a node whose state holds names
// differing only by case.
func collisionError(groups []string) error {
	return fmt.Errorf("%w: %s. Names are case-insensitive, so each group is one name to this version of certvault. "+
		"Start the previous version, keep one spelling of each (back up, delete and purge the others, restore under another name), then start this version",
		ErrNameCollision, strings.Join(groups, "; "))
}

// storeKeys lists the keys under prefix in the local state.
func (n *Node) storeKeys(prefix string) []string { return n.Store.Keys(prefix) }

// snapshotKeys adapts a snapshot view for nameCollisions.
func snapshotKeys(v raftstore.SnapshotView) func(string) []string {
	return v.Keys
}

// checkNames runs once the node has caught up after start: it stops the
// node when its state holds names that differ only by case, and moves
// names stored under another spelling to their canonical keys (on the
// leader; followers wait for the leader's move). Every wait is bounded.
func (n *Node) checkNames(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Minute)
	if !n.awaitCaughtUp(ctx, deadline) {
		return // not caught up for long: the readiness probe says why
	}
	if groups := nameCollisions(n.storeKeys); len(groups) > 0 {
		n.die(collisionError(groups))
		return
	}
	for {
		legacy := n.legacyNameKeys()
		if len(legacy) == 0 {
			return
		}
		if n.Store.IsLeader() {
			if err := n.moveLegacyNames(ctx, legacy); err != nil {
				n.Log.Warn("could not move names to their canonical keys; will retry", "err", err)
			} else {
				n.Log.Info("moved names stored before names were case-insensitive to their canonical keys", "keys", len(legacy))
				continue
			}
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, time.Second) {
			n.Log.Warn("names stored under a non-canonical spelling remain; they are moved when this node leads", "keys", len(legacy))
			return
		}
	}
}

// awaitCaughtUp waits until the keyring is open and a linearizable read
// succeeds: this node has applied everything committed before it asked.
// It reports false when ctx ends or, with a non-zero deadline, the
// deadline passes first.
func (n *Node) awaitCaughtUp(ctx context.Context, deadline time.Time) bool {
	for {
		if n.Barrier.Load() != nil {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.Store.Linearize(lctx)
			cancel()
			if err == nil {
				return true
			}
		}
		if (!deadline.IsZero() && time.Now().After(deadline)) || !sleepCtx(ctx, 500*time.Millisecond) {
			return false
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// legacyNameKeys returns the entries whose name segment is not canonical.
func (n *Node) legacyNameKeys() []raftstore.Entry {
	var out []raftstore.Entry
	// Keys only: a value is read for the (rare) legacy keys alone.
	legacy := func(prefix string) {
		for _, k := range n.Store.Keys(prefix) {
			if core.CanonicalStorageKey(k) != k {
				if e, ok := n.Store.Get(k); ok {
					out = append(out, e)
				}
			}
		}
	}
	// Versions (most of the state) are looked at only under the names
	// whose meta record is stored under another spelling: an object has a
	// meta record as long as it has versions, so a start on a current
	// state does not walk every version.
	for _, l := range append(slices.Clone(core.NameLayouts), core.NameLayout{Prefix: "pki/"}) {
		if l.Prefix != "ver/" && l.Prefix != "val/" {
			legacy(l.Prefix)
		}
	}
	for _, e := range slices.Clone(out) {
		if rest, ok := strings.CutPrefix(e.Key, "meta/"); ok {
			legacy("ver/" + rest + "/")
			legacy("val/" + rest + "/")
		}
	}
	return out
}

// moveLegacyNames moves entries to their canonical keys, one batch per
// name so that an object moves whole: values sealed under the old key are
// re-sealed under the new one (the storage key is the ciphertext's
// additional data) and meta records keep the old spelling for display.
// Each put requires the canonical key to be free, so a concurrent create
// of the same name makes the batch fail instead of overwriting.
func (n *Node) moveLegacyNames(ctx context.Context, entries []raftstore.Entry) error {
	byName := map[string][]raftstore.Entry{}
	for _, e := range entries {
		_, name, _, _ := core.SplitNameKey(e.Key)
		byName[objname.Canonical(name)] = append(byName[objname.Canonical(name)], e)
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := &raftstore.Batch{}
		for _, e := range byName[name] {
			nk, v, err := n.RekeyEntry(e.Key, e.Value, fixIssuerName)
			if err != nil {
				return err
			}
			b.PutIf(nk, v, raftstore.NotExist).DeleteIf(e.Key, e.Index)
		}
		if _, err := n.Store.Apply(ctx, b); err != nil {
			return fmt.Errorf("move %s to its canonical keys: %w", name, err)
		}
	}
	return nil
}

// fixIssuerName restores an issuer's spelling inside its sealed record
// when the record has none (the key held it before names were
// canonical).
func fixIssuerName(key string, pt []byte) []byte {
	if !strings.HasPrefix(key, "issuers/") {
		return pt
	}
	var si issuance.StoredIssuer
	if json.Unmarshal(pt, &si) != nil || si.Name != "" {
		return pt
	}
	si.Name = strings.TrimPrefix(key, "issuers/")
	return core.MustJSON(si)
}
