package issuance

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/acme"
	"github.com/certvault/certvault/vault/acme/solver"
	"github.com/certvault/certvault/vault/certs"
)

// The ACME order runner: the leader drives each ACME order of a
// pending operation from its record in raft (acme/orders/NAME) to a new
// certificate version or a failed operation, and removes its challenge
// records; a new leader resumes from the same records.

// Order runner tuning.
const (
	// orderScanInterval is how often the leader rescans pending
	// operations even when nothing changed (retries are due, a watch was
	// missed).
	orderScanInterval = 15 * time.Second
	// orderMaxAttempts is how many times a step that failed for a passing
	// reason (CA unreachable, rate limit) is tried before the operation
	// fails and a human is told.
	orderMaxAttempts = 8
	// orderBackoffMin and orderBackoffMax bound the wait between attempts.
	orderBackoffMin = 2 * time.Second
	orderBackoffMax = 5 * time.Minute
	// orderStepTimeout bounds one attempt at driving an order.
	orderStepTimeout = 30 * time.Minute
)

// errOrderStopped means the operation changed under the driver
// (cancelled, deleted, completed elsewhere): stop without touching it.
var errOrderStopped = errors.New("the operation is no longer in progress")

// acmeIssuerOf reports whether the policy names an ACME issuer. It
// refuses a disabled issuer and a profile on an issuer that is not ACME.
func (s *Issuance) acmeIssuerOf(p *keyvault.Policy) (bool, error) {
	name := p.IssuerName()
	profile := ""
	if p.Issuer != nil {
		profile = p.Issuer.Profile
	}
	if name == keyvault.IssuerSelf || name == keyvault.IssuerUnknown {
		if profile != "" {
			return false, core.BadParameter("policy.issuer.profile", "issuer.profile %q applies to ACME issuers only, not %s", profile, name)
		}
		return false, nil
	}
	si, _, ok, err := s.loadIssuer(name)
	if err != nil || !ok {
		return false, err
	}
	if !isACMEProvider(si.Provider) {
		if profile != "" {
			return false, core.BadParameter("policy.issuer.profile", "issuer.profile %q applies to ACME issuers only; issuer %s is %s", profile, name, si.Provider)
		}
		return false, nil
	}
	if si.Attributes.Enabled != nil && !*si.Attributes.Enabled {
		return false, core.BadParameter("policy.issuer.name", "issuer %q is disabled: enable it with 'certvault issuer set %s --disabled=false'", name, name)
	}
	return true, nil
}

// acmeDomains returns the DNS names an ACME order asks for: the policy's
// DNS SANs, and the subject's common name when it is a DNS name.
func acmeDomains(p *keyvault.Policy) ([]string, error) {
	xp := p.X509Properties
	var names []string
	seen := map[string]bool{}
	add := func(d string) {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d != "" && !seen[d] {
			seen[d] = true
			names = append(names, d)
		}
	}
	if xp != nil {
		if subj, err := keyvault.ParseSubject(xp.Subject); err == nil && strings.Contains(subj.CommonName, ".") && !strings.ContainsAny(subj.CommonName, " @") {
			add(subj.CommonName)
		}
		if xp.SANs != nil {
			if len(xp.SANs.Emails) > 0 || len(xp.SANs.UPNs) > 0 {
				return nil, core.BadParameter("policy.x509_props.sans", "an ACME CA certifies DNS names only: remove the emails and UPNs from the policy's sans")
			}
			for _, d := range xp.SANs.DNSNames {
				add(d)
			}
		}
	}
	if len(names) == 0 {
		return nil, core.BadParameter("policy.x509_props.sans", "an ACME order needs DNS names: give --san www.example.com (or a subject CN=www.example.com)")
	}
	return names, nil
}

// orderRunner drives the ACME orders of pending operations on the leader.
type orderRunner struct {
	n      *Issuance
	mu     sync.Mutex
	active map[string]bool
	// clients caches one ACME client per issuer, rebuilt when the issuer
	// entry changes.
	clients map[string]cachedClient
}

type cachedClient struct {
	index  uint64
	client *acme.Client
}

// acmeOrder is an ACME order's state in Raft. It is kept apart from the
// pending operation it serves, so that the challenge records it lists are
// removed even when the operation or the certificate is deleted.
type acmeOrder struct {
	RequestID string        `json:"request_id"`
	Issuer    string        `json:"issuer"`
	Progress  acme.Progress `json:"progress"`
}

func ACMEOrderKey(name string) string { return core.ACMEOrdersPrefix + objname.Canonical(name) }

