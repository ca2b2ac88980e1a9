package solver

import "context"

// Solver publishes and removes the TXT record of a dns-01 challenge.
//
// fqdn is the absolute name the record is written at, with or without the
// final dot ("_acme-challenge.www.example.com."); value is the record's
// text (the base64url SHA-256 digest of the key authorization). Present
// returns once the authoritative side has accepted the record, not once it
// has propagated (see WaitPropagation); presenting a record that already
// exists succeeds. CleanUp removes the one record that Present added with
// the same value, leaving other values at fqdn alone (concurrent orders for
// the same name, e.g. a wildcard and its base domain), and succeeds when the
// record is already gone.
//
// Both honour ctx: when it ends they stop waiting and return an error that
// wraps ctx.Err(). Implementations in this package are safe for concurrent
// use and are not changed by their methods.
type Solver interface {
	Present(ctx context.Context, fqdn, value string) error
	CleanUp(ctx context.Context, fqdn, value string) error
}

// None is the solver for CA accounts whose domains are pre-validated:
// Present and CleanUp do nothing.
type None struct{}

// Present does nothing and returns nil.
func (None) Present(context.Context, string, string) error { return nil }

// CleanUp does nothing and returns nil.
func (None) CleanUp(context.Context, string, string) error { return nil }

var (
	_ Solver = None{}
	_ Solver = (*Exec)(nil)
	_ Solver = (*RFC2136)(nil)
)
