package renewal

import (
	"testing"
	"time"
)

// TestHalt is the brake's table: how many recent automatic renewals, how
// long ago, for which lifetime.
func TestHalt(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	ago := func(ds ...time.Duration) []time.Time {
		var out []time.Time
		for _, d := range ds {
			out = append(out, now.Add(-d))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		recent []time.Time
		life   time.Duration
		want   bool
	}{
		{"never renewed", nil, year, false},
		{"two in a day", ago(time.Hour, 2*time.Hour), year, false},
		{"three in a day of a year", ago(time.Hour, 2*time.Hour, 3*time.Hour), year, true},
		{"three in 36 days of a year", ago(time.Hour, 20*24*time.Hour, 36*24*time.Hour), year, true},
		{"three, one older than a tenth of a year", ago(time.Hour, 2*time.Hour, 37*24*time.Hour), year, false},
		{"yearly renewals", ago(292*24*time.Hour, 584*24*time.Hour, 876*24*time.Hour), year, false},
		{"three in 5 s of a minute's lifetime", ago(time.Second, 3*time.Second, 5*time.Second), time.Minute, true},
		{"three in 50 s of a 3-minute lifetime", ago(time.Second, 25*time.Second, 50*time.Second), 3 * time.Minute, true},
		{"every 90 s, a 3-minute lifetime at 50 %", ago(90*time.Second, 180*time.Second, 270*time.Second), 3 * time.Minute, false},
		{"three in the future (a clock that went back)", ago(-time.Hour, -2*time.Hour, -3*time.Hour), year, true},
		{"three of 44 months in a second", ago(0, 0, time.Second), 44 * 30 * 24 * time.Hour, true},
		{"no lifetime at all", ago(time.Second, 2*time.Second, 3*time.Second), 0, true},
		{"a lifetime past the Duration range", ago(time.Second, 2*time.Second, 3*time.Second), -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nbf, exp := now.Add(-time.Hour), now.Add(-time.Hour).Add(tc.life)
			if tc.life < 0 {
				nbf, exp = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
			}
			if got := Halt(tc.recent, nbf, exp, now); got != tc.want {
				t.Fatalf("Halt = %v, want %v (window %v)", got, tc.want, BrakeWindow(nbf, exp))
			}
		})
	}
}
