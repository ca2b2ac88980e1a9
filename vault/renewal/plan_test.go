package renewal

import (
	"fmt"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
)

func policy(actions ...keyvault.LifetimeAction) *keyvault.Policy {
	return &keyvault.Policy{LifetimeActions: actions}
}

func renewAt(pct, days int) keyvault.LifetimeAction {
	return keyvault.LifetimeAction{Trigger: keyvault.Trigger{LifetimePercentage: pct, DaysBeforeExpiry: days}, Action: keyvault.Action{ActionType: keyvault.ActionAutoRenew}}
}

func email(days int) keyvault.LifetimeAction {
	return keyvault.LifetimeAction{Trigger: keyvault.Trigger{DaysBeforeExpiry: days}, Action: keyvault.Action{ActionType: keyvault.ActionEmailContacts}}
}

// TestDue is the table of policies × validities → renewal time.
func TestDue(t *testing.T) {
	nbf := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	year := nbf.AddDate(1, 0, 0)
	for _, tc := range []struct {
		name      string
		p         *keyvault.Policy
		exp       time.Time
		ari       *Window
		want      time.Time
		tolerance time.Duration // the spread: want-tolerance < due <= want
		ok        bool
	}{
		{"80 % of a year", policy(renewAt(80, 0)), year, nil, nbf.Add(year.Sub(nbf) * 80 / 100), time.Hour, true},
		{"60 days before expiry", policy(renewAt(0, 60)), year, nil, year.AddDate(0, 0, -60), time.Hour, true},
		{"50 % of 3 minutes", policy(renewAt(50, 0)), nbf.Add(3 * time.Minute), nil, nbf.Add(90 * time.Second), 2 * time.Second, true},
		{"90 % of 90 minutes", policy(renewAt(90, 0)), nbf.Add(90 * time.Minute), nil, nbf.Add(81 * time.Minute), 54 * time.Second, true},
		{"50 % of 6 days", policy(renewAt(50, 0)), nbf.Add(6 * 24 * time.Hour), nil, nbf.Add(3 * 24 * time.Hour), time.Hour, true},
		{"only EmailContacts", policy(email(30)), year, nil, time.Time{}, 0, false},
		{"no lifetime actions", policy(), year, nil, time.Time{}, 0, false},
		{"email and renew", policy(email(30), renewAt(0, 10)), year, nil, year.AddDate(0, 0, -10), time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, ok := Due(tc.p, "www", nbf, tc.exp, tc.ari)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if due.After(tc.want) || !due.After(tc.want.Add(-tc.tolerance-time.Second)) {
				t.Fatalf("due %v, want in (%v, %v]", due, tc.want.Add(-tc.tolerance), tc.want)
			}
			if due.Nanosecond() != 0 {
				t.Fatalf("due %v is not whole seconds", due)
			}
		})
	}
}

// TestDueARI: the CA's window replaces the policy's trigger, and the
// chosen point lies inside it.
func TestDueARI(t *testing.T) {
	nbf := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	exp := nbf.Add(90 * 24 * time.Hour)
	w := &Window{Start: nbf.Add(59 * 24 * time.Hour), End: nbf.Add(61 * 24 * time.Hour)}
	for i := range 50 {
		due, ok := Due(policy(renewAt(0, 10)), fmt.Sprintf("cert-%d", i), nbf, exp, w)
		if !ok || due.Before(w.Start) || !due.Before(w.End) {
			t.Fatalf("cert-%d: due %v outside the window %v..%v", i, due, w.Start, w.End)
		}
	}
	if _, ok := Due(policy(email(10)), "x", nbf, exp, w); ok {
		t.Fatal("a window without AutoRenew planned a renewal")
	}
}

