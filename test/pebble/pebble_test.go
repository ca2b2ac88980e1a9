package pebble_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/challenge/dns01"

	"github.com/certvault/certvault/test/pebble"
)

// TestIssueWithEAB drives a real Pebble that requires EAB with a small raw
// ACME client: account with EAB, dns-01 through SetTXT, finalize, chain
// verified to Pebble's roots; ARI; the "shortlived" profile through the
// exec solver script; an unknown profile.
func TestIssueWithEAB(t *testing.T) {
	kid, hmac := "kid-1", pebble.NewEABKey()
	srv := pebble.Start(t, pebble.Options{EAB: map[string]string{kid: hmac}})
	t.Logf("Build took %v; directory %s, DNS %s", pebble.BuildDuration(), srv.DirectoryURL, srv.DNSAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	// GetChallengeInfo follows CNAMEs through dns01's default client: make
	// it ask pebble-challtestsrv instead of the system's resolvers.
	old := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{srv.DNSAddr}, Timeout: 2 * time.Second}))
	t.Cleanup(func() { dns01.SetDefaultClient(old) })

	core := newCore(t, srv)
	dir := core.GetDirectory()
	if !dir.Meta.ExternalAccountRequired {
		t.Error("directory: externalAccountRequired is false")
	}
	if dir.RenewalInfo == "" || dir.RenewalInfo != srv.RenewalInfoURL {
		t.Errorf("directory: renewalInfo %q, Server.RenewalInfoURL %q", dir.RenewalInfo, srv.RenewalInfoURL)
	}
	for name := range srv.Profiles {
		if _, ok := dir.Meta.Profiles[name]; !ok {
			t.Errorf("directory: profile %q missing from %v", name, dir.Meta.Profiles)
		}
	}
	t.Logf("directory: renewalInfo=%s profiles=%v", dir.RenewalInfo, dir.Meta.Profiles)

	acct, err := core.Accounts.NewEAB(ctx, acme.Account{TermsOfServiceAgreed: true}, kid, hmac)
	if err != nil {
		t.Fatalf("newAccount with EAB: %v", err)
	}
	if acct.Status != acme.StatusValid || acct.Location == "" {
		t.Fatalf("account: status %q location %q", acct.Status, acct.Location)
	}

	// The default profile, dns-01 published with SetTXT.
	const name = "www.example.test"
	chainPEM, leaf := issue(ctx, t, core, name, pebble.ProfileDefault,
		func(fqdn, value string) { srv.SetTXT(t, fqdn, value) },
		func(fqdn, _ string) { srv.ClearTXT(t, fqdn) })
	verifyChain(t, srv, chainPEM, name)
	if got := leaf.NotAfter.Sub(leaf.NotBefore) + time.Second; got != pebble.DefaultValidity {
		t.Errorf("default profile: validity %v, want %v", got, pebble.DefaultValidity)
	}
	if st := srv.CertStatus(t, leaf.SerialNumber); st != "Valid" {
		t.Errorf("CertStatus = %q, want Valid", st)
	}

	// ARI: Pebble's window for a fresh certificate, then an override.
	certID, err := api.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	info, err := core.Certificates.GetRenewalInfo(ctx, certID)
	if err != nil {
		t.Fatalf("renewalInfo: %v", err)
	}
	wantStart, wantEnd := pebble.SuggestedWindow(leaf.NotBefore, leaf.NotAfter)
	w := info.SuggestedWindow
	if !w.Start.Equal(wantStart) || !w.End.Equal(wantEnd) {
		t.Errorf("renewalInfo window %v..%v, SuggestedWindow says %v..%v", w.Start, w.End, wantStart, wantEnd)
	}
	t.Logf("ARI for a fresh %v certificate: window starts %v and ends %v after notBefore (Retry-After %v)",
		leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Second), w.Start.Sub(leaf.NotBefore).Round(time.Second),
		w.End.Sub(leaf.NotBefore).Round(time.Second), info.RetryAfter)
	start, end := time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
	srv.SetRenewalWindow(t, chainPEM, start, end)
	info, err = core.Certificates.GetRenewalInfo(ctx, certID)
	if err != nil {
		t.Fatalf("renewalInfo after SetRenewalWindow: %v", err)
	}
	if !info.SuggestedWindow.Start.Equal(start) || !info.SuggestedWindow.End.Equal(end) {
		t.Errorf("overridden window %v..%v, want %v..%v", info.SuggestedWindow.Start, info.SuggestedWindow.End, start, end)
	}

	// The shortlived profile, dns-01 published by exec-solver.sh.
	solver := pebble.ExecSolver(t)
	run := func(action string) func(fqdn, value string) {
		return func(fqdn, value string) {
			cmd := exec.CommandContext(ctx, solver, action, fqdn, value)
			cmd.Env = srv.ExecSolverEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("exec-solver.sh %s %s: %v\n%s", action, fqdn, err, out)
			}
		}
	}
	const short = "short.example.test"
	shortPEM, shortLeaf := issue(ctx, t, core, short, pebble.ProfileShortLived, run("present"), run("cleanup"))
	verifyChain(t, srv, shortPEM, short)
	if got := shortLeaf.NotAfter.Sub(shortLeaf.NotBefore) + time.Second; got != pebble.ShortLivedValidity {
		t.Errorf("shortlived profile: validity %v, want %v", got, pebble.ShortLivedValidity)
	}
	s0, e0 := pebble.SuggestedWindow(shortLeaf.NotBefore, shortLeaf.NotAfter)
	t.Logf("shortlived: validity %v; ARI window %v..%v after notBefore",
		shortLeaf.NotAfter.Sub(shortLeaf.NotBefore).Round(time.Second),
		s0.Sub(shortLeaf.NotBefore).Round(time.Second), e0.Sub(shortLeaf.NotBefore).Round(time.Second))

	// An unknown profile is refused at newOrder.
	_, err = core.Orders.New(ctx, []string{"other.example.test"}, &api.OrderOptions{Profile: "no-such-profile"})
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != acme.InvalidProfileErrorType {
		t.Errorf("unknown profile: got %v, want a %s problem", err, acme.InvalidProfileErrorType)
	}
	t.Logf("unknown profile: %v", err)
}

