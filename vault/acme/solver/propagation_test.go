package solver_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/acme/solver"
)

func TestWaitPropagation(t *testing.T) {
	t.Parallel()
	ns := startNamed(t)
	s := &solver.RFC2136{Nameserver: ns.Addr, Zone: "example.test", Key: ns.Key}
	const name = "_acme-challenge.prop.example.test."
	if err := s.Present(ctxTimeout(t, 30*time.Second), name, val1); err != nil {
		t.Fatalf("Present: %v", err)
	}

	t.Run("found", func(t *testing.T) {
		err := solver.WaitPropagation(ctxTimeout(t, 30*time.Second), []string{ns.Addr, ns.Addr}, name, val1, 20*time.Millisecond)
		if err != nil {
			t.Fatalf("WaitPropagation: %v", err)
		}
	})

	// A resolver that never answers, beside named.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	for _, tc := range []struct {
		name      string
		resolvers []string
		fqdn      string
		value     string
		mentions  []string
		notNamed  bool // the error must not name named: it had the record
	}{
		{"no record", []string{ns.Addr}, "_acme-challenge.none.example.test.", val1, []string{"resolver " + ns.Addr + " answered NXDOMAIN"}, false},
		{"another value", []string{ns.Addr}, name, val2, []string{"resolver " + ns.Addr + " answered other TXT values", val1}, false},
		{"one resolver silent", []string{ns.Addr, silent.LocalAddr().String()}, name, val1, []string{"resolver " + silent.LocalAddr().String() + " answered nothing"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := solver.WaitPropagation(ctxTimeout(t, 400*time.Millisecond), tc.resolvers, tc.fqdn, tc.value, 50*time.Millisecond)
			if !errors.Is(err, solver.ErrNotPropagated) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WaitPropagation: got %v, want ErrNotPropagated and context.DeadlineExceeded", err)
			}
			t.Logf("error: %v", err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("returned after %v, want soon after the 400ms deadline", d)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if tc.notNamed && strings.Contains(err.Error(), ns.Addr) {
				t.Errorf("error %q names %s, which had the record", err, ns.Addr)
			}
		})
	}

	t.Run("config", func(t *testing.T) {
		for _, tc := range []struct {
			resolvers []string
			fqdn      string
		}{
			{nil, name},
			{[]string{""}, name},
			{[]string{ns.Addr}, "bad..name"},
		} {
			err := solver.WaitPropagation(context.Background(), tc.resolvers, tc.fqdn, val1, time.Millisecond)
			if !errors.Is(err, solver.ErrConfig) {
				t.Errorf("WaitPropagation(%q, %q): got %v, want ErrConfig", tc.resolvers, tc.fqdn, err)
			}
		}
	})
}
