package acme

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
)

// Steps, as a pending operation's status_details shows them.
const (
	StepQueued      = "queued: the order will be placed with the CA"
	StepOrderPlaced = "order placed"
	StepWaitingDNS  = "waiting for DNS"
	StepValidating  = "validating"
	StepFinalizing  = "finalizing"
)

// Progress is an order's state as the vault keeps it in Raft. It is saved
// before every step with an effect outside the vault, so a node that
// takes over resumes the same order and cleans up the same records.
type Progress struct {
	// OrderURL is the order's URL at the CA once placed.
	OrderURL string `json:"order_url,omitempty"`
	// Step is one of the Step constants, with detail.
	Step string `json:"step,omitempty"`
	// Records are the challenge records presented and not yet removed.
	Records []Record `json:"records,omitempty"`
	// Replaces is the ARI id of the certificate this order renews.
	Replaces string `json:"replaces,omitempty"`
	// Profile is the ACME profile asked for ("" for the CA's default).
	Profile string `json:"profile,omitempty"`
	// Finalized is set before the CSR is sent.
	Finalized bool `json:"finalized,omitempty"`
}

// Record is a dns-01 TXT record: _acme-challenge.NAME. and its value.
type Record struct {
	FQDN  string `json:"fqdn"`
	Value string `json:"value"`
}

// Solver publishes and removes dns-01 TXT records.
type Solver interface {
	Present(ctx context.Context, fqdn, value string) error
	CleanUp(ctx context.Context, fqdn, value string) error
}

// Order drives one certificate order.
type Order struct {
	Client *Client
	Solver Solver
	// Propagate, when set, waits until a presented record is visible to
	// the resolvers the CA will use, before the CA is asked to validate.
	Propagate func(ctx context.Context, fqdn, value string) error
	// Domains are the DNS names ordered; CSR (DER) requests exactly them.
	Domains []string
	CSR     []byte
	// Save persists the progress; Run calls it before every step with an
	// effect outside the vault and stops when it fails (the operation was
	// cancelled, or this node lost leadership).
	Save func(ctx context.Context, p Progress) error
	// PollMin and PollMax bound the interval at which the order and its
	// authorizations are polled (defaults 250ms and 5s).
	PollMin, PollMax time.Duration
}

// Run drives the order from p to the issued chain (leaf first, DER). It
// places an order only when p has none; otherwise it resumes p.OrderURL.
func (o *Order) Run(ctx context.Context, p Progress) ([][]byte, error) {
	core := o.Client.core
	if p.OrderURL == "" {
		opts := &api.OrderOptions{Profile: p.Profile, ReplacesCertID: p.Replaces}
		if p.Profile != "" {
			if profiles := core.GetDirectory().Meta.Profiles; len(profiles) > 0 {
				if _, ok := profiles[p.Profile]; !ok {
					return nil, &Error{Kind: KindConfig, Msg: fmt.Sprintf("the CA offers no profile %q (it offers %s): change the policy's issuer profile", p.Profile, strings.Join(sortedKeys(profiles), ", "))}
				}
			}
		}
		ord, err := core.Orders.New(ctx, o.Domains, opts)
		if err != nil {
			return nil, wrap(err, "place the order")
		}
		if ord.Location == "" {
			return nil, &Error{Kind: KindCA, Msg: "the CA accepted the order but returned no order URL"}
		}
		p.OrderURL, p.Step = ord.Location, StepOrderPlaced
		if err := o.Save(ctx, p); err != nil {
			return nil, err
		}
	}
	poll := o.poller()
	for {
		ord, err := core.Orders.Get(ctx, p.OrderURL)
		if err != nil {
			return nil, wrap(err, "fetch the order")
		}
		switch ord.Status {
		case legoacme.StatusPending:
			if err := o.authorize(ctx, &p, ord.Authorizations); err != nil {
				return nil, err
			}
			// The authorizations are valid; the order follows shortly.
			if err := poll.wait(ctx); err != nil {
				return nil, err
			}
		case legoacme.StatusReady:
			if !p.Finalized || !strings.HasPrefix(p.Step, StepFinalizing) {
				p.Finalized, p.Step = true, StepFinalizing+": the CSR is sent to the CA"
				if err := o.Save(ctx, p); err != nil {
					return nil, err
				}
			}
			if _, err := core.Orders.UpdateForCSR(ctx, ord.Finalize, o.CSR); err != nil {
				var pd *legoacme.ProblemDetails
				if errors.As(err, &pd) && strings.HasSuffix(pd.Type, ":orderNotReady") {
					// Another node finalized it a moment ago: re-read.
					continue
				}
				return nil, wrap(err, "finalize the order")
			}
		case legoacme.StatusProcessing:
			if err := poll.wait(ctx); err != nil {
				return nil, err
			}
		case legoacme.StatusValid:
			return o.download(ctx, ord.Certificate)
		case legoacme.StatusInvalid:
			if ord.Error != nil {
				return nil, problemError(ord.Error, "the order failed", nil)
			}
			return nil, &Error{Kind: KindCA, Msg: "the CA marked the order invalid without saying why (an authorization failed or the order expired)"}
		default:
			return nil, &Error{Kind: KindCA, Msg: fmt.Sprintf("the order has status %q, which ACME does not define", ord.Status)}
		}
	}
}