// TestEABRefused shows what Pebble answers to a wrong HMAC, an unknown key
// ID and a missing binding.
func TestEABRefused(t *testing.T) {
	t.Parallel()
	kid := "kid-1"
	srv := pebble.Start(t, pebble.Options{EAB: map[string]string{kid: pebble.NewEABKey()}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name     string
		register func(*api.Core) (acme.ExtendedAccount, error)
		wantType string
	}{
		{"wrong HMAC", func(c *api.Core) (acme.ExtendedAccount, error) {
			return c.Accounts.NewEAB(ctx, acme.Account{TermsOfServiceAgreed: true}, kid, pebble.NewEABKey())
		}, "urn:ietf:params:acme:error:unauthorized"},
		{"unknown kid", func(c *api.Core) (acme.ExtendedAccount, error) {
			return c.Accounts.NewEAB(ctx, acme.Account{TermsOfServiceAgreed: true}, "kid-unknown", pebble.NewEABKey())
		}, "urn:ietf:params:acme:error:unauthorized"},
		{"no EAB", func(c *api.Core) (acme.ExtendedAccount, error) {
			return c.Accounts.New(ctx, acme.Account{TermsOfServiceAgreed: true})
		}, acme.ExternalAccountRequiredErrorType},
	} {
		_, err := tc.register(newCore(t, srv))
		var prob *acme.ProblemDetails
		if !errors.As(err, &prob) || prob.Type != tc.wantType {
			t.Errorf("%s: got %v, want a %s problem", tc.name, err, tc.wantType)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

// TestExecSolverScript runs exec-solver.sh against pebble-challtestsrv and
// reads the records back over DNS.
func TestExecSolverScript(t *testing.T) {
	t.Parallel()
	srv := pebble.Start(t, pebble.Options{})
	solver := pebble.ExecSolver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, solver, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	lookup := func(fqdn string) []string {
		txts, err := srv.Resolver().LookupTXT(ctx, fqdn)
		if err != nil && !isNotFound(err) {
			t.Fatalf("lookup %s: %v", fqdn, err)
		}
		slices.Sort(txts)
		return txts
	}

	const fqdn = "_acme-challenge.exec.example.test."
	for _, v := range []string{"value-one", "value-two"} {
		if out, err := run(srv.ExecSolverEnv(), "present", strings.TrimSuffix(fqdn, "."), v); err != nil {
			t.Fatalf("present %s: %v\n%s", v, err, out)
		}
	}
	if got := lookup(fqdn); !slices.Equal(got, []string{"value-one", "value-two"}) {
		t.Fatalf("TXT after present = %q", got)
	}
	if out, err := run(srv.ExecSolverEnv(), "cleanup", fqdn, "value-one"); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if got := lookup(fqdn); len(got) != 0 {
		t.Fatalf("TXT after cleanup = %q", got)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"no URL", nil, []string{"present", fqdn, "v"}},
		{"bad action", srv.ExecSolverEnv(), []string{"publish", fqdn, "v"}},
		{"missing value", srv.ExecSolverEnv(), []string{"present", fqdn}},
		{"quote in value", srv.ExecSolverEnv(), []string{"present", fqdn, `v"`}},
	} {
		out, err := run(tc.env, tc.args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: err %v, want exit status 2; output %q", tc.name, err, out)
		}
	}
	srv.Stop()
	if out, err := run(srv.ExecSolverEnv(), "present", fqdn, "v"); err == nil {
		t.Errorf("present with pebble-challtestsrv stopped succeeded: %q", out)
	}
}

// TestAlternateRoots checks Roots and Intermediates with an alternate
// chain.
func TestAlternateRoots(t *testing.T) {
	t.Parallel()
	srv := pebble.Start(t, pebble.Options{AlternateRoots: 1, EABOptional: true, EAB: map[string]string{"k": pebble.NewEABKey() + "="}})
	roots, inters := srv.Roots(t), srv.Intermediates(t)
	if len(roots) != 2 || len(inters) != 2 {
		t.Fatalf("%d roots and %d intermediates, want 2 and 2", len(roots), len(inters))
	}
	for i := range roots {
		if err := inters[i].CheckSignatureFrom(roots[i]); err != nil {
			t.Errorf("intermediate %d is not signed by root %d: %v", i, i, err)
		}
	}
	core := newCore(t, srv)
	if core.GetDirectory().Meta.ExternalAccountRequired {
		t.Error("EABOptional: directory requires EAB")
	}
}

func newCore(t *testing.T, srv *pebble.Server) *api.Core {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	core, err := api.New(srv.HTTPClient(), "certvault-pebble-test", srv.DirectoryURL, "", key)
	if err != nil {
		t.Fatalf("ACME client: %v", err)
	}
	return core
}

// issue orders a certificate for name with profile, solving dns-01 with
// present and cleanup, and returns the PEM chain and the leaf.
func issue(ctx context.Context, t *testing.T, core *api.Core, name, profile string,
	present, cleanup func(fqdn, value string)) ([]byte, *x509.Certificate) {
	t.Helper()
	order, err := core.Orders.New(ctx, []string{name}, &api.OrderOptions{Profile: profile})
	if err != nil {
		t.Fatalf("newOrder %s: %v", name, err)
	}
	if order.Profile != profile {
		t.Errorf("order profile %q, want %q", order.Profile, profile)
	}
	for _, authzURL := range order.Authorizations {
		authz, err := core.Authorizations.Get(ctx, authzURL)
		if err != nil {
			t.Fatal(err)
		}
		if authz.Status == acme.StatusValid {
			continue
		}
		i := slices.IndexFunc(authz.Challenges, func(c acme.Challenge) bool { return c.Type == "dns-01" })
		if i < 0 {
			t.Fatalf("no dns-01 challenge in %+v", authz.Challenges)
		}
		chal := authz.Challenges[i]
		keyAuth, err := core.GetKeyAuthorization(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		ci := dns01.GetChallengeInfo(ctx, authz.Identifier.Value, keyAuth)
		present(ci.EffectiveFQDN, ci.Value)
		defer cleanup(ci.EffectiveFQDN, ci.Value)
		if _, err := core.Challenges.New(ctx, chal.URL); err != nil {
			t.Fatalf("respond to challenge: %v", err)
		}
		waitFor(ctx, t, "authorization "+authzURL, func() (bool, error) {
			a, err := core.Authorizations.Get(ctx, authzURL)
			if err != nil {
				return false, err
			}
			switch a.Status {
			case acme.StatusValid:
				return true, nil
			case acme.StatusPending:
				return false, nil
			}
			return false, fmt.Errorf("authorization %s: %+v", a.Status, a.Challenges)
		})
	}
	waitOrder(ctx, t, core, order.Location, acme.StatusReady)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Orders.UpdateForCSR(ctx, order.Finalize, csr); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	done := waitOrder(ctx, t, core, order.Location, acme.StatusValid)
	raw, err := core.Certificates.Get(ctx, done.Certificate, true)
	if err != nil {
		t.Fatalf("download certificate: %v", err)
	}
	block, _ := pem.Decode(raw.Cert)
	if block == nil {
		t.Fatalf("no PEM in %q", raw.Cert)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return raw.Cert, leaf
}

func waitOrder(ctx context.Context, t *testing.T, core *api.Core, url, want string) acme.Order {
	t.Helper()
	var o acme.ExtendedOrder
	waitFor(ctx, t, "order "+want, func() (bool, error) {
		var err error
		if o, err = core.Orders.Get(ctx, url); err != nil {
			return false, err
		}
		switch o.Status {
		case want:
			return true, nil
		case acme.StatusInvalid:
			return false, fmt.Errorf("order invalid: %v", o.Err())
		}
		return false, nil
	})
	return o.Order
}

// waitFor polls f every 50 ms until it is done, fails, or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, f func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := f()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// verifyChain checks that chainPEM (leaf first) verifies to Pebble's roots
// for name, through the intermediate the management API serves.
func verifyChain(t *testing.T, srv *pebble.Server, chainPEM []byte, name string) {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(certs))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: srv.RootPool(t), Intermediates: inter})
	if err != nil {
		t.Fatalf("verify the chain to Pebble's roots: %v", err)
	}
	if !certs[1].Equal(srv.Intermediates(t)[0]) {
		t.Error("the chain's intermediate is not the one the management API serves")
	}
	t.Logf("%s: chain of %d verified to %q", name, len(chains[0]), chains[0][len(chains[0])-1].Subject.CommonName)
}

// isNotFound reports an empty answer. pebble-challtestsrv sets neither AA
// nor RA, so Go's resolver calls a NOERROR answer without records a "lame
// referral".
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsNotFound || de.Err == "lame referral")
}
