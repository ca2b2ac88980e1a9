package issuance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/renewal"
)

// Renewal planning and the renewal scheduler: the plan of each
// certificate version, the brake, and the leader's loop that renews, mails
// and emits expiry events when plans are due.

// forDue calls act, in due order, for each plan under prefix that is due
// at now (its key PREFIX + DUE + "/" + REST), at most 64 per call, and
// returns when the next plan is due: now when more may be due, zero when
// there is none.
func (s *Issuance) forDue(ctx context.Context, prefix string, now time.Time, act func(e raftstore.Entry, rest string)) time.Time {
	if s.Barrier.Load() == nil {
		return now.Add(time.Second)
	}
	const page = 64
	entries, _ := s.Store.List(prefix, "", page)
	for _, e := range entries {
		secs, rest, ok := strings.Cut(strings.TrimPrefix(e.Key, prefix), "/")
		sec, err := strconv.ParseInt(secs, 10, 64)
		if !ok || err != nil {
			continue
		}
		if due := time.Unix(sec, 0); due.After(now) {
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

// autoRenewals returns the times of a certificate's last automatic
// renewals.
func autoRenewals(cm *core.ObjectMeta) []time.Time {
	out := make([]time.Time, len(cm.AutoRenewals))
	for i, s := range cm.AutoRenewals {
		out[i] = time.Unix(s, 0)
	}
	return out
}

// currentValidity returns the current version's nbf and exp (zero when
// unknown, which gives the brake its shortest window).
func currentValidity(cm *core.ObjectMeta) (nbf, exp time.Time) {
	if cm.Summary.NotBefore != nil && cm.Summary.Expires != nil {
		nbf, exp = time.Unix(*cm.Summary.NotBefore, 0), time.Unix(*cm.Summary.Expires, 0)
	}
	return nbf, exp
}

// recordRenewal updates the renewal brake's record of cm for a version
// made at now, before cm takes the new version: an automatic renewal is
// counted, and refused with ErrRenewalHalted when the certificate is
// halted or the brake says so (whatever let it get this far); a version a
// person makes (create, import, merge) clears the record and the halt.
func recordRenewal(cm *core.ObjectMeta, auto bool, now time.Time) error {
	if !auto {
		cm.AutoRenewals, cm.Halted = nil, nil
		return nil
	}
	nbf, exp := currentValidity(cm)
	if cm.Halted != nil || renewal.Halt(autoRenewals(cm), nbf, exp, now) {
		return core.ErrRenewalHalted
	}
	cm.AutoRenewals = append(cm.AutoRenewals, now.Unix())
	if extra := len(cm.AutoRenewals) - renewal.BrakeRenewals; extra > 0 {
		cm.AutoRenewals = slices.Clone(cm.AutoRenewals[extra:])
	}
	return nil
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

// replanCurrent adds to b the plan of the current version under policy p
// (after a policy change: editing the lifetime actions is how AutoRenew
// is turned on and off), and the meta record that names it. A policy
// change is a person acting: it clears a halt of the renewal brake and
// its count.
func (s *Issuance) replanCurrent(b *raftstore.Batch, name string, p *keyvault.Policy) error {
	cm, cprev, ok, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil || !ok || cm.Current == "" {
		return err
	}
	v, _, ok, err := s.LoadVersion(core.KindCertificates, name, cm.Current)
	if err != nil || !ok {
		return err
	}
	before, beforeMail, halted := cm.Plan, cm.MailPlan, cm.Halted != nil || len(cm.AutoRenewals) > 0
	if err := recordRenewal(&cm, false, time.Time{}); err != nil {
		return err
	}
	core.PlanVersion(b, &cm, name, cm.Current, p, &v)
	if cm.Plan != before || cm.MailPlan != beforeMail || halted {
		core.PutMeta(b, core.KindCertificates, name, cm, cprev)
	}
	return nil
}

// RunRenewals is the leader's renewal scheduler: it renews the
// certificates whose plan is due, then sleeps until the next plan is due
// or the plans change. A renewal is one raft command conditional on the
// plan it consumes, so a new leader never renews a version twice.
func (s *Issuance) RunRenewals(ctx context.Context) {
	for {
		after := s.Store.AppliedIndex()
		now := s.Now()
		next := s.RenewDue(ctx, now)
		for _, m := range []time.Time{s.mailDue(ctx, now), s.eventsDue(ctx, now)} {
			if !m.IsZero() && (next.IsZero() || m.Before(next)) {
				next = m
			}
		}
		wait := renewIdle
		if !next.IsZero() {
			wait = max(next.Sub(s.Now()), 0) + 10*time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, _ = s.Store.Watch(wctx, []string{core.SchedPrefix, core.SchedMailPrefix, core.SchedEventPrefix}, after)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// RenewDue renews what is due at now and returns when the next plan is
// due (zero if none).
func (s *Issuance) RenewDue(ctx context.Context, now time.Time) time.Time {
	return s.forDue(ctx, core.SchedPrefix, now, func(e raftstore.Entry, name string) {
		s.renewOne(ctx, e, name, now)
	})
}

// renewOne renews the certificate of a due plan, or moves the plan.
func (s *Issuance) renewOne(ctx context.Context, e raftstore.Entry, name string, now time.Time) {
	log := s.Log.With("certificate", name)
	var plan core.RenewalPlan
	_ = json.Unmarshal(e.Value, &plan)
	cm, _, found, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil {
		return
	}
	if !found || cm.Plan != e.Key || cm.Current != plan.Version {
		// A stale plan (purged, replaced): drop it.
		_, _ = s.Store.Apply(ctx, (&raftstore.Batch{}).DeleteIf(e.Key, e.Index))
		return
	}
	if cm.Deleted != nil {
		// Kept for a recover; looked at again when the retention ends.
		s.movePlan(ctx, e, name, &plan, time.Unix(cm.Deleted.ScheduledPurge, 0).Add(time.Minute), "")
		return
	}
	policy, _, ok, err := s.LoadPolicy(name)
	if err != nil || !ok {
		s.movePlan(ctx, e, name, &plan, now.Add(renewRetryMax), "the certificate has no policy")
		return
	}
	if nbf, exp := currentValidity(&cm); cm.Halted != nil || renewal.Halt(autoRenewals(&cm), nbf, exp, now) {
		s.haltRenewal(ctx, e, name, policy, now)
		return
	}
	renew := func(b *raftstore.Batch, op *core.PendingOp) error {
		b.Check(e.Key, e.Index)
		op.Renewal = true
		return s.mailRenewing(b, name, cm, op.Issuer)
	}
	op, _, err := s.StartIssuance(ctx, core.Caller{}, name, policy, nil, nil, renew)
	switch {
	case err == nil && op.Status == keyvault.StatusCompleted:
		log.Info("renewed", "previous_version", plan.Version)
		s.Renewals.WithLabelValues("done").Inc()
	case err == nil:
		// An order with the CA is under way; it replaces the plan when it
		// completes.
		log.Info("renewal started", "issuer", op.Issuer)
		s.movePlan(ctx, e, name, &plan, now.Add(renewPendingWait), "")
	case errors.Is(err, raftstore.ErrConflict):
		// Another leader consumed the plan, or the certificate changed.
	case errors.Is(err, core.ErrRenewalHalted):
		// The brake's last line, in the command that makes the version.
		s.haltRenewal(ctx, e, name, policy, now)
	case core.IsKind(err, core.KindConflict):
		// An operation is already in progress; look again later.
		s.movePlan(ctx, e, name, &plan, now.Add(renewPendingWait), "")
	default:
		plan.Attempts++
		wait := min(renewRetryMin<<min(plan.Attempts-1, 16), renewRetryMax)
		log.Warn("renewal failed; retrying", "attempt", plan.Attempts, "in", wait, "err", err)
		s.Renewals.WithLabelValues("failed").Inc()
		s.movePlan(ctx, e, name, &plan, now.Add(wait), err.Error(), func(b *raftstore.Batch) error {
			if err := s.EmitEvent(b, core.EventCertificateRenewalFailed, core.KindCertificates, name, cm.Current, cm.Summary.NotBefore, cm.Summary.Expires, err.Error()); err != nil {
				return err
			}
			// Tell the contacts at the first failure and every fifth.
			if plan.Attempts == 1 || plan.Attempts%5 == 0 {
				return s.mailRenewalFailed(b, name, cm, policy.IssuerName(), err, plan.Attempts, now.Add(wait))
			}
			return nil
		})
	}
}

// haltRenewal is the renewal brake: it drops the plan of a certificate
// renewed automatically too often and marks it halted, in one command
// conditional on the plan, with a failed pending operation that says why
// (unless a person's operation is in progress), a CertificateRenewalFailed
// event and a mail to the contacts. Nothing renews it automatically again
// until a person makes a version or updates its policy.
func (s *Issuance) haltRenewal(ctx context.Context, e raftstore.Entry, name string, policy *keyvault.Policy, now time.Time) {
	cm, cprev, ok, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil || !ok || cm.Plan != e.Key {
		return
	}
	nbf, exp := currentValidity(&cm)
	window := renewal.BrakeWindow(nbf, exp)
	reason := fmt.Sprintf("renewed automatically %d times within %s (a tenth of its lifetime, at least a minute)", len(cm.AutoRenewals), briefDuration(window))
	if cm.Halted != nil {
		reason = cm.Halted.Reason
	}
	b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index)
	cm.Plan = ""
	if cm.Halted == nil {
		cm.Halted = &core.RenewalHalt{At: now.Unix(), Version: cm.Current, Reason: reason}
		if err := s.EmitEvent(b, core.EventCertificateRenewalFailed, core.KindCertificates, name, cm.Current, cm.Summary.NotBefore, cm.Summary.Expires, "automatic renewal halted: "+reason); err != nil {
			s.Log.Warn("could not write a renewal notice", "certificate", name, "err", err)
		}
		if err := s.mailRenewalHalted(b, name, cm, policy.IssuerName(), reason); err != nil {
			s.Log.Warn("could not write a renewal notice", "certificate", name, "err", err)
		}
		if prev, pe, found, err := s.LoadPending(name); err == nil && (!found || prev.Status != keyvault.StatusInProgress) {
			id, err := core.RandomID(16)
			if err == nil {
				op := &core.PendingOp{RequestID: id, Issuer: policy.IssuerName(), Status: keyvault.StatusFailed, Renewal: true, Created: now.Unix(),
					StatusDetails: "automatic renewal halted", Error: &keyvault.ErrorInfo{Code: "RenewalHalted",
						Message: "Certificate " + name + " was " + reason + ", so the renewal brake halted its automatic renewal: update its policy or create a version to resume it."}}
				b.PutIf(core.PendingKey(name), core.MustJSON(op), pe.Index)
			}
		}
	}
	core.PutMeta(b, core.KindCertificates, name, cm, cprev)
	if _, err := s.Store.Apply(ctx, b); err != nil {
		if !errors.Is(err, raftstore.ErrConflict) {
			s.Log.Warn("could not halt a renewal loop", "certificate", name, "err", err)
		}
		return
	}
	s.Log.Error("automatic renewal halted by the renewal brake: update the policy or make a version to resume", "certificate", name, "version", cm.Current, "reason", reason)
	s.Renewals.WithLabelValues("halted").Inc()
}

// briefDuration writes d for people: whole days from two days on.
func briefDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.Round(time.Second).String()
}

// movePlan reschedules a plan to due, recording why; also adds to the
// command what the optional functions add.
func (s *Issuance) movePlan(ctx context.Context, e raftstore.Entry, name string, plan *core.RenewalPlan, due time.Time, why string, also ...func(*raftstore.Batch) error) {
	cm, cprev, ok, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil || !ok || cm.Plan != e.Key {
		return
	}
	if why != "" {
		plan.LastError = why
	}
	key := core.SchedKey(due, name)
	if key == e.Key {
		key = core.SchedKey(due.Add(time.Second), name)
	}
	cm.Plan = key
	b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index).Put(key, core.MustJSON(plan))
	core.PutMeta(b, core.KindCertificates, name, cm, cprev)
	for _, f := range also {
		if err := f(b); err != nil {
			s.Log.Warn("could not write a renewal notice", "certificate", name, "err", err)
		}
	}
	if _, err := s.Store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
		s.Log.Warn("could not reschedule a renewal", "certificate", name, "err", err)
	}
}

// mailDue sends the EmailContacts mails that are due (through the outbox)
// and returns when the next one is due (zero if none).
func (s *Issuance) mailDue(ctx context.Context, now time.Time) time.Time {
	return s.forDue(ctx, core.SchedMailPrefix, now, func(e raftstore.Entry, name string) {
		var plan core.RenewalPlan
		_ = json.Unmarshal(e.Value, &plan)
		b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index)
		cm, cprev, found, err := s.LoadMeta(core.KindCertificates, name)
		if err != nil {
			return
		}
		if found && cm.MailPlan == e.Key && cm.Current == plan.Version && cm.Deleted == nil {
			issuer := keyvault.IssuerSelf
			if p, _, ok, _ := s.LoadPolicy(name); ok {
				issuer = p.IssuerName()
			}
			if s.Mailer == nil {
				s.Log.Warn("a certificate's EmailContacts action is due, but no SMTP relay is configured (--smtp-addr)", "certificate", name)
			} else if err := s.mailExpiring(b, name, cm, issuer); err != nil {
				s.Log.Warn("could not write a mail", "certificate", name, "err", err)
			}
			cm.MailPlan = ""
			core.PutMeta(b, core.KindCertificates, name, cm, cprev)
		}
		if _, err := s.Store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
			s.Log.Warn("could not record a sent EmailContacts action", "certificate", name, "err", err)
		}
	})
}

// eventsDue emits the expiry events that are due and returns when the
// next one is (zero if none).
func (s *Issuance) eventsDue(ctx context.Context, now time.Time) time.Time {
	return s.forDue(ctx, core.SchedEventPrefix, now, func(e raftstore.Entry, rest string) {
		parts := strings.SplitN(rest, "/", 3) // KIND/NAME/TYPE
		if len(parts) != 3 {
			return
		}
		kind, name, typ := parts[0], parts[1], parts[2]
		var plan core.RenewalPlan
		_ = json.Unmarshal(e.Value, &plan)
		b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index)
		m, prev, found, err := s.LoadMeta(kind, name)
		if err != nil {
			return
		}
		if found && m.Current == plan.Version && m.Deleted == nil && slices.Contains(m.EventPlans, e.Key) {
			if err := s.EmitEvent(b, typ, kind, name, plan.Version, m.Summary.NotBefore, m.Summary.Expires, ""); err != nil {
				s.Log.Warn("could not write an expiry event", "name", name, "err", err)
			}
			m.EventPlans = slices.DeleteFunc(m.EventPlans, func(k string) bool { return k == e.Key })
			core.PutMeta(b, kind, name, m, prev)
		}
		if _, err := s.Store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
			s.Log.Warn("could not record an expiry event", "name", name, "err", err)
		}
	})
}
