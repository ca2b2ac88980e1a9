package solver_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/acme/solver"
)

// Values shaped like ACME's (base64url SHA-256, 43 characters).
const (
	val1 = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo"
	val2 = "Zy4bL1y2zWxh2zKPX3u0t2u2gLmvD3DgnXl4G5Uu8uQ"
	val3 = "AAAAwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo"
)

func TestRFC2136AgainstBIND(t *testing.T) {
	t.Parallel()
	ns := startNamed(t)
	const name = "_acme-challenge.www.example.test."
	s := &solver.RFC2136{Nameserver: ns.Addr, Zone: "example.test", Key: ns.Key, Timeout: 5 * time.Second}
	ctx := ctxTimeout(t, 30*time.Second)

	want := func(t *testing.T, name string, values ...string) {
		t.Helper()
		got := ns.txt(t, name)
		slices.Sort(got)
		slices.Sort(values)
		if !slices.Equal(got, values) {
			t.Fatalf("TXT %s at named: got %q, want %q", name, got, values)
		}
	}

	t.Run("present", func(t *testing.T) {
		if err := s.Present(ctx, name, val1); err != nil {
			t.Fatalf("Present: %v", err)
		}
		want(t, name, val1)
		if got := ns.ttl(t, name); got != solver.DefaultTTL {
			t.Errorf("TTL: got %d, want %d", got, solver.DefaultTTL)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := solver.WaitPropagation(wctx, []string{ns.Addr}, name, val1, 50*time.Millisecond); err != nil {
			t.Fatalf("WaitPropagation: %v", err)
		}
	})
	t.Run("second value beside the first", func(t *testing.T) {
		if err := s.Present(ctx, name, val2); err != nil {
			t.Fatalf("Present: %v", err)
		}
		want(t, name, val1, val2)
	})
	t.Run("present again changes nothing", func(t *testing.T) {
		if err := s.Present(ctx, strings.TrimSuffix(name, "."), val1); err != nil {
			t.Fatalf("Present: %v", err)
		}
		want(t, name, val1, val2)
	})
	t.Run("cleanup removes only its value", func(t *testing.T) {
		if err := s.CleanUp(ctx, name, val1); err != nil {
			t.Fatalf("CleanUp: %v", err)
		}
		want(t, name, val2)
	})
	t.Run("cleanup of a missing record succeeds", func(t *testing.T) {
		if err := s.CleanUp(ctx, name, val1); err != nil {
			t.Fatalf("CleanUp: %v", err)
		}
		want(t, name, val2)
	})
	t.Run("TTL", func(t *testing.T) {
		const n = "_acme-challenge.ttl.example.test."
		s := *s
		s.TTL = 120
		if err := s.Present(ctx, n, val1); err != nil {
			t.Fatalf("Present: %v", err)
		}
		if got := ns.ttl(t, n); got != 120 {
			t.Errorf("TTL: got %d, want 120", got)
		}
	})
	t.Run("zone discovery", func(t *testing.T) {
		for _, tc := range []struct{ name, zone string }{
			{"_acme-challenge.www.example.test.", "example.test."},
			{"_acme-challenge.example.test.", "example.test."},
			{"example.test.", "example.test."},
			{"_acme-challenge.a.deep.example.test.", "deep.example.test."},
			{"_acme-challenge.WWW.Other.Test", "other.test."},
		} {
			got, err := solver.FindZone(ctx, ns.Addr, tc.name, time.Second)
			if err != nil || got != tc.zone {
				t.Errorf("FindZone(%s): got %q, %v, want %q", tc.name, got, err, tc.zone)
			}
		}
		d := &solver.RFC2136{Nameserver: ns.Addr, Key: ns.Key}
		const n = "_acme-challenge.a.deep.example.test."
		if err := d.Present(ctx, n, val3); err != nil {
			t.Fatalf("Present with Zone empty: %v", err)
		}
		want(t, n, val3)
		if err := d.CleanUp(ctx, n, val3); err != nil {
			t.Fatalf("CleanUp with Zone empty: %v", err)
		}
		want(t, n)
	})
	t.Run("zone discovery outside the server's zones", func(t *testing.T) {
		_, err := solver.FindZone(ctx, ns.Addr, "_acme-challenge.example.org.", time.Second)
		if !errors.Is(err, solver.ErrNoZone) {
			t.Fatalf("FindZone: got %v, want ErrNoZone", err)
		}
		if !strings.Contains(err.Error(), "REFUSED") {
			t.Errorf("error %q does not say what the server answered", err)
		}
	})

	const other = "_acme-challenge.bad.example.test."
	for _, tc := range []struct {
		name     string
		key      *solver.TSIGKey
		zone     string
		want     error
		mentions []string
		fqdn     string // default: other
	}{
		{"wrong secret", &solver.TSIGKey{Name: ns.Key.Name, Algorithm: ns.Key.Algorithm, Secret: "c2VjcmV0LXRoYXQtbmFtZWQtZG9lcy1ub3Qta25vdw=="}, "example.test", solver.ErrBadSig, []string{"TSIG key", "BADSIG", "secret"}, ""},
		{"wrong algorithm", &solver.TSIGKey{Name: ns.Key.Name, Algorithm: "hmac-sha512", Secret: ns.Key.Secret}, "", solver.ErrBadKey, []string{"TSIG key", "BADKEY"}, ""},
		{"unknown key", &solver.TSIGKey{Name: "nobody", Secret: ns.Key.Secret}, "example.test", solver.ErrBadKey, []string{"TSIG key", `"nobody"`}, ""},
		{"key not granted", ns.ReadOnlyKey, "example.test", solver.ErrRefused, []string{"update-policy"}, ""},
		{"unsigned", nil, "example.test", solver.ErrRefused, []string{"refused"}, ""},
		{"name outside the zone", ns.Key, "other.test", solver.ErrNotZone, []string{"other.test"}, ""},
		{"zone not served", ns.Key, "example.org", solver.ErrNotAuth, []string{"not authoritative"}, "_acme-challenge.example.org."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := &solver.RFC2136{Nameserver: ns.Addr, Zone: tc.zone, Key: tc.key, Timeout: 5 * time.Second}
			fqdn := other
			if tc.fqdn != "" {
				fqdn = tc.fqdn
			}
			err := bad.Present(ctx, fqdn, val1)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Present: got %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
			if !solver.IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = false, want true", err)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			for _, k := range []*solver.TSIGKey{tc.key, ns.Key, ns.ReadOnlyKey} {
				if k != nil && strings.Contains(err.Error(), k.Secret) {
					t.Errorf("error %q contains a TSIG secret", err)
				}
			}
			if got := ns.txt(t, other); len(got) != 0 {
				t.Errorf("TXT %s after the failed update: got %q, want none", other, got)
			}
		})
	}
}

