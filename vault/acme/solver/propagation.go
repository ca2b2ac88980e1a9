package solver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultPollInterval is WaitPropagation's interval when it is given zero.
const DefaultPollInterval = 2 * time.Second

// propagationQueryTimeout bounds one TXT query of WaitPropagation, so an
// unreachable resolver does not hold up the others for long.
const propagationQueryTimeout = 5 * time.Second

// WaitPropagation queries each resolver (HOST:PORT; a missing port means
// 53) for TXT records at fqdn until every one of them returns value,
// polling every interval (zero means DefaultPollInterval) until ctx ends.
// A resolver that has answered the value once is not asked again. Queries
// ask for recursion, so the resolvers may be recursive resolvers or the
// zone's authoritative servers.
//
// It returns nil once all have the value. When ctx ends first the error
// wraps ErrNotPropagated and ctx.Err() and, for each resolver without the
// value, says what it last answered (NXDOMAIN, other TXT values, no
// answer).
func WaitPropagation(ctx context.Context, resolvers []string, fqdn, value string, interval time.Duration) error {
	if len(resolvers) == 0 {
		return fmt.Errorf("%w: WaitPropagation needs at least one resolver", ErrConfig)
	}
	name, err := checkName(fqdn)
	if err != nil {
		return err
	}
	if _, err := txtStrings(value); err != nil {
		return err
	}
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	pending := make(map[string]string, len(resolvers)) // address → last answer
	var order []string
	for _, r := range resolvers {
		addr, err := hostPort(r)
		if err != nil {
			return fmt.Errorf("%w: WaitPropagation was given an empty resolver address", ErrConfig)
		}
		if _, dup := pending[addr]; !dup {
			pending[addr] = ""
			order = append(order, addr)
		}
	}

	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		for _, addr := range order {
			if _, ok := pending[addr]; !ok {
				continue
			}
			found, answer := queryTXT(ctx, addr, name, value)
			if found {
				delete(pending, addr)
			} else if ctxEnded(ctx) == nil || pending[addr] == "" {
				// An answer cut short by ctx is kept only when there
				// is no earlier one.
				pending[addr] = answer
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var missing []string
			for _, addr := range order {
				if answer, ok := pending[addr]; ok {
					missing = append(missing, fmt.Sprintf("resolver %s answered %s", addr, answer))
				}
			}
			return fmt.Errorf("wait for TXT %q at %s: %s: %w: %w", value, name, strings.Join(missing, "; "), ErrNotPropagated, ctx.Err())
		case <-tick.C:
		}
	}
}

// queryTXT asks addr for the TXT records at name and reports whether value
// is among them, and otherwise what the answer was.
func queryTXT(ctx context.Context, addr, name, value string) (bool, string) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.SetEdns0(4096, false)
	r, err := exchange(ctx, m, addr, propagationQueryTimeout, nil)
	if err != nil {
		return false, fmt.Sprintf("nothing (%v)", err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return false, rcodeName(r.Rcode)
	}
	var seen []string
	for _, rr := range r.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		got := strings.Join(txt.Txt, "")
		if got == value {
			return true, ""
		}
		seen = append(seen, fmt.Sprintf("%q", got))
	}
	if len(seen) == 0 {
		return false, "no TXT record (NOERROR, empty answer)"
	}
	return false, "other TXT values " + strings.Join(seen, ", ")
}
