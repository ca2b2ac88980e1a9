package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	legoacme "github.com/go-acme/lego/v5/acme"
)

// TestWrapClassifies checks that each kind of failure is told apart: the
// CA's refusals are permanent and keep its problem, rate limits and
// server errors are retried, network errors are retried, and a cancelled
// context passes through untouched.
func TestWrapClassifies(t *testing.T) {
	prob := func(typ string, status int) *legoacme.ProblemDetails {
		return &legoacme.ProblemDetails{Type: "urn:ietf:params:acme:error:" + typ, Detail: "detail of " + typ, HTTPStatus: status}
	}
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		code      string
		msg       string
	}{
		{"unauthorized", fmt.Errorf("post: %w", prob("unauthorized", 403)), true, "unauthorized", "challenge record is published"},
		{"rejected identifier", prob("rejectedIdentifier", 400), true, "rejectedIdentifier", "policy's names"},
		{"server internal", prob("serverInternal", 500), false, "serverInternal", "detail of serverInternal"},
		{"rate limited", &legoacme.RateLimitedError{ProblemDetails: prob("rateLimited", 429)}, false, "rateLimited", "rate-limits"},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, "CAUnreachable", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := wrap(tc.err, "place the order")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("wrap returned %T %v", err, err)
			}
			if e.Permanent() != tc.permanent || IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v", e.Permanent(), tc.permanent)
			}
			if e.Code() != tc.code {
				t.Errorf("code = %q, want %q", e.Code(), tc.code)
			}
			if !strings.HasPrefix(e.Msg, "place the order") || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("message %q: want the step and %q", e.Msg, tc.msg)
			}
		})
	}
	// At registration, unauthorized is about the account binding.
	if err := wrap(prob("unauthorized", 403), "register the ACME account"); !strings.Contains(err.Error(), "External Account Binding") {
		t.Fatalf("registration refused: %v", err)
	}
	if err := wrap(context.Canceled, "x"); !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Fatalf("a cancelled context became %v", err)
	}
}

// TestProblemSubproblems keeps every subproblem in the message.
func TestProblemSubproblems(t *testing.T) {
	p := &legoacme.ProblemDetails{Type: "urn:ietf:params:acme:error:compound", Detail: "several", HTTPStatus: 400,
		SubProblems: []legoacme.SubProblem{{Type: "urn:ietf:params:acme:error:caa", Detail: "CAA forbids"}}}
	e := problemError(p, "finalize", nil)
	if !strings.Contains(e.Msg, "caa: CAA forbids") || !errors.Is(e, error(p)) {
		t.Fatalf("message %q / unwrap", e.Msg)
	}
}

// TestPollerBackoff doubles up to the maximum.
func TestPollerBackoff(t *testing.T) {
	p := (&Order{PollMin: 10, PollMax: 35}).poller()
	var got []int64
	for range 4 {
		got = append(got, int64(p.cur))
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (&Order{PollMin: 1e9}).poller().wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a cancelled context: %v", err)
	}
	if fmt.Sprint(got) != "[10 20 35 35]" {
		t.Fatalf("intervals %v", got)
	}
}
