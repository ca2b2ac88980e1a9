package core

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/internal/serial"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
)

// Version retention (issue 20): the rules that say which old versions of
// an object may go, the per-object override of the vault's settings, the
// raft batch that purges versions, and the small history record that
// keeps a purged certificate version in the evidence report. What the
// fleet still needs (agents, rollouts) and the leader's rounds are
// vault/fleet's (fleet/retention.go).
//
//	retain/<kind>/<name>              ObjectRetention: the object's own N and D
//	history/<kind>/<name>/<version>   VersionHistory: a purged certificate version

// Limits and defaults of the retention settings.
const (
	// DefaultRetainExpiredDays is the grace after expiry when none is set.
	DefaultRetainExpiredDays = 30
	// MaxRetainVersions bounds retain_versions.
	MaxRetainVersions = 10000
	// MaxRetainExpiredDays bounds retain_expired_days (ten years).
	MaxRetainExpiredDays = 3650
)

// RetainKey is where an object's own retention is stored.
func RetainKey(kind, name string) string { return "retain/" + kind + "/" + objname.Canonical(name) }

// HistoryPrefix holds the history records of an object's purged versions.
func HistoryPrefix(kind, name string) string {
	return "history/" + kind + "/" + objname.Canonical(name) + "/"
}

// HistoryKey is the history record of one purged version.
func HistoryKey(kind, name, version string) string { return HistoryPrefix(kind, name) + version }

// CheckRetention checks retention settings (nil: not given).
func CheckRetention(versions, expiredDays *int) error {
	if versions != nil && (*versions < 0 || *versions > MaxRetainVersions) {
		return BadParameter("retain_versions", "retain_versions %d: use 0 to keep every version (the default), or 1 to %d to keep that many of each object's newest versions", *versions, MaxRetainVersions)
	}
	if expiredDays != nil && (*expiredDays < 0 || *expiredDays > MaxRetainExpiredDays) {
		return BadParameter("retain_expired_days", "retain_expired_days %d: use 0 to %d, the days after a version's expiry before retention may purge it", *expiredDays, MaxRetainExpiredDays)
	}
	return nil
}

// ObjectRetention is an object's own retention; a nil member takes the
// vault's setting.
type ObjectRetention struct {
	RetainVersions    *int `json:"retain_versions,omitempty"`
	RetainExpiredDays *int `json:"retain_expired_days,omitempty"`
}

// Retention is the retention that applies to an object.
type Retention struct {
	// Versions is N: versions older than the object's last N may be
	// purged; 0 keeps every version.
	Versions int `json:"retain_versions"`
	// ExpiredDays is D: a version with an expiry stays until D days after
	// it.
	ExpiredDays int `json:"retain_expired_days"`
}

// String says the rule in words, for the audit trail and the history.
func (r Retention) String() string {
	return fmt.Sprintf("retain_versions=%d retain_expired_days=%d", r.Versions, r.ExpiredDays)
}

// loadObjectRetention returns an object's own retention and its entry
// (Index 0, raftstore.NotExist, when it has none).
func (c *Core) loadObjectRetention(kind, name string) (ObjectRetention, raftstore.Entry, error) {
	var o ObjectRetention
	e, ok := c.Store.Get(RetainKey(kind, name))
	if !ok {
		return o, e, nil
	}
	return o, e, decodeJSONEntry(e, &o)
}

// EffectiveRetention is the retention of an object: its own settings
// over the vault's. The entry is the object's retention record (the
// compare-and-set token of a purge built on it).
func (c *Core) EffectiveRetention(kind, name string) (Retention, raftstore.Entry, error) {
	s := c.settings()
	r := Retention{Versions: s.RetainVersions, ExpiredDays: s.retainExpiredDays()}
	o, e, err := c.loadObjectRetention(kind, name)
	if err != nil {
		return r, e, err
	}
	if o.RetainVersions != nil {
		r.Versions = *o.RetainVersions
	}
	if o.RetainExpiredDays != nil {
		r.ExpiredDays = *o.RetainExpiredDays
	}
	return r, e, nil
}

