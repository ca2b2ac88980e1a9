package solver

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// FindZone returns the zone (canonical, with the final dot) that holds
// fqdn at the authoritative server nameserver (HOST:PORT; a missing port
// means 53). It asks nameserver for the SOA of fqdn and, while the answer
// names no zone, of each parent in turn: the zone is the owner of the SOA
// in the answer section (fqdn is the apex) or in the authority section
// (NXDOMAIN or no SOA at fqdn). timeout bounds each query; zero means
// DefaultDNSTimeout. It does not follow CNAMEs. When no name up to the root
// gives a SOA the error wraps ErrNoZone and says what the server answered.
func FindZone(ctx context.Context, nameserver, fqdn string, timeout time.Duration) (string, error) {
	ns, err := hostPort(nameserver)
	if err != nil {
		return "", fmt.Errorf("%w: the nameserver address is empty", ErrConfig)
	}
	name, err := checkName(fqdn)
	if err != nil {
		return "", err
	}
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	var last string
	for _, off := range dns.Split(name) {
		q := name[off:]
		m := new(dns.Msg)
		m.SetQuestion(q, dns.TypeSOA)
		m.RecursionDesired = false
		r, err := exchange(ctx, m, ns, timeout, nil)
		if err != nil {
			return "", fmt.Errorf("find the zone of %s: query SOA %s at %s: %w", name, q, ns, err)
		}
		if r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError {
			for _, sec := range [][]dns.RR{r.Answer, r.Ns} {
				for _, rr := range sec {
					if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
						return dns.CanonicalName(soa.Hdr.Name), nil
					}
				}
			}
		}
		last = fmt.Sprintf("SOA %s: %s", q, rcodeName(r.Rcode))
	}
	return "", fmt.Errorf("find the zone of %s at %s (last answer %s): %w", name, ns, last, ErrNoZone)
}
