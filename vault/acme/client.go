// Package acme enrolls certificates with an ACME CA (RFC 8555) for the
// vault's acme issuers: the account, registered with External Account
// Binding when the CA asks for it; orders whose progress is handed to the
// caller after every step, so that another node can resume an order
// instead of placing a second one; dns-01 challenges through a Solver;
// finalization with the vault's CSR; ACME Renewal Information (RFC 9773)
// and ACME profiles.
//
// It speaks ACME through lego's low-level acme/api package and imports
// none of lego's DNS providers.
package acme

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
)

// userAgent is sent with every request to the CA.
const userAgent = "certvault"

// requestTimeout bounds one HTTP exchange with the CA.
const requestTimeout = 30 * time.Second

// Account is how to reach a CA with one account.
type Account struct {
	// DirectoryURL is the CA's ACME directory.
	DirectoryURL string
	// RootCAs is a PEM bundle trusted for the directory's TLS certificate
	// (a private CA); empty means the system roots.
	RootCAs []byte
	// Key is the account key, kept by the vault.
	Key crypto.Signer
	// URL is the account URL once registered ("" before).
	URL string
	// EABKeyID and EABHMAC are the External Account Binding key id and
	// base64url HMAC key the CA issued (Key Vault's account_id and pwd).
	EABKeyID, EABHMAC string
	// Contacts are email addresses registered with the account.
	Contacts []string
}

// Client is a connection to one CA directory with one account key.
type Client struct {
	core *api.Core
	acct Account
}

// Dial fetches the directory and returns a client for the account. The
// error says whether the directory could not be reached or is not ACME.
func Dial(ctx context.Context, a Account) (*Client, error) {
	u, err := url.Parse(a.DirectoryURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &Error{Kind: KindConfig, Msg: fmt.Sprintf("directory URL %q is not an http(s) URL", a.DirectoryURL)}
	}
	hc, err := httpClient(a.RootCAs)
	if err != nil {
		return nil, err
	}
	type result struct {
		core *api.Core
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// api.New takes no context; the client's timeout bounds it.
		core, err := api.New(hc, userAgent, a.DirectoryURL, a.URL, a.Key)
		ch <- result{core, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, directoryError(a.DirectoryURL, r.err)
	}
	return &Client{core: r.core, acct: a}, nil
}

// directoryError tells an unreachable directory from one that is not ACME.
func directoryError(dirURL string, err error) error {
	var netErr net.Error
	var urlErr *url.Error
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		return &Error{Kind: KindUnreachable, Msg: fmt.Sprintf("the ACME directory %s presents a TLS certificate this vault does not trust (give its CA with --directory-ca-file): %v", dirURL, certErr.Err), Err: err}
	case errors.As(err, &netErr), errors.As(err, &urlErr):
		return &Error{Kind: KindUnreachable, Msg: fmt.Sprintf("cannot reach the ACME directory %s: %v", dirURL, rootCause(err)), Err: err}
	case strings.Contains(err.Error(), "directory missing"):
		return &Error{Kind: KindConfig, Msg: fmt.Sprintf("%s is not an ACME directory (%v): check the directory URL", dirURL, err), Err: err}
	default:
		return &Error{Kind: KindConfig, Msg: fmt.Sprintf("%s did not answer as an ACME directory: %v", dirURL, rootCause(err)), Err: err}
	}
}

// rootCause returns the innermost error's text, without the URL wrappers
// that repeat what the message already says.
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func httpClient(rootsPEM []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(rootsPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(rootsPEM) {
			return nil, &Error{Kind: KindConfig, Msg: "the directory CA bundle holds no PEM certificate"}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: requestTimeout}, nil
}

// Directory returns what the CA's directory advertises.
func (c *Client) Directory() legoacme.Directory { return c.core.GetDirectory() }

// Register creates the account (or finds the one that exists for the key:
// ACME answers a known key with its account) and returns its URL. When
// the CA requires External Account Binding and none is configured, it
// says so without contacting the CA.
func (c *Client) Register(ctx context.Context) (string, error) {
	dir := c.core.GetDirectory()
	if dir.Meta.ExternalAccountRequired && (c.acct.EABKeyID == "" || c.acct.EABHMAC == "") {
		return "", &Error{Kind: KindConfig, Msg: "the CA requires External Account Binding: set the account id and the HMAC key it issued (certvault issuer set NAME --account-id ID --api-key-file FILE)"}
	}
	req := legoacme.Account{TermsOfServiceAgreed: true}
	for _, e := range c.acct.Contacts {
		req.Contact = append(req.Contact, "mailto:"+e)
	}
	var acct legoacme.ExtendedAccount
	var err error
	if c.acct.EABKeyID != "" {
		acct, err = c.core.Accounts.NewEAB(ctx, req, c.acct.EABKeyID, c.acct.EABHMAC)
	} else {
		acct, err = c.core.Accounts.New(ctx, req)
	}
	if err != nil {
		if strings.Contains(err.Error(), "could not decode hmac key") {
			return "", &Error{Kind: KindConfig, Msg: "the EAB HMAC key (the issuer's api key) is not base64url: paste it exactly as the CA shows it"}
		}
		if strings.Contains(err.Error(), "error signing eab content") {
			// The key's own error text could echo it: say what to fix only.
			return "", &Error{Kind: KindConfig, Msg: "the EAB HMAC key (the issuer's api key) cannot sign: it must be the full key the CA issued (at least 32 bytes, base64url)"}
		}
		return "", wrap(err, "register the ACME account")
	}
	if acct.Location == "" {
		return "", &Error{Kind: KindCA, Msg: "the CA registered the account but returned no account URL"}
	}
	c.acct.URL = acct.Location
	return acct.Location, nil
}

// AccountStatus fetches the registered account's status ("valid",
// "deactivated", "revoked").
func (c *Client) AccountStatus(ctx context.Context) (string, error) {
	if c.acct.URL == "" {
		return "", errors.New("acme: account not registered")
	}
	a, err := c.core.Accounts.Get(ctx, c.acct.URL)
	if err != nil {
		return "", wrap(err, "fetch the ACME account")
	}
	return a.Status, nil
}

// RenewalInfo fetches the CA's suggested renewal window for leaf (RFC
// 9773). ok is false when the CA offers no renewal information.
func (c *Client) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (w Window, ok bool, err error) {
	if c.core.GetDirectory().RenewalInfo == "" {
		return Window{}, false, nil
	}
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		return Window{}, false, fmt.Errorf("ARI certificate id: %w", err)
	}
	info, err := c.core.Certificates.GetRenewalInfo(ctx, id)
	if errors.Is(err, api.ErrNoARI) {
		return Window{}, false, nil
	}
	if err != nil {
		return Window{}, false, wrap(err, "fetch renewal information")
	}
	return Window{
		Start:       info.SuggestedWindow.Start.UTC(),
		End:         info.SuggestedWindow.End.UTC(),
		Explanation: info.ExplanationURL,
		RetryAfter:  info.RetryAfter,
	}, true, nil
}

// Window is a CA's suggested renewal window (RFC 9773).
type Window struct {
	Start, End  time.Time
	Explanation string
	// RetryAfter is when to ask again, as the CA suggests (0 if it did
	// not say).
	RetryAfter time.Duration
}

// ARICertID returns the RFC 9773 identifier of a certificate, which a
// renewal order sends as "replaces".
func ARICertID(leaf *x509.Certificate) (string, error) {
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		return "", fmt.Errorf("ARI certificate id: %w", err)
	}
	return id, nil
}