// RetentionView is an object's retention as GET /v1/retention shows it.
type RetentionView struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Object is the object's own settings (absent members follow the
	// vault's), Effective what applies.
	Object    ObjectRetention `json:"object"`
	Effective Retention       `json:"effective"`
	// Index is the raft index of a write.
	Index uint64 `json:"-"`
}

// retentionObject returns the meta entry of an object whose retention
// may be read or set: live, and not a certificate's key or secret.
func (c *Core) retentionObject(kind, name string) (raftstore.Entry, error) {
	m, e, err := c.LiveObject(kind, name)
	if err != nil {
		return e, err
	}
	if m.ManagedBy != "" {
		return e, Forbidden("%s %s is managed by the certificate of the same name and shares its versions: set the certificate's retention instead", Singular(kind), name)
	}
	return e, nil
}

// GetObjectRetention returns an object's retention (its own and what
// applies).
func (c *Core) GetObjectRetention(ctx context.Context, p Caller, req ObjectRequest) (RetentionView, error) {
	if _, err := c.retentionObject(req.Kind, req.Name); err != nil {
		return RetentionView{}, err
	}
	o, _, err := c.loadObjectRetention(req.Kind, req.Name)
	if err != nil {
		return RetentionView{}, err
	}
	r, _, err := c.EffectiveRetention(req.Kind, req.Name)
	if err != nil {
		return RetentionView{}, err
	}
	return RetentionView{Kind: req.Kind, Name: req.Name, Object: o, Effective: r}, nil
}

// SetObjectRetentionRequest replaces an object's own retention; both
// members nil removes it (the object follows the vault's settings).
type SetObjectRetentionRequest struct {
	Kind, Name string
	Retention  ObjectRetention
}

// SetObjectRetention stores an object's own retention.
func (c *Core) SetObjectRetention(ctx context.Context, p Caller, req SetObjectRetentionRequest) (RetentionView, error) {
	o := req.Retention
	if err := CheckRetention(o.RetainVersions, o.RetainExpiredDays); err != nil {
		return RetentionView{}, err
	}
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		me, err := c.retentionObject(req.Kind, req.Name)
		if err != nil {
			return nil, err
		}
		_, re, err := c.loadObjectRetention(req.Kind, req.Name)
		if err != nil {
			return nil, err
		}
		b := (&raftstore.Batch{}).Check(me.Key, me.Index)
		if o.RetainVersions == nil && o.RetainExpiredDays == nil {
			return b.Delete(RetainKey(req.Kind, req.Name)), nil
		}
		return b.PutIf(RetainKey(req.Kind, req.Name), MustJSON(o), re.Index), nil
	})
	if err != nil {
		return RetentionView{}, err
	}
	v, err := c.GetObjectRetention(ctx, p, ObjectRequest{Kind: req.Kind, Name: req.Name})
	v.Index = idx
	return v, err
}

// RetentionVersion is what the rules look at in one version.
type RetentionVersion struct {
	Version string
	// Created is when the version was made (Unix seconds); Order, the
	// raft index that created it, orders versions made in one second.
	Created int64
	Order   uint64
	// Expires is the version's expiry (Unix seconds; a certificate's
	// leaf NotAfter, else the exp attribute), 0 when it has none.
	Expires int64
}

// RetentionVictim is a version the rules let go, and why.
type RetentionVictim struct {
	RetentionVersion
	Reason string
}

