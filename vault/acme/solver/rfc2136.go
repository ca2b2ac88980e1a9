package solver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL of the TXT records RFC2136 adds when TTL is zero.
const DefaultTTL = 60

// tsigFudge is the allowed clock difference (seconds) put in each TSIG, as
// nsupdate and lego do.
const tsigFudge = 300

// RFC2136 sends dynamic updates (RFC 2136) signed with TSIG to an
// authoritative server (BIND, Knot, PowerDNS). Present adds the one TXT
// record (fqdn, value); CleanUp deletes that record only, so other values at
// the same name stay. The server must grant the key TXT updates at the
// name, e.g. in BIND `update-policy { grant KEY zonesub TXT; };`.
//
// An RFC2136 is not changed by its methods and is safe for concurrent use.
type RFC2136 struct {
	// Nameserver is the HOST:PORT of the zone's primary server, which
	// takes the updates; a missing port means 53. Required.
	Nameserver string
	// Zone is the zone the records go in ("example.com"). Empty means it
	// is found at each call with SOA queries to Nameserver for fqdn and
	// then its parents, until an answer or an authority section holds the
	// zone's SOA.
	Zone string
	// Key signs the updates. Nil sends them unsigned, which servers
	// accept only from addresses an allow-update lets in.
	Key *TSIGKey
	// TTL is the TXT record's TTL in seconds; zero means DefaultTTL (60).
	TTL uint32
	// Timeout bounds each DNS exchange (zone discovery query or update);
	// zero means DefaultDNSTimeout (10 s).
	Timeout time.Duration
}

// Present adds the TXT record value at fqdn. Adding a record that exists
// succeeds and changes nothing.
func (r *RFC2136) Present(ctx context.Context, fqdn, value string) error {
	return r.update(ctx, "add", fqdn, value)
}

// CleanUp deletes the TXT record value at fqdn, leaving other TXT values at
// fqdn. Deleting a record that does not exist succeeds.
func (r *RFC2136) CleanUp(ctx context.Context, fqdn, value string) error {
	return r.update(ctx, "delete", fqdn, value)
}

func (r *RFC2136) update(ctx context.Context, op, fqdn, value string) error {
	ns, err := hostPort(r.Nameserver)
	if err != nil {
		return fmt.Errorf("%w: RFC2136.Nameserver is empty: set it to the HOST:PORT of the zone's primary server", ErrConfig)
	}
	name, err := checkName(fqdn)
	if err != nil {
		return err
	}
	txt, err := txtStrings(value)
	if err != nil {
		return err
	}
	var tsig map[string]string
	var keyName, alg string
	if r.Key != nil {
		var secret string
		keyName, alg, secret, err = r.Key.wire()
		if err != nil {
			return err
		}
		tsig = map[string]string{keyName: secret}
	}
	timeout := r.timeout()

	zone := r.Zone
	if zone == "" {
		zone, err = FindZone(ctx, ns, name, timeout)
		if err != nil {
			return err
		}
	} else {
		if _, ok := dns.IsDomainName(zone); !ok {
			return fmt.Errorf("%w: RFC2136.Zone %q is not a valid DNS name", ErrConfig, zone)
		}
		zone = dns.CanonicalName(zone)
	}
	if !dns.IsSubDomain(zone, name) {
		return fmt.Errorf("%s is outside RFC2136.Zone %s: %w", name, zone, ErrNotZone)
	}

	rr := &dns.TXT{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: r.ttl()},
		Txt: txt,
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	if op == "add" {
		m.Insert([]dns.RR{rr})
	} else {
		m.Remove([]dns.RR{rr})
	}
	if r.Key != nil {
		m.SetTsig(keyName, alg, tsigFudge, time.Now().Unix())
	}

	what := fmt.Sprintf("%s TXT %q at %s in zone %s via %s", op, value, name, zone, ns)
	if r.Key != nil {
		what += fmt.Sprintf(" with TSIG key %q", strings.TrimSuffix(keyName, "."))
	}
	ans, err := exchange(ctx, m, ns, timeout, tsig)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := rcodeError(ans); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (r *RFC2136) ttl() uint32 {
	if r.TTL == 0 {
		return DefaultTTL
	}
	return r.TTL
}

func (r *RFC2136) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultDNSTimeout
	}
	return r.Timeout
}

// checkName returns fqdn in canonical form (lowercase, final dot).
func checkName(fqdn string) (string, error) {
	if _, ok := dns.IsDomainName(fqdn); !ok || fqdn == "" || fqdn == "." {
		return "", fmt.Errorf("%w: %q is not a DNS name (want e.g. _acme-challenge.www.example.com.)", ErrConfig, fqdn)
	}
	return dns.CanonicalName(fqdn), nil
}

// txtStrings splits value into the character-strings of a TXT record (at
// most 255 bytes each). It refuses what miekg/dns would read as escapes and
// what is not printable ASCII: an ACME value is base64url.
func txtStrings(value string) ([]string, error) {
	if value == "" {
		return nil, fmt.Errorf("%w: the TXT value is empty", ErrConfig)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 || c > 0x7e || c == '\\' || c == '"' {
			return nil, fmt.Errorf("%w: the TXT value %q holds a character other than printable ASCII without \\ and \" (an ACME value is base64url)", ErrConfig, value)
		}
	}
	var out []string
	for len(value) > 255 {
		out = append(out, value[:255])
		value = value[255:]
	}
	return append(out, value), nil
}
