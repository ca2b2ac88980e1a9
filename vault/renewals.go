package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/keyvault"
	"github.com/certvault/certvault/vault/renewal"
)

// Renewal plans live in Raft under sched/certificates/DUE/NAME, DUE the
// Unix second the renewal is due, zero-padded so that keys sort by time.
// A certificate's meta record names its plan (objectMeta.Plan). The
// leader reads only the plans that are due, so a tick with nothing due
// costs the same with ten certificates or a million.
const (
	schedPrefix     = "sched/certificates/"
	schedMailPrefix = "schedmail/certificates/"
)

func schedKey(due time.Time, name string) string {
	return schedAt(schedPrefix, due, name)
}

func schedAt(prefix string, due time.Time, name string) string {
	return prefix + fmt.Sprintf("%012d", due.Unix()) + "/" + name
}

// forDue calls act, in due order, for each plan under prefix that is due
// at now (its key PREFIX + DUE + "/" + REST), at most 64 per call, and
// returns when the next plan is due: now when more may be due, zero when
// there is none.
func (n *Node) forDue(ctx context.Context, prefix string, now time.Time, act func(e raftstore.Entry, rest string)) time.Time {
	if n.barrier.Load() == nil {
		return now.Add(time.Second)
	}
	const page = 64
	entries, _ := n.store.List(prefix, "", page)
	for _, e := range entries {
		secs, rest, ok := strings.Cut(strings.TrimPrefix(e.Key, prefix), "/")
		s, err := strconv.ParseInt(secs, 10, 64)
		if !ok || err != nil {
			continue
		}
		if due := time.Unix(s, 0); due.After(now) {
			return due
		}
		if ctx.Err() != nil {
			return time.Time{}
		}
		act(e, rest)
	}
	if len(entries) == page {
		return now
	}
	return time.Time{}
}

