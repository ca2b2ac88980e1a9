package enroll

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

const (
	// retryFirst and retryMax bound the wait between failed renewals.
	retryFirst = 5 * time.Second
	retryMax   = 10 * time.Minute
	// maxNap is the longest single sleep of RenewLoop: a monotonic timer
	// stops while the machine is suspended, so long waits are cut up and
	// checked against the wall clock.
	maxNap = time.Hour
)

// Renew gets a new certificate for a new key from the vault, over mutual
// TLS with the current identity, stores it in stateDir and then makes it
// the current certificate. vaultURL defaults to id.VaultURL. The answer is
// checked as Join checks it, and must carry the same vault CA and agent
// ID.
//
// On disk, the new key and certificate are first written whole to
// key.pem.next and cert.pem.next, then renamed over key.pem and cert.pem
// in that order (see Load), so a crash leaves the old or the new
// identity. The vault accepts the previous certificate until the next
// renewal, so either works. Calls are serialised.
func (id *Identity) Renew(ctx context.Context, vaultURL, stateDir string) error {
	id.renewMu.Lock()
	defer id.renewMu.Unlock()
	if vaultURL == "" {
		vaultURL = id.VaultURL
	}
	base, _, err := vaultBase(vaultURL)
	if err != nil {
		return err
	}
	key, csrPEM, err := newKeyAndCSR(id.AgentID)
	if err != nil {
		return err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = id.TLSConfig()
	defer t.CloseIdleConnections()
	client := &http.Client{Transport: t, Timeout: requestTimeout, CheckRedirect: noRedirect}
	var resp issueResponse
	if err := postJSON(ctx, client, base+"/v1/agents/renew", renewRequest{CSR: string(csrPEM)}, &resp); err != nil {
		return fmt.Errorf("renew with %s: %w", base, err)
	}
	iss, err := checkIssued(&resp, key, func(ca *x509.Certificate) error {
		if !bytes.Equal(ca.Raw, id.CA.Raw) {
			return errors.New("the vault CA in the answer is not the one the agent joined with")
		}
		return nil
	})
	if err == nil && iss.agentID != id.AgentID {
		err = fmt.Errorf("the answer is for agent %q, not %q", iss.agentID, id.AgentID)
	}
	if err != nil {
		return fmt.Errorf("check renewal answer from %s: %w", base, err)
	}
	if err := writeRenew(stateDir, base, key, iss); err != nil {
		return err
	}
	c := iss.cert
	id.cur.Store(&c)
	return nil
}

// RenewAt is when to renew a certificate valid from notBefore to
// notAfter: two thirds into its lifetime, moved by up to 5% of the
// lifetime either way as rnd goes from 0 to 1, so that agents enrolled
// together do not all renew at once.
func RenewAt(notBefore, notAfter time.Time, rnd float64) time.Time {
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return notBefore
	}
	rnd = min(max(rnd, 0), 1)
	return notBefore.Add(time.Duration(float64(life) * (2.0/3 + (2*rnd-1)*0.05)))
}

// retryDelay is the wait after the n-th failure in a row (n ≥ 1): 5s
// doubling up to 10m, of which the upper half is random (rnd in [0,1)).
func retryDelay(n int, rnd float64) time.Duration {
	d := retryFirst
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	d = min(d, retryMax)
	return d/2 + time.Duration(float64(d/2)*rnd)
}

// RenewLoop renews the identity at RenewAt of the current certificate,
// until ctx is done. A failed renewal is retried after 5s, doubling to at
// most 10m, with jitter; so is a renewal whose new certificate is already
// due, which means the clocks disagree. logf (which may be nil) receives
// one line per renewal or failure.
func (id *Identity) RenewLoop(ctx context.Context, vaultURL, stateDir string, logf func(string, ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	failures := 0
	for {
		var at time.Time
		if failures == 0 {
			leaf := id.Certificate().Leaf
			at = RenewAt(leaf.NotBefore, leaf.NotAfter, rand.Float64())
		} else {
			at = time.Now().Add(retryDelay(failures, rand.Float64()))
		}
		if !sleepUntil(ctx, at) {
			return
		}
		err := id.Renew(ctx, vaultURL, stateDir)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			hint := ""
			if exp := id.Expiry(); time.Now().After(exp) {
				hint = fmt.Sprintf(" (the identity expired at %s; if this goes on, run 'certvault-agent join' again)", exp.UTC().Format(time.RFC3339))
			}
			logf("renew agent identity: %v%s", err, hint)
			continue
		}
		leaf := id.Certificate().Leaf
		if !RenewAt(leaf.NotBefore, leaf.NotAfter, 0).After(time.Now()) {
			failures++
			logf("renewed agent identity %s, but the new certificate (valid %s to %s) is already due for renewal: is the clock right?",
				id.AgentID, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
			continue
		}
		failures = 0
		logf("renewed agent identity %s: valid until %s", id.AgentID, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// sleepUntil waits until the wall clock reaches at, or ctx is done; it
// reports whether ctx is still live.
func sleepUntil(ctx context.Context, at time.Time) bool {
	at = at.Round(0) // compare with the wall clock
	for {
		d := time.Until(at)
		if d <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(min(d, maxNap))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