// TestRFC2136Unreachable checks that a canceled context ends an update
// waiting for a server that never answers.
func TestRFC2136Unreachable(t *testing.T) {
	t.Parallel()
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	s := &solver.RFC2136{Nameserver: silent.LocalAddr().String(), Zone: "example.test", Timeout: time.Minute}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err = s.Present(ctx, "_acme-challenge.example.test.", val1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Present: got %v, want context.Canceled", err)
	}
	if solver.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Present returned %v after the cancel, want promptly", d)
	}
}

func TestRFC2136Config(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := &solver.TSIGKey{Name: "k", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQ="}
	for _, tc := range []struct {
		name  string
		s     solver.RFC2136
		fqdn  string
		value string
		want  string
	}{
		{"no nameserver", solver.RFC2136{Key: key}, "a.example.test", val1, "Nameserver"},
		{"bad name", solver.RFC2136{Nameserver: "127.0.0.1:1", Zone: "example.test"}, "a..example.test", val1, "not a DNS name"},
		{"empty value", solver.RFC2136{Nameserver: "127.0.0.1:1", Zone: "example.test"}, "a.example.test", "", "empty"},
		{"quote in value", solver.RFC2136{Nameserver: "127.0.0.1:1", Zone: "example.test"}, "a.example.test", `a"b`, "printable ASCII"},
		{"md5 key", solver.RFC2136{Nameserver: "127.0.0.1:1", Zone: "example.test", Key: &solver.TSIGKey{Name: "k", Algorithm: "hmac-md5", Secret: key.Secret}}, "a.example.test", val1, "hmac-md5"},
		{"key without name", solver.RFC2136{Nameserver: "127.0.0.1:1", Zone: "example.test", Key: &solver.TSIGKey{Secret: key.Secret}}, "a.example.test", val1, "no name"},
		{"secret not base64", solver.RFC2136{Nameserver: "127.0.0.1:1", Zone: "example.test", Key: &solver.TSIGKey{Name: "k", Secret: "s3cr3t!!notbase64"}}, "a.example.test", val1, "base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Present(ctx, tc.fqdn, tc.value)
			if !errors.Is(err, solver.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Present: got %v, want ErrConfig mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), key.Secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}
