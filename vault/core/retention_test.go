package core

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRetentionVictims: the rules of version retention on their own.
func TestRetentionVictims(t *testing.T) {
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	day := int64(86400)
	at := func(days int) int64 { return now.Unix() + int64(days)*day }
	// v1..v6, made in that order (v3 and v4 in the same second: the raft
	// index orders them).
	vs := []RetentionVersion{
		{Version: "v4", Created: at(-100), Order: 40, Expires: at(-31)},
		{Version: "v1", Created: at(-400), Order: 10, Expires: at(-300)},
		{Version: "v2", Created: at(-300), Order: 20},
		{Version: "v3", Created: at(-100), Order: 30, Expires: at(-29)},
		{Version: "v5", Created: at(-50), Order: 50, Expires: at(100)},
		{Version: "v6", Created: at(-1), Order: 60, Expires: at(200)},
	}
	for _, tc := range []struct {
		name      string
		rule      Retention
		protected map[string]string
		want      []string
	}{
		{"0 keeps every version", Retention{Versions: 0, ExpiredDays: 0}, nil, nil},
		{"N above the count", Retention{Versions: 6}, nil, nil},
		{"last 2, grace 30 days", Retention{Versions: 2, ExpiredDays: 30}, nil, []string{"v1", "v2", "v4"}},
		{"last 2, no grace", Retention{Versions: 2, ExpiredDays: 0}, nil, []string{"v1", "v2", "v3", "v4"}},
		{"last 2, grace longer than any expiry", Retention{Versions: 2, ExpiredDays: 1000}, nil, []string{"v2"}},
		{"last 5: only the oldest may go", Retention{Versions: 5, ExpiredDays: 0}, nil, []string{"v1"}},
		{"protected versions stay", Retention{Versions: 1, ExpiredDays: 0}, map[string]string{"v1": "held by agent a1", "v2": "rollout"}, []string{"v3", "v4"}},
		{"last 1 keeps what is still valid", Retention{Versions: 1, ExpiredDays: 0}, nil, []string{"v1", "v2", "v3", "v4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, v := range RetentionVictims(vs, tc.rule, tc.protected, now) {
				got = append(got, v.Version)
				if v.Reason == "" {
					t.Errorf("%s: no reason", v.Version)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	v := RetentionVictims(vs, Retention{Versions: 2, ExpiredDays: 30}, nil, now)
	if want := "older than the last 2 versions; expired 2026-08-05T00:00:00Z, more than 30 days ago"; v[0].Reason != want {
		t.Errorf("reason of v1: got %q, want %q", v[0].Reason, want)
	}
	if want := "older than the last 2 versions; no expiry"; v[1].Reason != want {
		t.Errorf("reason of v2: got %q, want %q", v[1].Reason, want)
	}
}

// TestCheckRetention: the settings' ranges, with errors that say what to
// give.
func TestCheckRetention(t *testing.T) {
	p := func(i int) *int { return &i }
	for _, tc := range []struct {
		versions, days *int
		field, msg     string
	}{
		{nil, nil, "", ""},
		{p(0), p(0), "", ""},
		{p(MaxRetainVersions), p(MaxRetainExpiredDays), "", ""},
		{p(-1), nil, "retain_versions", "retain_versions -1: use 0 to keep every version (the default), or 1 to 10000 to keep that many of each object's newest versions"},
		{p(MaxRetainVersions + 1), nil, "retain_versions", "retain_versions 10001"},
		{nil, p(-3), "retain_expired_days", "retain_expired_days -3: use 0 to 3650, the days after a version's expiry before retention may purge it"},
		{p(3), p(4000), "retain_expired_days", "retain_expired_days 4000"},
	} {
		err := CheckRetention(tc.versions, tc.days)
		if tc.field == "" {
			if err != nil {
				t.Errorf("CheckRetention(%v, %v): %v, want nil", tc.versions, tc.days, err)
			}
			continue
		}
		ce, ok := err.(*Error)
		if !ok || ce.Kind != KindBadParameter || ce.Field != tc.field || !strings.HasPrefix(ce.Message, tc.msg) {
			t.Errorf("CheckRetention: got %#v, want a bad parameter %s starting %q", err, tc.field, tc.msg)
		}
	}
}

// FuzzRetentionVictims holds the rules to their promise whatever the
// versions and settings: a victim is never protected, never among the
// newest N, never within its validity or grace, never twice; and with N
// versions kept at least min(N, count) versions stay.
func FuzzRetentionVictims(f *testing.F) {
	f.Add(int64(1_800_000_000), 3, 30, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, int64(1_700_000_000))
	f.Add(int64(0), 1, 0, []byte{0, 0, 0, 0}, int64(math.MaxInt64))
	f.Add(int64(math.MaxInt64/2), 0, 3650, []byte{9}, int64(-1))
	f.Fuzz(func(t *testing.T, nowUnix int64, keep, grace int, shape []byte, exp int64) {
		if nowUnix < 0 || nowUnix > 1<<40 || len(shape) > 64 {
			t.Skip()
		}
		now := time.Unix(nowUnix, 0)
		rule := Retention{Versions: keep, ExpiredDays: grace}
		var vs []RetentionVersion
		protected := map[string]string{}
		for i, b := range shape {
			v := RetentionVersion{Version: fmt.Sprintf("v%02d", i), Created: int64(b % 16), Order: uint64(i)}
			switch b % 3 {
			case 1:
				v.Expires = exp + int64(b)*86400
			case 2:
				v.Expires = nowUnix - int64(b)*86400
			}
			if b%5 == 0 {
				protected[v.Version] = "held"
			}
			vs = append(vs, v)
		}
		victims := RetentionVictims(vs, rule, protected, now)
		if keep <= 0 && len(victims) > 0 {
			t.Fatalf("retain_versions %d purged %d versions", keep, len(victims))
		}
		if keep > 0 && len(vs)-len(victims) < min(keep, len(vs)) {
			t.Fatalf("kept %d of %d versions, want at least %d", len(vs)-len(victims), len(vs), keep)
		}
		sorted := slices.Clone(vs)
		slices.SortFunc(sorted, func(a, b RetentionVersion) int {
			if a.Created != b.Created {
				return int(a.Created - b.Created)
			}
			return int(a.Order) - int(b.Order)
		})
		newest := map[string]bool{}
		for i := max(0, len(sorted)-keep); i < len(sorted); i++ {
			newest[sorted[i].Version] = true
		}
		seen := map[string]bool{}
		g := min(max(grace, 0), MaxRetainExpiredDays)
		for _, v := range victims {
			switch {
			case seen[v.Version]:
				t.Fatalf("%s purged twice", v.Version)
			case protected[v.Version] != "":
				t.Fatalf("%s is protected and was purged", v.Version)
			case newest[v.Version]:
				t.Fatalf("%s is among the newest %d and was purged", v.Version, keep)
			case v.Expires != 0 && now.Sub(time.Unix(v.Expires, 0)) < time.Duration(g)*24*time.Hour:
				t.Fatalf("%s expires %d, within %d days of now %d, and was purged", v.Version, v.Expires, g, nowUnix)
			}
			seen[v.Version] = true
		}
	})
}
