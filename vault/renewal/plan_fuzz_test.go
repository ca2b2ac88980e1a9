package renewal

import (
	"math/big"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
)

// FuzzRenewalPlan is the planner's property target: for any lifetime
// (nbf, exp in Unix seconds, the whole int64 range) and any trigger
// (percentage or days, valid or not), Due and EmailDue never panic, always
// plan, and plan inside the version's validity [nbf, exp]; for the
// triggers a policy can hold, at the trigger's exact moment (computed here
// with math/big) less at most the spread; and a CA's renewal window, when
// it overlaps the validity, is honoured. Seeds are in
// testdata/fuzz/FuzzRenewalPlan; `go test` runs them as ordinary tests.
func FuzzRenewalPlan(f *testing.F) {
	const nbf2026 = 1793491200 // 2026-11-01
	f.Add(int64(nbf2026), int64(nbf2026+365*86400), 80, 0, int64(0), int64(0), "www")
	f.Add(int64(nbf2026), int64(nbf2026+180), 50, 0, int64(0), int64(0), "short")
	f.Add(int64(nbf2026), int64(nbf2026+90*86400), 0, 30, int64(nbf2026+59*86400), int64(nbf2026+61*86400), "acme")
	f.Fuzz(func(t *testing.T, nbfS, expS int64, pct, days int, ariS, ariE int64, name string) {
		trig := keyvault.Trigger{LifetimePercentage: pct, DaysBeforeExpiry: days}
		nbf, exp := time.Unix(nbfS, 0), time.Unix(expS, 0)
		renew := &keyvault.Policy{LifetimeActions: []keyvault.LifetimeAction{{Trigger: trig, Action: keyvault.Action{ActionType: keyvault.ActionAutoRenew}}}}
		mail := &keyvault.Policy{LifetimeActions: []keyvault.LifetimeAction{{Trigger: trig, Action: keyvault.Action{ActionType: keyvault.ActionEmailContacts}}}}

		due, ok := Due(renew, name, nbf, exp, nil)
		if !ok {
			t.Fatalf("Due planned nothing for an AutoRenew action")
		}
		checkPlan(t, "Due", due.Unix(), nbfS, expS, trig, name)
		if _, ok := Due(mail, name, nbf, exp, nil); ok {
			t.Fatalf("Due planned a renewal for a policy with only EmailContacts")
		}
		mailDue, ok := EmailDue(mail, name, nbf, exp)
		if !ok {
			t.Fatalf("EmailDue planned nothing for an EmailContacts action")
		}
		checkPlan(t, "EmailDue", mailDue.Unix(), nbfS, expS, trig, name)

		// A CA's window: Go's time comparisons are exact within ±2^62 s.
		bound := func(v int64) int64 { return v % (1 << 62) }
		nbfS, expS, ariS, ariE = bound(nbfS), bound(expS), bound(ariS), bound(ariE)
		w := &Window{Start: time.Unix(ariS, 0), End: time.Unix(ariE, 0)}
		due, ok = Due(renew, name, time.Unix(nbfS, 0), time.Unix(expS, 0), w)
		if !ok {
			t.Fatalf("Due planned nothing with a window")
		}
		got := due.Unix()
		if ariE <= ariS {
			// No window: the policy's trigger.
			checkPlan(t, "Due with an empty window", got, nbfS, expS, trig, name)
			return
		}
		if expS > nbfS && (got < nbfS || got > expS) {
			t.Fatalf("Due with window [%d, %d) = %d, outside the validity [%d, %d]", ariS, ariE, got, nbfS, expS)
		}
		if lo, hi := max(nbfS, ariS), min(expS, ariE); lo <= hi && (got < lo || got > hi) {
			t.Fatalf("Due with window [%d, %d) = %d, outside the window's overlap with the validity [%d, %d]", ariS, ariE, got, lo, hi)
		}
	})
}

// checkPlan checks one planned time against the properties of the
// trigger, nbf and exp (Unix seconds).
func checkPlan(t *testing.T, what string, got, nbf, exp int64, trig keyvault.Trigger, name string) {
	t.Helper()
	if exp <= nbf {
		if got != exp {
			t.Fatalf("%s = %d for a version with no lifetime [%d, %d]: want exp", what, got, nbf, exp)
		}
		return
	}
	if got < nbf || got > exp {
		t.Fatalf("%s = %d, outside the validity [%d, %d] (trigger %+v)", what, got, nbf, exp, trig)
	}
	life := new(big.Int).Sub(big.NewInt(exp), big.NewInt(nbf))
	day := big.NewInt(secondsPerDay)
	var want *big.Int
	switch pct := trig.LifetimePercentage; {
	case pct >= 1 && pct <= 99:
		want = new(big.Int).Mul(life, big.NewInt(int64(pct)))
		want.Div(want, big.NewInt(100)).Add(want, big.NewInt(nbf))
	case pct == 0 && trig.DaysBeforeExpiry >= 1:
		before := new(big.Int).Mul(big.NewInt(int64(trig.DaysBeforeExpiry)), day)
		if before.Cmp(life) >= 0 {
			// Falls at or before the start: two thirds of the lifetime.
			want = new(big.Int).Mul(life, big.NewInt(2))
			want.Div(want, big.NewInt(3)).Add(want, big.NewInt(nbf))
		} else {
			want = new(big.Int).Sub(big.NewInt(exp), before)
		}
	default:
		return // not a trigger a policy can hold: bounds only
	}
	spread := new(big.Int).Div(life, big.NewInt(100))
	if spread.Cmp(big.NewInt(3600)) > 0 {
		spread.SetInt64(3600)
	}
	g := big.NewInt(got)
	if g.Cmp(want) > 0 || new(big.Int).Sub(want, g).Cmp(spread) > 0 {
		t.Fatalf("%s = %d, want %s less at most %s (trigger %+v, validity [%d, %d], name %q)", what, got, want, spread, trig, nbf, exp, name)
	}
	if trig.LifetimePercentage >= 1 && got == nbf && life.Cmp(big.NewInt(200)) >= 0 {
		t.Fatalf("%s = nbf for a %s s lifetime at %d %%: due the moment it is made", what, life, trig.LifetimePercentage)
	}
}
