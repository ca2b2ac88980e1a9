// Package renewal decides when a certificate version is renewed: from its
// policy's lifetime actions (a percentage of the lifetime, or days before
// expiry), the CA's ACME Renewal Information window when there is one, and
// a small deterministic spread so that certificates made together do not
// all renew in the same second. It also holds the brake that stops a
// certificate renewed too often, whatever the cause. It is pure: the vault
// stores each plan in Raft when a version is made or its policy changes,
// and the leader's scheduler only reads the plans that are due. It does
// not renew anything, send mail or touch storage.
package renewal

import (
	"hash/fnv"
	"math/bits"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
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
// of up to 1 % of the lifetime (at most an hour) chosen by name.
//
// Times have second granularity: nbf and exp count in whole Unix seconds
// (the vault's versions have no more), so certificates valid for minutes
// renew right. The arithmetic is done in 128 bits and never overflows:
// whatever the lifetime and the trigger, the result lies within
// [nbf, exp] in whole seconds (at exp when exp is not after nbf, a version
// with nothing left to wait for). A days_before_expiry trigger that falls
// at or before nbf (a CA that issued a shorter certificate than the policy
// asks for) is replaced by two thirds of the lifetime, so that a version
// is never due the moment it is made.
func Due(p *keyvault.Policy, name string, nbf, exp time.Time, ari *Window) (time.Time, bool) {
	trigger, ok := action(p, keyvault.ActionAutoRenew)
	if !ok {
		return time.Time{}, false
	}
	h := spreadHash(name)
	if ari != nil && ari.End.After(ari.Start) {
		start, end := ari.Start.Unix(), ari.End.Unix()
		at := start
		if span := uint64(end) - uint64(start); span > 0 {
			at = int64(uint64(start) + h%span)
		}
		return clamp(at, nbf.Unix(), exp.Unix()), true
	}
	return triggerTime(trigger, h, nbf, exp), true
}

// EmailDue returns when the contacts are mailed about a version (the
// policy's EmailContacts action), and false when there is no such action.
// It is computed as Due is, and lies in the same bounds.
func EmailDue(p *keyvault.Policy, name string, nbf, exp time.Time) (time.Time, bool) {
	trigger, ok := action(p, keyvault.ActionEmailContacts)
	if !ok {
		return time.Time{}, false
	}
	return triggerTime(trigger, spreadHash(name), nbf, exp), true
}

const secondsPerDay = 24 * 60 * 60

// triggerTime is the trigger's moment, moved earlier by the spread, in
// whole seconds within [nbf, exp].
func triggerTime(trigger keyvault.Trigger, h uint64, nbf, exp time.Time) time.Time {
	start, end := nbf.Unix(), exp.Unix()
	if end <= start {
		return time.Unix(end, 0)
	}
	// The difference of two int64 fits a uint64 when end > start.
	life := uint64(end) - uint64(start)
	var off uint64 // seconds after start
	switch pct := trigger.LifetimePercentage; {
	case pct != 0:
		off = mulDiv(life, uint64(min(max(pct, 0), 100)), 100)
	case trigger.DaysBeforeExpiry <= 0:
		off = life
	case uint64(trigger.DaysBeforeExpiry) > (life-1)/secondsPerDay:
		// days × 86400 ≥ life: the trigger is at or before the start.
		off = mulDiv(life, 2, 3)
	default:
		off = life - uint64(trigger.DaysBeforeExpiry)*secondsPerDay
	}
	if spread := min(life/100, uint64(maxSpread/time.Second)); spread >= 1 {
		off -= min(off, h%spread)
	}
	return time.Unix(int64(uint64(start)+off), 0)
}

// mulDiv returns a × b / c rounded down, for b ≤ c, without overflow.
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c) // hi < b ≤ c: no panic
	return q
}

// clamp returns at moved into [lo, hi] (at hi when hi < lo), as a time.
func clamp(at, lo, hi int64) time.Time {
	if at < lo {
		at = lo
	}
	if at > hi {
		at = hi
	}
	return time.Unix(at, 0)
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