func (s *Issuance) loadOrder(name string) (*acmeOrder, raftstore.Entry, bool, error) {
	e, ok := s.Store.Get(ACMEOrderKey(name))
	if !ok {
		return nil, e, false, nil
	}
	var o acmeOrder
	if err := json.Unmarshal(e.Value, &o); err != nil {
		return nil, e, false, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return &o, e, true, nil
}

// queueOrder adds a new order for a certificate to b. It refuses while
// the records of the certificate's previous order are still being
// removed.
func (s *Issuance) queueOrder(b *raftstore.Batch, name string, o *acmeOrder) error {
	prev, e, ok, err := s.loadOrder(name)
	if err != nil {
		return err
	}
	if ok && len(prev.Progress.Records) > 0 {
		return core.Conflict("Conflict", "the challenge records of the previous order for %s are still being removed; retry in a moment", name)
	}
	idx := raftstore.NotExist
	if ok {
		idx = e.Index
	}
	b.PutIf(ACMEOrderKey(name), core.MustJSON(o), idx)
	return nil
}

// RunOrders is the leader's order loop: it starts a driver for every ACME
// order with work left, and looks again whenever the set of orders
// changes, and every orderScanInterval. It returns when ctx ends
// (leadership lost); the next leader resumes from the same records.
func (s *Issuance) RunOrders(ctx context.Context) {
	or := &orderRunner{n: s, active: map[string]bool{}, clients: map[string]cachedClient{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		after := s.Store.AppliedIndex()
		entries, _ := s.Store.List(core.ACMEOrdersPrefix, "", 0)
		for _, e := range entries {
			name := strings.TrimPrefix(e.Key, core.ACMEOrdersPrefix)
			or.mu.Lock()
			busy := or.active[name]
			or.active[name] = true
			or.mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					or.mu.Lock()
					delete(or.active, name)
					or.mu.Unlock()
				}()
				or.drive(ctx, name)
			}()
		}
		wctx, cancel := context.WithTimeout(ctx, orderScanInterval)
		_, _ = s.Store.Watch(wctx, []string{core.ACMEOrdersPrefix}, after)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// activeOp returns the pending operation an order serves, if it is still
// in progress for the same request.
func (s *Issuance) activeOp(name string, o *acmeOrder) (*core.PendingOp, raftstore.Entry, bool) {
	op, e, ok, err := s.LoadPending(name)
	if err != nil || !ok || op.RequestID != o.RequestID || op.Status != keyvault.StatusInProgress {
		return nil, e, false
	}
	return op, e, true
}

// drive takes one order to its end: its operation completed, failed, or
// ended by someone else (cancelled, deleted); then it removes the
// challenge records and the order.
func (or *orderRunner) drive(ctx context.Context, name string) {
	n := or.n
	for attempt := 1; ; attempt++ {
		o, _, ok, err := n.loadOrder(name)
		if err != nil || !ok {
			return
		}
		log := n.Log.With("certificate", name, "request", o.RequestID)
		if _, _, active := n.activeOp(name, o); !active {
			or.finish(ctx, name, o)
			return
		}
		err = or.attempt(ctx, name, o)
		switch {
		case err == nil:
			log.Info("ACME order completed")
			continue // finish on the next round
		case ctx.Err() != nil:
			return // leadership lost: the next leader resumes
		case errors.Is(err, errOrderStopped):
			continue // re-read: cancelled or changed
		case acme.IsPermanent(err) || attempt >= orderMaxAttempts:
			log.Warn("ACME order failed", "err", err)
			or.fail(ctx, name, o, err, attempt)
			continue
		}
		wait := backoff(attempt)
		log.Info("ACME order step failed; retrying", "attempt", attempt, "in", wait.Round(time.Second), "err", err)
		_ = or.updateOp(ctx, name, o, func(op *core.PendingOp) {
			op.StatusDetails = fmt.Sprintf("%s (attempt %d of %d failed: %v; retrying in %s)", o.Progress.Step, attempt, orderMaxAttempts, err, wait.Round(time.Second))
		})
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// backoff is capped exponential backoff with jitter.
func backoff(attempt int) time.Duration {
	d := orderBackoffMin << min(attempt-1, 16)
	d = min(d, orderBackoffMax)
	return d/2 + rand.N(d/2+1)
}

// attempt drives the order once from its saved progress.
func (or *orderRunner) attempt(ctx context.Context, name string, ord *acmeOrder) error {
	n := or.n
	ctx, cancel := context.WithTimeout(ctx, orderStepTimeout)
	defer cancel()
	op, _, active := n.activeOp(name, ord)
	if !active {
		return errOrderStopped
	}
	si, client, err := or.client(ctx, ord.Issuer)
	if err != nil {
		return err
	}
	sol, propagate, err := buildSolver(si.ACME.DNS)
	if err != nil {
		return err
	}
	policy, _, ok, err := n.LoadPolicy(name)
	if err != nil {
		return err
	}
	if !ok {
		return &acme.Error{Kind: acme.KindConfig, Msg: "the certificate's policy is gone"}
	}
	domains, err := acmeDomains(policy)
	if err != nil {
		return &acme.Error{Kind: acme.KindConfig, Msg: err.Error()}
	}
	o := &acme.Order{
		Client:    client,
		Solver:    sol,
		Propagate: propagate,
		Domains:   domains,
		CSR:       op.CSR,
		Save: func(ctx context.Context, p acme.Progress) error {
			return or.save(ctx, name, ord, p)
		},
	}
	chain, err := o.Run(ctx, ord.Progress)
	if err != nil {
		return err
	}
	window, hasWindow := acme.Window{}, false
	if leaf, err := x509.ParseCertificate(chain[0]); err == nil {
		if w, ok, err := client.RenewalInfo(ctx, leaf); err != nil {
			n.Log.Warn("could not fetch ACME renewal information", "certificate", name, "err", err)
		} else {
			window, hasWindow = w, ok
		}
	}
	return or.complete(ctx, name, ord, chain, window, hasWindow)
}

// client returns the issuer and an ACME client with a registered account,
// registering it on first use.
func (or *orderRunner) client(ctx context.Context, issuer string) (*StoredIssuer, *acme.Client, error) {
	n := or.n
	si, e, ok, err := n.loadIssuer(issuer)
	if err != nil {
		return nil, nil, err
	}
	if !ok || si.ACME == nil {
		return nil, nil, &acme.Error{Kind: acme.KindConfig, Msg: fmt.Sprintf("issuer %q no longer exists or is not an ACME issuer: point the policy at another issuer and create the certificate again", issuer)}
	}
	if si.Attributes.Enabled != nil && !*si.Attributes.Enabled {
		return nil, nil, &acme.Error{Kind: acme.KindConfig, Msg: fmt.Sprintf("issuer %q is disabled", issuer)}
	}
	or.mu.Lock()
	cc, hit := or.clients[issuer]
	or.mu.Unlock()
	if hit && cc.index == e.Index {
		return si, cc.client, nil
	}
	c, err := n.acmeClient(ctx, issuer, si, e)
	if err != nil {
		return nil, nil, err
	}
	// The issuer entry moved if the account was registered just now.
	if e2, ok := n.Store.Get(IssuerKey(issuer)); ok {
		or.mu.Lock()
		or.clients[issuer] = cachedClient{index: e2.Index, client: c}
		or.mu.Unlock()
	}
	return si, c, nil
}

// acmeClient dials the issuer's CA and makes sure the account exists,
// registering it (and recording its URL in the issuer) when it does not.
// When only the registration fails it returns the client with the error.
func (s *Issuance) acmeClient(ctx context.Context, issuer string, si *StoredIssuer, e raftstore.Entry) (*acme.Client, error) {
	k, err := x509.ParsePKCS8PrivateKey(si.ACME.AccountKey)
	if err != nil {
		return nil, fmt.Errorf("parse the ACME account key of issuer %s: %w", issuer, err)
	}
	acct := acme.Account{
		DirectoryURL: si.ACME.DirectoryURL,
		RootCAs:      []byte(si.ACME.DirectoryCA),
		Key:          k.(crypto.Signer),
		URL:          si.ACME.AccountURL,
		Contacts:     acmeContacts(si.OrgDetails),
	}
	if si.Credentials != nil {
		acct.EABKeyID, acct.EABHMAC = si.Credentials.AccountID, si.Credentials.Password
	}
	c, err := acme.Dial(ctx, acct)
	if err != nil {
		return nil, err
	}
	if acct.URL != "" {
		return c, nil
	}
	u, err := c.Register(ctx)
	if err != nil {
		return c, err // the directory answered; the caller may show it
	}
	s.Log.Info("registered the ACME account", "issuer", issuer, "account", u)
	// Record the account URL, unless the issuer changed meanwhile (then
	// the next use registers with the new settings).
	si.ACME.AccountURL = u
	ct, err := s.Barrier.Load().Encrypt(IssuerKey(issuer), core.MustJSON(si))
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.Apply(ctx, (&raftstore.Batch{}).PutIf(IssuerKey(issuer), ct, e.Index)); err != nil && !errors.Is(err, raftstore.ErrConflict) {
		return nil, fmt.Errorf("record the ACME account URL: %w", err)
	}
	return c, nil
}

// buildSolver makes the issuer's dns-01 solver and propagation check.
func buildSolver(d dnsSettings) (acme.Solver, func(ctx context.Context, fqdn, value string) error, error) {
	var s acme.Solver
	switch d.Solver {
	case solverNone, "":
		s = solver.None{}
	case solverExec:
		s = &solver.Exec{Program: d.Exec, Timeout: 2 * time.Minute}
	case solverRFC2136:
		r := &solver.RFC2136{Nameserver: d.Nameserver, Zone: d.Zone, Timeout: 30 * time.Second}
		if d.TSIGKey != "" {
			k, err := solver.ParseTSIGKey([]byte(d.TSIGKey))
			if err != nil {
				return nil, nil, &acme.Error{Kind: acme.KindConfig, Msg: fmt.Sprintf("the issuer's TSIG key: %v", err)}
			}
			r.Key = k
		}
		s = r
	default:
		return nil, nil, &acme.Error{Kind: acme.KindConfig, Msg: fmt.Sprintf("unknown DNS solver %q", d.Solver)}
	}
	if len(d.Resolvers) == 0 || d.Solver == solverNone {
		return s, nil, nil
	}
	resolvers := d.Resolvers
	timeout := time.Duration(d.propagationSeconds()) * time.Second
	return s, func(ctx context.Context, fqdn, value string) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return solver.WaitPropagation(ctx, resolvers, fqdn, value, time.Second)
	}, nil
}

// save records the order's progress and shows its step on the
// operation, in one command that holds only while the operation is still
// in progress for the same request; errOrderStopped otherwise.
func (or *orderRunner) save(ctx context.Context, name string, ord *acmeOrder, p acme.Progress) error {
	n := or.n
	for {
		op, opEntry, active := n.activeOp(name, ord)
		cur, oe, ok, err := n.loadOrder(name)
		if err != nil {
			return err
		}
		if !active || !ok || cur.RequestID != ord.RequestID {
			return errOrderStopped
		}
		cur.Progress = p
		op.StatusDetails, op.ACMEOrder = p.Step, p.OrderURL
		b := (&raftstore.Batch{}).PutIf(core.PendingKey(name), core.MustJSON(op), opEntry.Index).PutIf(ACMEOrderKey(name), core.MustJSON(cur), oe.Index)
		_, err = n.Store.Apply(ctx, b)
		if errors.Is(err, raftstore.ErrConflict) {
			continue
		}
		if err == nil {
			ord.Progress = p
		}
		return err
	}
}

// updateOp changes the operation while it is in progress for the order's
// request.
func (or *orderRunner) updateOp(ctx context.Context, name string, ord *acmeOrder, change func(*core.PendingOp)) error {
	for {
		op, e, active := or.n.activeOp(name, ord)
		if !active {
			return errOrderStopped
		}
		change(op)
		_, err := or.n.Store.Apply(ctx, (&raftstore.Batch{}).PutIf(core.PendingKey(name), core.MustJSON(op), e.Index))
		if errors.Is(err, raftstore.ErrConflict) {
			continue
		}
		return err
	}
}

// complete turns the CA's chain into the certificate's new version, like
// a merge: the leaf must carry the pending key and the policy's names.
func (or *orderRunner) complete(ctx context.Context, name string, ord *acmeOrder, ders [][]byte, w acme.Window, hasWindow bool) error {
	n := or.n
	chain, err := certs.ParseChainDER(ders)
	if err != nil {
		return &acme.Error{Kind: acme.KindCA, Msg: fmt.Sprintf("the CA's chain does not parse: %v", err)}
	}
	for {
		op, opEntry, active := n.activeOp(name, ord)
		if !active {
			return errOrderStopped
		}
		ke, ok := n.Store.Get(core.PendKeyKey(name))
		if !ok {
			return errOrderStopped
		}
		key, err := n.OpenPrivateKey(ke)
		if err != nil {
			return err
		}
		leaf := chain[0]
		if !certs.SamePublicKey(leaf.PublicKey, key.Public()) {
			return &acme.Error{Kind: acme.KindCA, Msg: "the CA issued a certificate for another public key than the CSR's"}
		}
		policy, _, ok, err := n.LoadPolicy(name)
		if err != nil || !ok {
			return errOrderStopped
		}
		domains, _ := acmeDomains(policy)
		have := map[string]bool{}
		for _, d := range leaf.DNSNames {
			have[strings.ToLower(d)] = true
		}
		for _, d := range domains {
			if !have[d] {
				return &acme.Error{Kind: acme.KindCA, Msg: fmt.Sprintf("the CA's certificate lacks the DNS name %s that was ordered", d)}
			}
		}
		out := make([][]byte, 0, len(chain))
		for _, c := range certs.SortChain(leaf, chain[1:]) {
			out = append(out, c.Raw)
		}
		version, err := opVersion(op)
		if err != nil {
			return err
		}
		now := time.Now()
		b := &raftstore.Batch{}
		if op.Renewal {
			prev, _, _, _ := n.LoadMeta(core.KindCertificates, name)
			if err := n.mailRenewed(b, name, prev, version, out[0], op.Issuer); err != nil {
				return err
			}
		}
		err = n.addCertVersion(b, name, version, policy, key, out, op.Attributes, op.Tags, now, opMadeBy(op), func(v *core.VersionMeta) {
			v.ACMEIssuer = op.Issuer
			if hasWindow {
				v.RenewalInfo = &core.RenewalInfo{Start: w.Start.Unix(), End: w.End.Unix(), ExplanationURL: w.Explanation, Fetched: now.Unix()}
			}
		})
		if errors.Is(err, core.ErrRenewalHalted) {
			// Retrying cannot help: fail the operation now.
			return &acme.Error{Kind: acme.KindConfig, Msg: "the renewal brake halted this certificate's automatic renewal: update its policy or create a version", Err: err}
		}
		if err != nil {
			return err
		}
		op.Status, op.StatusDetails, op.Error = keyvault.StatusCompleted, "", nil
		b.PutIf(core.PendingKey(name), core.MustJSON(op), opEntry.Index).Delete(core.PendKeyKey(name))
		_, err = n.Store.Apply(ctx, b)
		if errors.Is(err, raftstore.ErrConflict) {
			continue
		}
		return err
	}
}

// fail ends the operation with the error, as Key Vault shows a failed
// operation: status failed, the error's code and message.
func (or *orderRunner) fail(ctx context.Context, name string, ord *acmeOrder, cause error, attempts int) {
	code, msg := "CAError", cause.Error()
	var ae *acme.Error
	if errors.As(cause, &ae) {
		code = ae.Code()
		if !ae.Permanent() {
			msg = fmt.Sprintf("%s (gave up after %d attempts)", msg, attempts)
		}
	}
	for {
		op, e, active := or.n.activeOp(name, ord)
		if !active {
			return
		}
		op.Status = keyvault.StatusFailed
		op.StatusDetails = "The order failed: " + msg
		op.Error = &keyvault.ErrorInfo{Code: code, Message: msg}
		// The key of a failed request is of no further use.
		b := (&raftstore.Batch{}).PutIf(core.PendingKey(name), core.MustJSON(op), e.Index).Delete(core.PendKeyKey(name))
		if op.Renewal {
			cm, _, _, _ := or.n.LoadMeta(core.KindCertificates, name)
			if err := or.n.mailRenewalFailed(b, name, cm, op.Issuer, errors.New(msg), 1, time.Now().Add(renewPendingWait)); err != nil {
				or.n.Log.Warn("could not write a renewal notice", "certificate", name, "err", err)
			}
			if err := or.n.EmitEvent(b, core.EventCertificateRenewalFailed, core.KindCertificates, name, cm.Current, cm.Summary.NotBefore, cm.Summary.Expires, msg); err != nil {
				or.n.Log.Warn("could not write a renewal event", "certificate", name, "err", err)
			}
		}
		_, err := or.n.Store.Apply(ctx, b)
		if !errors.Is(err, raftstore.ErrConflict) {
			if err != nil {
				or.n.Log.Warn("could not record the failed ACME order", "certificate", name, "err", err)
			}
			return
		}
	}
}

// finish removes the challenge records an ended order still lists, then
// the order. Records it cannot remove stay listed for the next try; when
// the issuer is gone they are dropped with a warning naming them.
func (or *orderRunner) finish(ctx context.Context, name string, ord *acmeOrder) {
	n := or.n
	left := ord.Progress.Records
	if len(left) > 0 {
		si, _, ok, err := n.loadIssuer(ord.Issuer)
		switch {
		case err != nil:
			return
		case !ok || si.ACME == nil:
			n.Log.Warn("the issuer of an ended ACME order is gone; remove its challenge records by hand", "certificate", name, "records", left)
			left = nil
		default:
			sol, _, err := buildSolver(si.ACME.DNS)
			if err == nil {
				left, err = acme.CleanUp(ctx, sol, left)
			}
			if err != nil {
				n.Log.Warn("could not remove ACME challenge records; trying again later", "certificate", name, "err", err)
			}
			if len(left) == len(ord.Progress.Records) {
				// Nothing removed: writing the same list back would wake the
				// order loop at once. The next scan (orderScanInterval)
				// tries again.
				return
			}
		}
	}
	for {
		cur, e, ok, err := n.loadOrder(name)
		if err != nil || !ok || cur.RequestID != ord.RequestID {
			return
		}
		b := &raftstore.Batch{}
		if len(left) == 0 {
			b.DeleteIf(ACMEOrderKey(name), e.Index)
		} else {
			cur.Progress.Records = left
			b.PutIf(ACMEOrderKey(name), core.MustJSON(cur), e.Index)
		}
		_, err = n.Store.Apply(ctx, b)
		if !errors.Is(err, raftstore.ErrConflict) {
			return
		}
	}
}

// issuerCheck is the answer of POST /certificates/issuers/{name}/check.
type issuerCheck struct {
	Issuer         string            `json:"issuer"`
	Provider       string            `json:"provider"`
	OK             bool              `json:"ok"`
	DirectoryURL   string            `json:"directory_url"`
	EABRequired    bool              `json:"eab_required"`
	TermsOfService string            `json:"terms_of_service,omitempty"`
	RenewalInfo    bool              `json:"renewal_info"`
	Profiles       map[string]string `json:"profiles,omitempty"`
	AccountURL     string            `json:"account_url,omitempty"`
	AccountStatus  string            `json:"account_status,omitempty"`
	DNSSolver      string            `json:"dns_solver"`
	// DirectoryReached says the directory answered; the directory facts
	// above mean nothing when it did not.
	DirectoryReached bool                `json:"directory_reached"`
	Error            *keyvault.ErrorInfo `json:"error,omitempty"`
}

// CheckIssuer contacts an ACME issuer's CA on demand: it fetches the
// directory, registers the account if it is not yet, or fetches its
// status, and reports what is wrong in words an operator can act on. What
// the CA says is in the report, not in the error, which only refuses an
// issuer that is missing or not ACME.
func (s *Issuance) CheckIssuer(ctx context.Context, p core.Caller, name string) (issuerCheck, error) {
	si, e, ok, err := s.loadIssuer(name)
	if err != nil || !ok {
		return issuerCheck{}, orErr(err, issuerNotFound(name))
	}
	if si.ACME == nil {
		return issuerCheck{}, core.BadParameter("name", "issuer %s is %s; check applies to ACME issuers (acme, DigiCert, GlobalSign)", name, si.Provider)
	}
	rep := issuerCheck{Issuer: name, Provider: si.Provider, DirectoryURL: si.ACME.DirectoryURL, DNSSolver: si.ACME.DNS.Solver}
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeoutCheck)
	defer cancel()
	c, err := s.acmeClient(ctx, name, si, e)
	if c != nil {
		rep.DirectoryReached = true
		d := c.Directory()
		rep.EABRequired, rep.TermsOfService, rep.RenewalInfo, rep.Profiles = d.Meta.ExternalAccountRequired, d.Meta.TermsOfService, d.RenewalInfo != "", d.Meta.Profiles
	}
	if err == nil {
		if cur, _, ok, _ := s.loadIssuer(name); ok && cur.ACME != nil {
			rep.AccountURL = cur.ACME.AccountURL
		}
		rep.AccountStatus, err = c.AccountStatus(ctx)
		if err == nil && rep.AccountStatus != "valid" {
			err = &acme.Error{Kind: acme.KindCA, Msg: fmt.Sprintf("the CA reports the account as %s: ask the CA, or delete and set the issuer again with new credentials", rep.AccountStatus)}
		}
	}
	if err != nil {
		code := "CAError"
		var ae *acme.Error
		if errors.As(err, &ae) {
			code = ae.Code()
		}
		rep.Error = &keyvault.ErrorInfo{Code: code, Message: err.Error()}
	} else {
		rep.OK = true
	}
	return rep, nil
}

// requestTimeoutCheck bounds each half of an issuer check.
const requestTimeoutCheck = 30 * time.Second
