// Package renewal decides when a certificate version is renewed: from its
// policy's lifetime actions (a percentage of the lifetime, or days before
// expiry), the CA's ACME Renewal Information window when there is one, and
// a small deterministic spread so that certificates made together do not
// all renew in the same second. It is pure: the vault stores each plan in
// Raft when a version is made or its policy changes, and the leader's
// scheduler only reads the plans that are due.
package renewal

import (
	"hash/fnv"
	"time"

	"github.com/certvault/certvault/vault/keyvault"
)

// Window is a CA's suggested renewal window (RFC 9773).
type Window struct {
	Start, End time.Time
}

// maxSpread bounds the spread: renewals move at most this much earlier.
const maxSpread = time.Hour

// Due returns when a version valid from nbf to exp should be renewed
// automatically, and false when the policy has no AutoRenew action. The
// CA's window, when given, replaces the policy's trigger (the CA knows
// best, e.g. before a mass revocation); the result is a point inside it
// chosen by name. Otherwise the trigger's time is moved earlier by a spread
// of up to 1 % of the lifetime (at most an hour) chosen by name. Times
// have second granularity, so certificates valid for minutes renew right.
func Due(p *keyvault.Policy, name string, nbf, exp time.Time, ari *Window) (time.Time, bool) {
	trigger, ok := action(p, keyvault.ActionAutoRenew)
	if !ok {
		return time.Time{}, false
	}
	h := spreadHash(name)
	if ari != nil && ari.End.After(ari.Start) {
		span := ari.End.Sub(ari.Start)
		return ari.Start.Add(time.Duration(h % uint64(span))).Truncate(time.Second), true
	}
	return triggerTime(trigger, h, nbf, exp), true
}

// EmailDue returns when the contacts are mailed about a version (the
// policy's EmailContacts action), and false when there is no such action.
func EmailDue(p *keyvault.Policy, name string, nbf, exp time.Time) (time.Time, bool) {
	trigger, ok := action(p, keyvault.ActionEmailContacts)
	if !ok {
		return time.Time{}, false
	}
	return triggerTime(trigger, spreadHash(name), nbf, exp), true
}

// triggerTime is the trigger's moment, moved earlier by the spread.
func triggerTime(trigger keyvault.Trigger, h uint64, nbf, exp time.Time) time.Time {
	lifetime := exp.Sub(nbf)
	var at time.Time
	if trigger.LifetimePercentage != 0 {
		at = nbf.Add(lifetime * time.Duration(trigger.LifetimePercentage) / 100)
	} else {
		at = exp.Add(-time.Duration(trigger.DaysBeforeExpiry) * 24 * time.Hour)
	}
	spread := min(lifetime/100, maxSpread)
	if spread >= time.Second {
		at = at.Add(-time.Duration(h % uint64(spread)))
	}
	if at.Before(nbf) {
		at = nbf
	}
	return at.Truncate(time.Second)
}

// action returns the trigger of the policy's lifetime action of a type.
func action(p *keyvault.Policy, actionType string) (keyvault.Trigger, bool) {
	if p == nil {
		return keyvault.Trigger{}, false
	}
	for _, la := range p.LifetimeActions {
		if la.Action.ActionType == actionType {
			return la.Trigger, true
		}
	}
	return keyvault.Trigger{}, false
}

func spreadHash(name string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(name))
	return f.Sum64()
}