// RetentionVictims applies the rules to an object's versions: a version
// may be purged only when it is not among the newest r.Versions (by
// creation), is not in protected (the current version, a pending
// operation's, what an agent or a rollout needs: version → why), and
// has no expiry or expired more than r.ExpiredDays days before now.
// r.Versions 0 keeps everything. The result is oldest first.
func RetentionVictims(vs []RetentionVersion, r Retention, protected map[string]string, now time.Time) []RetentionVictim {
	if r.Versions <= 0 || len(vs) <= r.Versions {
		return nil
	}
	sorted := slices.Clone(vs)
	slices.SortFunc(sorted, func(a, b RetentionVersion) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.Order, b.Order), strings.Compare(a.Version, b.Version))
	})
	// Written as now-grace (both small) so that an exp attribute near
	// the int64 limit cannot overflow into the past.
	graceDays := min(max(r.ExpiredDays, 0), MaxRetainExpiredDays)
	cutoff := now.Unix() - int64(graceDays)*86400
	var out []RetentionVictim
	for _, v := range sorted[:len(sorted)-r.Versions] {
		if _, ok := protected[v.Version]; ok {
			continue
		}
		reason := fmt.Sprintf("older than the last %d versions; no expiry", r.Versions)
		if v.Expires != 0 {
			if v.Expires > cutoff {
				continue
			}
			reason = fmt.Sprintf("older than the last %d versions; expired %s, more than %d days ago",
				r.Versions, time.Unix(v.Expires, 0).UTC().Format(time.RFC3339), graceDays)
		}
		out = append(out, RetentionVictim{RetentionVersion: v, Reason: reason})
	}
	return out
}