// renewalPlan is a plan's value.
type renewalPlan struct {
	Version string `json:"version"`
	// Attempts counts renewals of this version that failed; LastError
	// says why the last one did.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Renewal scheduler tuning.
const (
	// renewRetryMin and renewRetryMax bound the backoff after a failed
	// renewal.
	renewRetryMin = 30 * time.Second
	renewRetryMax = time.Hour
	// renewPendingWait is when a plan whose renewal is an order still in
	// progress (an ACME CA) is looked at again; the completed order
	// replaces the plan.
	renewPendingWait = 10 * time.Minute
	// renewIdle is the longest the scheduler sleeps with nothing due.
	renewIdle = time.Hour
)

// planVersion adds to b the renewal plan of a certificate's version (and
// the removal of the plan it replaces), and records it in cm.
func planVersion(b *raftstore.Batch, cm *objectMeta, name, version string, p *keyvault.Policy, v *versionMeta) {
	var ari *renewal.Window
	if ri := v.RenewalInfo; ri != nil {
		ari = &renewal.Window{Start: time.Unix(ri.Start, 0), End: time.Unix(ri.End, 0)}
	}
	var nbf, exp time.Time
	if v.Attributes.NotBefore != nil && v.Attributes.Expires != nil {
		nbf, exp = time.Unix(*v.Attributes.NotBefore, 0), time.Unix(*v.Attributes.Expires, 0)
	}
	// The lifetime counts from when the vault got the certificate: a
	// notBefore backdated for clock skew (a minute, for the vault's own
	// issuers) must not make a short-lived version due at once, and a
	// version is never due before it exists.
	if created := time.Unix(v.Attributes.Created, 0); v.Attributes.Created != 0 && created.After(nbf) && created.Before(exp) {
		nbf = created
	}
	key := ""
	if due, ok := renewal.Due(p, name, nbf, exp, ari); ok && !exp.IsZero() {
		key = schedKey(due, name)
	}
	if cm.Plan != "" && cm.Plan != key {
		b.Delete(cm.Plan)
	}
	if key != "" {
		b.Put(key, mustJSON(renewalPlan{Version: version}))
	}
	cm.Plan = key
	mailKey := ""
	if due, ok := renewal.EmailDue(p, name, nbf, exp); ok && !exp.IsZero() {
		mailKey = schedAt(schedMailPrefix, due, name)
	}
	if cm.MailPlan != "" && cm.MailPlan != mailKey {
		b.Delete(cm.MailPlan)
	}
	if mailKey != "" {
		b.Put(mailKey, mustJSON(renewalPlan{Version: version}))
	}
	cm.MailPlan = mailKey
}

// replanCurrent adds to b the plan of the current version under policy p
// (after a policy change: editing the lifetime actions is how AutoRenew
// is turned on and off), and the meta record that names it.
func (n *Node) replanCurrent(b *raftstore.Batch, name string, p *keyvault.Policy) error {
	cm, cprev, ok, err := n.loadMeta(kindCertificates, name)
	if err != nil || !ok || cm.Current == "" {
		return err
	}
	v, _, ok, err := n.loadVersion(kindCertificates, name, cm.Current)
	if err != nil || !ok {
		return err
	}
	before, beforeMail := cm.Plan, cm.MailPlan
	planVersion(b, &cm, name, cm.Current, p, &v)
	if cm.Plan != before || cm.MailPlan != beforeMail {
		putMeta(b, kindCertificates, name, cm, cprev)
	}
	return nil
}

// runRenewals is the leader's renewal scheduler: it renews the
// certificates whose plan is due, then sleeps until the next plan is due
// or the plans change. A renewal is one raft command conditional on the
// plan it consumes, so a new leader never renews a version twice.
func (n *Node) runRenewals(ctx context.Context) {
	for {
		after := n.store.AppliedIndex()
		now := n.now()
		next := n.renewDue(ctx, now)
		for _, m := range []time.Time{n.mailDue(ctx, now), n.eventsDue(ctx, now)} {
			if !m.IsZero() && (next.IsZero() || m.Before(next)) {
				next = m
			}
		}
		wait := renewIdle
		if !next.IsZero() {
			wait = max(next.Sub(n.now()), 0) + 10*time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, _ = n.store.Watch(wctx, []string{schedPrefix, schedMailPrefix, schedEventPrefix}, after)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// renewDue renews what is due at now and returns when the next plan is
// due (zero if none).
func (n *Node) renewDue(ctx context.Context, now time.Time) time.Time {
	return n.forDue(ctx, schedPrefix, now, func(e raftstore.Entry, name string) {
		n.renewOne(ctx, e, name, now)
	})
}

// renewOne renews the certificate of a due plan, or moves the plan.
func (n *Node) renewOne(ctx context.Context, e raftstore.Entry, name string, now time.Time) {
	log := n.log.With("certificate", name)
	var plan renewalPlan
	_ = json.Unmarshal(e.Value, &plan)
	cm, _, found, err := n.loadMeta(kindCertificates, name)
	if err != nil {
		return
	}
	if !found || cm.Plan != e.Key || cm.Current != plan.Version {
		// A stale plan (purged, replaced): drop it.
		_, _ = n.store.Apply(ctx, (&raftstore.Batch{}).DeleteIf(e.Key, e.Index))
		return
	}
	if cm.Deleted != nil {
		// Kept for a recover; looked at again when the retention ends.
		n.movePlan(ctx, e, name, &plan, time.Unix(cm.Deleted.ScheduledPurge, 0).Add(time.Minute), "")
		return
	}
	policy, _, ok, err := n.loadPolicy(name)
	if err != nil || !ok {
		n.movePlan(ctx, e, name, &plan, now.Add(renewRetryMax), "the certificate has no policy")
		return
	}
	renew := func(b *raftstore.Batch, op *pendingOp) error {
		b.Check(e.Key, e.Index)
		op.Renewal = true
		return n.mailRenewing(b, name, cm, op.Issuer)
	}
	op, err := n.startIssuance(ctx, http.Header{}, name, policy, nil, nil, renew)
	var api *APIError
	switch {
	case err == nil && op.Status == keyvault.StatusCompleted:
		log.Info("renewed", "previous_version", plan.Version)
		n.metrics.renewals.WithLabelValues("done").Inc()
	case err == nil:
		// An order with the CA is under way; it replaces the plan when it
		// completes.
		log.Info("renewal started", "issuer", op.Issuer)
		n.movePlan(ctx, e, name, &plan, now.Add(renewPendingWait), "")
	case errors.Is(err, raftstore.ErrConflict):
		// Another leader consumed the plan, or the certificate changed.
	case errors.As(err, &api) && api.Status == http.StatusConflict:
		// An operation is already in progress; look again later.
		n.movePlan(ctx, e, name, &plan, now.Add(renewPendingWait), "")
	default:
		plan.Attempts++
		wait := min(renewRetryMin<<min(plan.Attempts-1, 16), renewRetryMax)
		log.Warn("renewal failed; retrying", "attempt", plan.Attempts, "in", wait, "err", err)
		n.metrics.renewals.WithLabelValues("failed").Inc()
		n.movePlan(ctx, e, name, &plan, now.Add(wait), err.Error(), func(b *raftstore.Batch) error {
			if err := n.emitEvent(b, EventCertificateRenewalFailed, kindCertificates, name, cm.Current, cm.Summary.NotBefore, cm.Summary.Expires, err.Error()); err != nil {
				return err
			}
			// Tell the contacts at the first failure and every fifth.
			if plan.Attempts == 1 || plan.Attempts%5 == 0 {
				return n.mailRenewalFailed(b, name, cm, policy.IssuerName(), err, plan.Attempts, now.Add(wait))
			}
			return nil
		})
	}
}

// movePlan reschedules a plan to due, recording why; also adds to the
// command what the optional functions add.
func (n *Node) movePlan(ctx context.Context, e raftstore.Entry, name string, plan *renewalPlan, due time.Time, why string, also ...func(*raftstore.Batch) error) {
	cm, cprev, ok, err := n.loadMeta(kindCertificates, name)
	if err != nil || !ok || cm.Plan != e.Key {
		return
	}
	if why != "" {
		plan.LastError = why
	}
	key := schedKey(due, name)
	if key == e.Key {
		key = schedKey(due.Add(time.Second), name)
	}
	cm.Plan = key
	b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index).Put(key, mustJSON(plan))
	putMeta(b, kindCertificates, name, cm, cprev)
	for _, f := range also {
		if err := f(b); err != nil {
			n.log.Warn("could not write a renewal notice", "certificate", name, "err", err)
		}
	}
	if _, err := n.store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
		n.log.Warn("could not reschedule a renewal", "certificate", name, "err", err)
	}
}

// mailDue sends the EmailContacts mails that are due (through the outbox)
// and returns when the next one is due (zero if none).
func (n *Node) mailDue(ctx context.Context, now time.Time) time.Time {
	return n.forDue(ctx, schedMailPrefix, now, func(e raftstore.Entry, name string) {
		var plan renewalPlan
		_ = json.Unmarshal(e.Value, &plan)
		b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index)
		cm, cprev, found, err := n.loadMeta(kindCertificates, name)
		if err != nil {
			return
		}
		if found && cm.MailPlan == e.Key && cm.Current == plan.Version && cm.Deleted == nil {
			issuer := keyvault.IssuerSelf
			if p, _, ok, _ := n.loadPolicy(name); ok {
				issuer = p.IssuerName()
			}
			if n.opts.Mailer == nil {
				n.log.Warn("a certificate's EmailContacts action is due, but no SMTP relay is configured (--smtp-addr)", "certificate", name)
			} else if err := n.mailExpiring(b, name, cm, issuer); err != nil {
				n.log.Warn("could not write a mail", "certificate", name, "err", err)
			}
			cm.MailPlan = ""
			putMeta(b, kindCertificates, name, cm, cprev)
		}
		if _, err := n.store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
			n.log.Warn("could not record a sent EmailContacts action", "certificate", name, "err", err)
		}
	})
}

