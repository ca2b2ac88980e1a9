package solver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// DefaultDNSTimeout bounds one DNS exchange (an update or a query) when the
// solver's Timeout is zero.
const DefaultDNSTimeout = 10 * time.Second

// hostPort adds port 53 to an address that has none ("ns1.example.com",
// "192.0.2.1", "2001:db8::1").
func hostPort(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty address")
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	host := addr
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, "53"), nil
}

// exchange sends m to addr over UDP (TCP when the answer is truncated) and
// returns the answer. It stops when ctx ends, not only at its deadline.
// On a TSIG verification failure of the answer it returns both the answer
// and the error, so the caller can read the rcode and the TSIG error.
func exchange(ctx context.Context, m *dns.Msg, addr string, timeout time.Duration, tsig map[string]string) (*dns.Msg, error) {
	r, err := exchangeOnce(ctx, "udp", m, addr, timeout, tsig)
	if err == nil && r.Truncated {
		r, err = exchangeOnce(ctx, "tcp", m, addr, timeout, tsig)
	}
	return r, err
}

func exchangeOnce(ctx context.Context, network string, m *dns.Msg, addr string, timeout time.Duration, tsig map[string]string) (*dns.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &dns.Client{Net: network, Timeout: timeout, TsigSecret: tsig}
	conn, err := c.DialContext(ctx, addr)
	if err != nil {
		if cerr := ctxEnded(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	defer conn.Close()
	// Closing the connection ends a read or write that is waiting, so a
	// canceled ctx without a deadline is honoured too.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		if cerr := ctxEnded(ctx); cerr != nil {
			return nil, cerr
		}
	}
	if err != nil && r != nil && r.Rcode != dns.RcodeSuccess {
		// An error answer to a signed request may come unsigned or with an
		// empty MAC (BADSIG, BADKEY): the rcode is what matters.
		return r, nil
	}
	return r, err
}

// ctxEnded is ctx.Err(), or context.DeadlineExceeded once ctx's deadline
// has passed: a read that timed out at the deadline can return before the
// context marks itself done.
func ctxEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// rcodeError maps an update's answer to the package's sentinel errors; nil
// for NOERROR.
func rcodeError(r *dns.Msg) error {
	if r.Rcode == dns.RcodeSuccess {
		return nil
	}
	if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		switch t.Error {
		case dns.RcodeBadSig:
			return ErrBadSig
		case dns.RcodeBadKey:
			return ErrBadKey
		case dns.RcodeBadTime:
			return ErrBadTime
		}
	}
	switch r.Rcode {
	case dns.RcodeRefused:
		return ErrRefused
	case dns.RcodeNotAuth:
		return ErrNotAuth
	case dns.RcodeNotZone:
		return ErrNotZone
	}
	return fmt.Errorf("the server answered %s", rcodeName(r.Rcode))
}

// rcodeName is the mnemonic of an rcode ("SERVFAIL"), or its number.
func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}