// authorize completes every pending authorization with dns-01.
func (o *Order) authorize(ctx context.Context, p *Progress, authzURLs []string) error {
	core := o.Client.core
	type pending struct {
		authzURL, chalURL, domain string
		rec                       Record
		started                   bool
	}
	var todo []pending
	for _, u := range authzURLs {
		az, err := core.Authorizations.Get(ctx, u)
		if err != nil {
			return wrap(err, "fetch an authorization")
		}
		domain := az.Identifier.Value
		switch az.Status {
		case legoacme.StatusValid:
			continue
		case legoacme.StatusPending:
		default:
			return authzFailure(az, domain)
		}
		i := slices.IndexFunc(az.Challenges, func(c legoacme.Challenge) bool { return c.Type == "dns-01" })
		if i < 0 {
			return &Error{Kind: KindCA, Msg: fmt.Sprintf("the CA offers no dns-01 challenge for %s; certvault validates with dns-01 only", domain)}
		}
		ch := az.Challenges[i]
		keyAuth, err := core.GetKeyAuthorization(ch.Token)
		if err != nil {
			return fmt.Errorf("key authorization: %w", err)
		}
		sum := sha256.Sum256([]byte(keyAuth))
		rec := Record{
			FQDN:  "_acme-challenge." + strings.TrimSuffix(strings.TrimPrefix(domain, "*."), ".") + ".",
			Value: base64.RawURLEncoding.EncodeToString(sum[:]),
		}
		todo = append(todo, pending{authzURL: u, chalURL: ch.URL, domain: domain, rec: rec, started: ch.Status != legoacme.StatusPending})
	}
	if len(todo) == 0 {
		return nil
	}
	// Record every TXT record before presenting any, so that whoever
	// resumes the order knows what to clean up.
	var names []string
	added := false
	for _, t := range todo {
		names = append(names, t.rec.FQDN)
		if !slices.Contains(p.Records, t.rec) {
			p.Records = append(p.Records, t.rec)
			added = true
		}
	}
	if added || !strings.HasPrefix(p.Step, StepWaitingDNS) {
		p.Step = StepWaitingDNS + ": TXT " + strings.Join(names, ", ")
		if err := o.Save(ctx, *p); err != nil {
			return err
		}
	}
	for _, t := range todo {
		if t.started {
			continue
		}
		if err := o.Solver.Present(ctx, t.rec.FQDN, t.rec.Value); err != nil {
			return &Error{Kind: KindSolver, Msg: fmt.Sprintf("the DNS solver could not publish TXT %s: %v", t.rec.FQDN, err), Err: err}
		}
	}
	if o.Propagate != nil {
		for _, t := range todo {
			if t.started {
				continue
			}
			if err := o.Propagate(ctx, t.rec.FQDN, t.rec.Value); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &Error{Kind: KindSolver, Msg: fmt.Sprintf("TXT %s did not become visible: %v", t.rec.FQDN, err), Err: err}
			}
		}
	}
	p.Step = StepValidating + ": the CA is checking TXT " + strings.Join(names, ", ")
	if err := o.Save(ctx, *p); err != nil {
		return err
	}
	for _, t := range todo {
		if t.started {
			continue
		}
		if _, err := core.Challenges.New(ctx, t.chalURL); err != nil {
			return wrap(err, "ask the CA to validate "+t.domain)
		}
	}
	poll := o.poller()
	for _, t := range todo {
		for {
			az, err := core.Authorizations.Get(ctx, t.authzURL)
			if err != nil {
				return wrap(err, "fetch an authorization")
			}
			if az.Status == legoacme.StatusValid {
				break
			}
			if az.Status != legoacme.StatusPending {
				return authzFailure(az, t.domain)
			}
			if err := poll.wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// authzFailure describes an authorization that did not become valid,
// with the challenge's problem document when the CA gave one.
func authzFailure(az legoacme.Authorization, domain string) error {
	for _, c := range az.Challenges {
		if c.Error != nil {
			return problemError(c.Error, "validation of "+domain+" failed", nil)
		}
	}
	return &Error{Kind: KindCA, Msg: fmt.Sprintf("the authorization for %s is %s", domain, az.Status)}
}

// download fetches the issued chain and returns it as DER, leaf first.
func (o *Order) download(ctx context.Context, certURL string) ([][]byte, error) {
	raw, err := o.Client.core.Certificates.Get(ctx, certURL, true)
	if err != nil {
		return nil, wrap(err, "download the certificate")
	}
	var chain [][]byte
	rest := raw.Cert
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, &Error{Kind: KindCA, Msg: "the CA's certificate download holds no PEM certificate"}
	}
	return chain, nil
}

// CleanUp removes every record in p through the solver and returns the
// records it could not remove, with the errors.
func CleanUp(ctx context.Context, s Solver, records []Record) ([]Record, error) {
	var left []Record
	var errs []error
	for _, r := range records {
		if err := s.CleanUp(ctx, r.FQDN, r.Value); err != nil {
			left = append(left, r)
			errs = append(errs, fmt.Errorf("remove TXT %s: %w", r.FQDN, err))
		}
	}
	return left, errors.Join(errs...)
}

// poller waits with a doubling interval between polls.
type poller struct {
	min, max, cur time.Duration
}

func (o *Order) poller() *poller {
	lo, hi := o.PollMin, o.PollMax
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi < lo {
		hi = max(5*time.Second, lo)
	}
	return &poller{min: lo, max: hi, cur: lo}
}

func (p *poller) wait(ctx context.Context) error {
	t := time.NewTimer(p.cur)
	defer t.Stop()
	p.cur = min(p.cur*2, p.max)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