// Expiry events are planned like renewals, under
// schedevt/DUE/KIND/NAME/TYPE, when a version is made.
const schedEventPrefix = "schedevt/"

// planExpiryEvents adds to b the NearExpiry and Expired events of a
// version that expires at exp (and drops the previous version's), and
// records them in m.
func (n *Node) planExpiryEvents(b *raftstore.Batch, m *objectMeta, kind, name, version string, nbf, exp *int64) {
	for _, k := range m.EventPlans {
		b.Delete(k)
	}
	m.EventPlans = nil
	if exp == nil {
		return
	}
	near, expired := EventCertificateNearExpiry, EventCertificateExpired
	if kind == kindSecrets {
		near, expired = EventSecretNearExpiry, EventSecretExpired
	}
	end := time.Unix(*exp, 0)
	at := end.Add(-n.settings().nearExpiry())
	if nbf != nil && at.Before(time.Unix(*nbf, 0)) {
		at = time.Unix(*nbf, 0)
	}
	for _, p := range []struct {
		typ string
		due time.Time
	}{{near, at}, {expired, end}} {
		key := schedEventPrefix + fmt.Sprintf("%012d", p.due.Unix()) + "/" + kind + "/" + name + "/" + p.typ
		b.Put(key, mustJSON(renewalPlan{Version: version}))
		m.EventPlans = append(m.EventPlans, key)
	}
}

// eventsDue emits the expiry events that are due and returns when the
// next one is (zero if none).
func (n *Node) eventsDue(ctx context.Context, now time.Time) time.Time {
	return n.forDue(ctx, schedEventPrefix, now, func(e raftstore.Entry, rest string) {
		parts := strings.SplitN(rest, "/", 3) // KIND/NAME/TYPE
		if len(parts) != 3 {
			return
		}
		kind, name, typ := parts[0], parts[1], parts[2]
		var plan renewalPlan
		_ = json.Unmarshal(e.Value, &plan)
		b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index)
		m, prev, found, err := n.loadMeta(kind, name)
		if err != nil {
			return
		}
		if found && m.Current == plan.Version && m.Deleted == nil && slices.Contains(m.EventPlans, e.Key) {
			if err := n.emitEvent(b, typ, kind, name, plan.Version, m.Summary.NotBefore, m.Summary.Expires, ""); err != nil {
				n.log.Warn("could not write an expiry event", "name", name, "err", err)
			}
			m.EventPlans = slices.DeleteFunc(m.EventPlans, func(k string) bool { return k == e.Key })
			putMeta(b, kind, name, m, prev)
		}
		if _, err := n.store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
			n.log.Warn("could not record an expiry event", "name", name, "err", err)
		}
	})
}