// VersionHistory is what stays of a purged certificate version: enough
// for the evidence report's rotation history, a few hundred bytes where
// the version held its chain and key.
type VersionHistory struct {
	Version   string `json:"version"`
	Created   int64  `json:"created"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expires   int64  `json:"exp,omitempty"`
	// Serial is the leaf's serial as openssl prints it, Thumbprint its
	// SHA-1 in upper-case hex (as the report shows them).
	Serial     string `json:"serial,omitempty"`
	Thumbprint string `json:"thumbprint,omitempty"`
	CreatedBy  string `json:"created_by,omitempty"`
	How        string `json:"how,omitempty"`
	Enabled    bool   `json:"enabled"`
	// Purged is when retention purged the version (Unix seconds) and
	// Reason the rule that let it go.
	Purged int64  `json:"purged"`
	Reason string `json:"reason"`
}

// ListHistory returns the history records of an object's purged
// versions, in version id order.
func (c *Core) ListHistory(kind, name string) []VersionHistory {
	return ListJSON[VersionHistory](c, HistoryPrefix(kind, name), "")
}

// RetentionPlan is what retention may purge of one object now: the
// versions and the state they were chosen on.
type RetentionPlan struct {
	Kind, Name string
	Rule       Retention
	Victims    []RetentionVictim
	// entries are the victims' version records by version, checks the
	// records whose change makes the plan stale (the object's meta
	// record, its pending operation, its retention, the settings).
	entries map[string]raftstore.Entry
	checks  []raftstore.Entry
}

// PlanRetention applies the rules to a live object (not deleted, not a
// certificate's key or secret, with a current version) whose meta record
// is me: its current version and its pending operation's are protected
// besides needed (version → why; the fleet's). An object whose rule
// keeps every version gets an empty plan.
func (c *Core) PlanRetention(kind, name string, m ObjectMeta, me raftstore.Entry, needed map[string]string, now time.Time) (RetentionPlan, error) {
	plan := RetentionPlan{Kind: kind, Name: name, entries: map[string]raftstore.Entry{}}
	if m.Deleted != nil || m.ManagedBy != "" || m.Current == "" {
		return plan, nil
	}
	rule, re, err := c.EffectiveRetention(kind, name)
	if err != nil {
		return plan, err
	}
	plan.Rule = rule
	if rule.Versions == 0 {
		return plan, nil
	}
	// Absent records are checked as absent (index 0).
	se, _ := c.Store.Get(keySettings)
	se.Key, re.Key = keySettings, RetainKey(kind, name)
	plan.checks = append(plan.checks, me, re, se)
	protected := map[string]string{m.Current: "current version"}
	for v, why := range needed {
		protected[v] = why
	}
	if kind == KindCertificates {
		op, pe, ok, err := c.LoadPending(name)
		if err != nil {
			return plan, err
		}
		if ok && op.Version != "" {
			protected[op.Version] = "pending operation"
		}
		pe.Key = PendingKey(name)
		plan.checks = append(plan.checks, pe)
	}
	prefix := VerPrefix(kind, name)
	// Most objects have no more than N versions: count them (keys only,
	// no value read from the value log) before reading any.
	if len(c.Store.Keys(prefix)) <= rule.Versions {
		return plan, nil
	}
	es, _ := c.Store.List(prefix, "", 0)
	vs := make([]RetentionVersion, 0, len(es))
	for _, e := range es {
		var v VersionMeta
		if err := decodeJSONEntry(e, &v); err != nil {
			return plan, err
		}
		version := strings.TrimPrefix(e.Key, prefix)
		plan.entries[version] = e
		rv := RetentionVersion{Version: version, Created: v.Attributes.Created, Order: e.CreateIndex}
		if v.Attributes.Expires != nil {
			rv.Expires = *v.Attributes.Expires
		}
		if kind == KindCertificates && len(v.Chain) > 0 {
			// The certificate's own expiry, whatever the attributes say.
			if leaf, err := x509.ParseCertificate(v.Chain[0]); err == nil {
				rv.Expires = leaf.NotAfter.Unix()
			}
		}
		vs = append(vs, rv)
	}
	plan.Victims = RetentionVictims(vs, rule, protected, now)
	return plan, nil
}

// Check adds to the plan a record whose change makes it stale (the
// fleet's: a rollout); an entry with Index 0 must stay absent.
func (p *RetentionPlan) Check(e raftstore.Entry) { p.checks = append(p.checks, e) }

// RetentionBatch is the raft batch that purges victims (some of plan's)
// if nothing the plan was built on changed: each version's record and
// secret part go, and a certificate version leaves a history record.
// HSM keys are left in the token, as the purge of a deleted object
// leaves them: with reuse_key one HSM key serves several versions.
func (c *Core) RetentionBatch(plan RetentionPlan, victims []RetentionVictim, now time.Time) (*raftstore.Batch, error) {
	b := &raftstore.Batch{}
	for _, e := range plan.checks {
		b.Check(e.Key, e.Index)
	}
	for _, v := range victims {
		e, ok := plan.entries[v.Version]
		if !ok {
			return nil, fmt.Errorf("retention of %s/%s: version %s is not in the plan", plan.Kind, plan.Name, v.Version)
		}
		b.DeleteIf(e.Key, e.Index).Delete(ValKey(plan.Kind, plan.Name, v.Version))
		if plan.Kind != KindCertificates {
			continue
		}
		var vm VersionMeta
		if err := decodeJSONEntry(e, &vm); err != nil {
			return nil, err
		}
		b.Put(HistoryKey(plan.Kind, plan.Name, v.Version), MustJSON(historyOf(v, vm, now)))
	}
	return b, nil
}

// historyOf is the history record of a certificate version being purged.
func historyOf(v RetentionVictim, vm VersionMeta, now time.Time) VersionHistory {
	h := VersionHistory{Version: v.Version, Created: vm.Attributes.Created, CreatedBy: vm.CreatedBy, How: vm.How,
		Enabled: vm.Attributes.Enabled == nil || *vm.Attributes.Enabled, Purged: now.Unix(), Reason: v.Reason, Expires: v.Expires}
	if vm.Attributes.NotBefore != nil {
		h.NotBefore = *vm.Attributes.NotBefore
	}
	if len(vm.Chain) > 0 {
		h.Thumbprint = strings.ToUpper(hex.EncodeToString(certs.Thumbprint(vm.Chain[0])))
		if leaf, err := x509.ParseCertificate(vm.Chain[0]); err == nil {
			h.Serial, h.NotBefore, h.Expires = serial.Format(leaf.SerialNumber), leaf.NotBefore.Unix(), leaf.NotAfter.Unix()
		}
	}
	return h
}

// IsConflict reports whether a commit lost a compare-and-set: the state
// changed under a batch built on it.
func IsConflict(err error) bool { return errors.Is(err, raftstore.ErrConflict) }