// TestDueSpread: a thousand certificates made together spread over the
// spread interval, deterministically.
func TestDueSpread(t *testing.T) {
	nbf := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	exp := nbf.AddDate(1, 0, 0)
	seen := map[time.Time]int{}
	for i := range 1000 {
		name := fmt.Sprintf("web-%d", i)
		a, _ := Due(policy(renewAt(80, 0)), name, nbf, exp, nil)
		b, _ := Due(policy(renewAt(80, 0)), name, nbf, exp, nil)
		if !a.Equal(b) {
			t.Fatalf("%s: not deterministic: %v, %v", name, a, b)
		}
		seen[a]++
	}
	worst := 0
	for _, n := range seen {
		worst = max(worst, n)
	}
	if len(seen) < 900 || worst > 3 {
		t.Fatalf("1000 certificates renew at only %d distinct seconds (up to %d in one)", len(seen), worst)
	}
}

// TestEmailDue: the EmailContacts action has its own time, days before
// expiry or a percentage, at second granularity.
func TestEmailDue(t *testing.T) {
	nbf := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	exp := nbf.AddDate(1, 0, 0)
	due, ok := EmailDue(policy(email(30), renewAt(80, 0)), "www", nbf, exp)
	want := exp.AddDate(0, 0, -30)
	if !ok || due.After(want) || due.Before(want.Add(-time.Hour)) {
		t.Fatalf("EmailDue = %v %v, want about %v", due, ok, want)
	}
	if _, ok := EmailDue(policy(renewAt(80, 0)), "www", nbf, exp); ok {
		t.Fatal("a policy without EmailContacts planned a mail")
	}
}

// TestDueLongLifetimes: lifetimes whose nanoseconds times the percentage
// overflow int64 (44 months at 80 % already does) and day counts whose
// nanoseconds overflow are planned at the right point, inside the
// version's validity.
func TestDueLongLifetimes(t *testing.T) {
	nbf := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	at := func(exp time.Time, num, den int64) time.Time {
		life := exp.Unix() - nbf.Unix()
		return nbf.Add(time.Duration(life/den*num+life%den*num/den) * time.Second)
	}
	for _, tc := range []struct {
		name   string
		months int
		la     keyvault.LifetimeAction
		want   func(exp time.Time) time.Time
	}{
		{"80 % of 44 months", 44, renewAt(80, 0), func(exp time.Time) time.Time { return at(exp, 80, 100) }},
		{"80 % of 1200 months", 1200, renewAt(80, 0), func(exp time.Time) time.Time { return at(exp, 80, 100) }},
		{"99 % of 1200 months", 1200, renewAt(99, 0), func(exp time.Time) time.Time { return at(exp, 99, 100) }},
		{"1 % of 1200 months", 1200, renewAt(1, 0), func(exp time.Time) time.Time { return at(exp, 1, 100) }},
		{"30 days before 1200 months", 1200, renewAt(0, 30), func(exp time.Time) time.Time { return exp.AddDate(0, 0, -30) }},
		{"32400 days before 1200 months", 1200, renewAt(0, 32400), func(exp time.Time) time.Time { return exp.AddDate(0, 0, -32400) }},
		// More days than the version lives: two thirds of its lifetime.
		{"106752 days before 1200 months", 1200, renewAt(0, 106752), func(exp time.Time) time.Time { return at(exp, 2, 3) }},
		{"106752 days before 44 months", 44, renewAt(0, 106752), func(exp time.Time) time.Time { return at(exp, 2, 3) }},
		{"2147483647 days before 12 months", 12, renewAt(0, 2147483647), func(exp time.Time) time.Time { return at(exp, 2, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := nbf.AddDate(0, tc.months, 0)
			want := tc.want(exp)
			due, ok := Due(policy(tc.la), "www", nbf, exp, nil)
			if !ok {
				t.Fatal("no renewal planned")
			}
			if due.Before(nbf) || due.After(exp) {
				t.Fatalf("due %v outside the validity %v..%v", due, nbf, exp)
			}
			if due.After(want) || due.Before(want.Add(-time.Hour)) {
				t.Fatalf("due %v, want in [%v, %v]", due, want.Add(-time.Hour), want)
			}
		})
	}
}
