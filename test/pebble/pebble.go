// Package pebble builds and starts a real Pebble ACME test server and
// pebble-challtestsrv (github.com/letsencrypt/pebble/v2 at Version) on
// 127.0.0.1 for integration tests. It fakes nothing; it is test support,
// not part of any binary.
//
// Build compiles the two binaries once per user with the go command (see
// Build); Start runs pebble-challtestsrv as the DNS server Pebble validates
// dns-01 challenges against, and Pebble itself with a fresh HTTPS
// certificate, on free ports, and stops both when the test ends:
//
//	srv := pebble.Start(t, pebble.Options{EAB: map[string]string{"kid-1": pebble.NewEABKey()}})
//	// ACME directory: srv.DirectoryURL, trusted through srv.HTTPClient()
//	// or srv.ServerCAFile; publish a dns-01 record with srv.SetTXT, or
//	// run ExecSolver(t) with srv.ExecSolverEnv(); check issued chains
//	// against srv.Roots(t).
//
// Pebble runs with PEBBLE_VA_NOSLEEP=1 (validation starts at once) and
// PEBBLE_WFE_NONCEREJECT=0 (no spurious badNonce), no Retry-After headers
// unless asked, and ECDSA issuing keys, so tests are fast and
// deterministic. Pebble remains Pebble, though:
//
//   - An order without a profile gets a randomly chosen one of the
//     configured profiles; name the profile, or configure only one.
//   - A valid authorization lasts one hour and, with the default
//     ReuseAlways, is reused by every later order of the same account for
//     the same identifier, which then starts out "ready".
//   - The issuing root and intermediate are new at every start; fetch them
//     with Roots and Intermediates.
//   - ARI (renewalInfo) is advertised; the suggested window of a fresh
//     certificate is computed by SuggestedWindow, and can be overridden
//     per certificate with SetRenewalInfo.
package pebble

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Names of the profiles in DefaultProfiles.
const (
	ProfileDefault    = "default"
	ProfileShortLived = "shortlived"
)

// Validities of the profiles in DefaultProfiles.
const (
	// DefaultValidity is 90 days, Pebble's own validity for a profile
	// that sets none (7776000 s).
	DefaultValidity = 90 * 24 * time.Hour
	// ShortLivedValidity is 6 days (518400 s), as the "shortlived"
	// profile of Pebble's own test configuration.
	ShortLivedValidity = 6 * 24 * time.Hour
)

// Profile is one certificate profile Pebble offers (draft-ietf-acme-
// profiles): the directory's meta.profiles lists it and an order names it
// in its "profile" field.
type Profile struct {
	// Description is shown in the directory.
	Description string
	// Validity is the certificates' lifetime, whole seconds: Pebble sets
	// notAfter = notBefore + Validity - 1 s. Zero means DefaultValidity.
	Validity time.Duration
	// PromoteCommonName copies the first DNS name into the subject CN,
	// as Let's Encrypt's "classic" profile does.
	PromoteCommonName bool
}

// DefaultProfiles are the profiles Start configures when Options.Profiles
// is empty: ProfileDefault (DefaultValidity) and ProfileShortLived
// (ShortLivedValidity).
func DefaultProfiles() map[string]Profile {
	return map[string]Profile{
		ProfileDefault:    {Description: "The profile you know and love", Validity: DefaultValidity},
		ProfileShortLived: {Description: "A short-lived certificate profile", Validity: ShortLivedValidity},
	}
}

// AuthzReuse is how often Pebble puts an existing valid authorization of
// the same account and identifier into a new order
// (PEBBLE_AUTHZREUSE). Pebble keeps a valid authorization for one hour,
// a fixed time.
type AuthzReuse int

const (
	// ReuseAlways reuses a valid authorization whenever there is one
	// (100 %), as Let's Encrypt does. It is the zero value.
	ReuseAlways AuthzReuse = iota
	// ReuseNever asks for fresh authorizations (0 %). Pebble's check is
	// rand.Intn(100) > percent, so about 1 order in 100 still reuses
	// one: a client must handle both.
	ReuseNever
	// ReuseHalf is Pebble's own default, 50 %.
	ReuseHalf
)

func (r AuthzReuse) percent() int {
	switch r {
	case ReuseNever:
		return 0
	case ReuseHalf:
		return 50
	default:
		return 100
	}
}

// Options configure Start. The zero value is a Pebble without EAB, with
// DefaultProfiles and ReuseAlways.
type Options struct {
	// EAB maps key IDs to base64url HMAC keys (see NewEABKey). When it is
	// not empty, Pebble requires an external account binding on
	// newAccount (externalAccountBindingRequired), unless EABOptional.
	// Padding ("=") is stripped: Pebble decodes the keys unpadded.
	EAB map[string]string
	// EABOptional accepts the EAB keys without requiring a binding.
	EABOptional bool
	// Profiles are the certificate profiles; empty means
	// DefaultProfiles().
	Profiles map[string]Profile
	// AuthzReuse is the authorization reuse policy (default ReuseAlways).
	AuthzReuse AuthzReuse
	// RetryAfterAuthz and RetryAfterOrder, rounded to whole seconds, are
	// the Retry-After Pebble sends on pending authorizations and
	// processing orders. Zero sends none (Pebble's own test
	// configuration uses 3 s and 5 s).
	RetryAfterAuthz, RetryAfterOrder time.Duration
	// KeyAlgorithm is the issuing CA's key type: "ecdsa" (default),
	// "rsa" or "mldsa".
	KeyAlgorithm string
	// AlternateRoots adds that many alternate issuance chains
	// (PEBBLE_ALTERNATE_ROOTS); Roots and Intermediates return them after
	// the default one.
	AlternateRoots int
	// ChainLength is the number of intermediates between leaf and root
	// (PEBBLE_CHAIN_LENGTH); zero means 1. Only the one nearest the leaf
	// is served by the management API.
	ChainLength int
	// DomainBlocklist are names Pebble refuses to issue for (default
	// none).
	DomainBlocklist []string
	// CAAIdentities are the CA's CAA issuer domains (Pebble's default is
	// pebble.letsencrypt.org).
	CAAIdentities []string
	// OCSPResponderURL goes into issued certificates when not empty.
	OCSPResponderURL string
	// HTTPPort and TLSPort are the ports Pebble's VA connects to for
	// http-01 and tls-alpn-01 (default 5002 and 5001). The harness serves
	// neither: pebble-challtestsrv runs DNS only.
	HTTPPort, TLSPort int
	// Strict runs Pebble with -strict.
	Strict bool
	// Env are extra KEY=VALUE entries for Pebble's environment, after the
	// harness's own (so they win), e.g. "PEBBLE_VA_ALWAYS_VALID=1".
	// PEBBLE_* variables of the test's own environment are not passed on.
	Env []string
}

// Server is a running Pebble and pebble-challtestsrv pair. Its fields are
// set by Start and must not be changed.
type Server struct {
	// DirectoryURL is Pebble's ACME directory,
	// https://127.0.0.1:PORT/dir.
	DirectoryURL string
	// ManagementURL is Pebble's management API, https://127.0.0.1:PORT
	// (roots, intermediates, cert-status-by-serial, set-renewal-info).
	ManagementURL string
	// RenewalInfoURL is the directory's renewalInfo (ARI) URL.
	RenewalInfoURL string
	// ChallSrvURL is pebble-challtestsrv's management API,
	// http://127.0.0.1:PORT (set-txt, clear-txt, add-a, set-cname, ...).
	ChallSrvURL string
	// DNSAddr is pebble-challtestsrv's DNS server, 127.0.0.1:PORT on UDP
	// and TCP: the server Pebble validates dns-01 against, and the one a
	// propagation check should query. It answers any A query with
	// 127.0.0.1 and no AAAA; it does not implement SOA, NS or UPDATE.
	DNSAddr string
	// ServerCAPEM is the PEM of the CA of Pebble's HTTPS certificate (not
	// of the certificates Pebble issues: see Roots), and ServerCAFile a
	// file holding it.
	ServerCAPEM  []byte
	ServerCAFile string
	// Profiles are the profiles Pebble offers.
	Profiles map[string]Profile
	// EAB are the EAB keys Pebble knows, and EABRequired whether
	// newAccount needs a binding.
	EAB         map[string]string
	EABRequired bool
	// Dir is the server's temporary directory: configuration, HTTPS
	// certificate and key, and the logs PebbleLogFile and ChallSrvLogFile.
	Dir             string
	PebbleLogFile   string
	ChallSrvLogFile string

	pebbleBin, challBin string
	opts                Options
	tls                 *tlsFiles
	client              *http.Client

	mu    sync.Mutex
	procs []*proc
}

// NewEABKey returns a random 256-bit HMAC key, base64url without padding,
// for Options.EAB.
func NewEABKey() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// errPortTaken is a start that failed because a port chosen as free was
// taken in the meantime; Start then tries other ports.
var errPortTaken = errors.New("port taken")

// startAttempts bounds the retries on other ports.
const startAttempts = 3

// readyTimeout bounds the wait for each process to answer.
const readyTimeout = 20 * time.Second

// Start builds the binaries (see Build) and starts pebble-challtestsrv and
// Pebble on free 127.0.0.1 ports, waiting until both answer. Both are
// stopped when the test ends; if it failed, the end of their logs is
// logged. Start fails the test when they cannot be started.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	pebbleBin, challBin := Build(t)
	dir := t.TempDir()
	tf, err := makeTLS(dir)
	if err != nil {
		t.Fatalf("pebble: %v", err)
	}
	s := &Server{
		ServerCAPEM:     tf.caPEM,
		ServerCAFile:    tf.caFile,
		Dir:             dir,
		PebbleLogFile:   filepath.Join(dir, "pebble.log"),
		ChallSrvLogFile: filepath.Join(dir, "pebble-challtestsrv.log"),
		pebbleBin:       pebbleBin,
		challBin:        challBin,
		opts:            opts,
		tls:             tf,
	}
	s.Profiles = opts.Profiles
	if len(s.Profiles) == 0 {
		s.Profiles = DefaultProfiles()
	}
	s.EAB = make(map[string]string, len(opts.EAB))
	for kid, key := range opts.EAB {
		s.EAB[kid] = strings.TrimRight(key, "=")
	}
	s.EABRequired = len(s.EAB) > 0 && !opts.EABOptional
	s.client = s.HTTPClient()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("pebble: end of the logs (in %s):\n%s", dir, s.logs(6000))
		}
	})

	for attempt := 1; ; attempt++ {
		err := s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("pebble: start: %v", err)
		}
		t.Logf("pebble: start attempt %d: %v; trying other ports", attempt, err)
		s.Stop()
	}
}

// launch picks ports and starts both processes, waiting until they are
// ready.
func (s *Server) launch() error {
	dnsAddr, err := freeUDPTCPAddr()
	if err != nil {
		return err
	}
	challMgmt, err := freeAddr()
	if err != nil {
		return err
	}
	acmeAddr, err := freeAddr()
	if err != nil {
		return err
	}
	mgmtAddr, err := freeAddr()
	if err != nil {
		return err
	}
	s.DNSAddr = dnsAddr
	s.ChallSrvURL = "http://" + challMgmt
	s.DirectoryURL = "https://" + acmeAddr + "/dir"
	s.ManagementURL = "https://" + mgmtAddr

	// pebble-challtestsrv: DNS only, answering A queries with 127.0.0.1.
	chall, err := s.start("pebble-challtestsrv", s.challBin, []string{
		"-management", challMgmt,
		"-dnsserver", dnsAddr,
		"-http01", "",
		"-https01", "",
		"-tlsalpn01", "",
		"-doh", "",
		"-defaultIPv4", "127.0.0.1",
		"-defaultIPv6", "",
	}, cleanEnv(), s.ChallSrvLogFile)
	if err != nil {
		return err
	}
	if err := s.waitChallSrv(chall); err != nil {
		return err
	}

	cfgFile := filepath.Join(s.Dir, "pebble-config.json")
	if err := s.writeConfig(cfgFile, acmeAddr, mgmtAddr); err != nil {
		return err
	}
	env := append(cleanEnv(),
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_WFE_NONCEREJECT=0",
		"PEBBLE_AUTHZREUSE="+strconv.Itoa(s.opts.AuthzReuse.percent()),
		"PEBBLE_ALTERNATE_ROOTS="+strconv.Itoa(s.opts.AlternateRoots),
	)
	if s.opts.ChainLength > 0 {
		env = append(env, "PEBBLE_CHAIN_LENGTH="+strconv.Itoa(s.opts.ChainLength))
	}
	env = append(env, s.opts.Env...)
	args := []string{"-config", cfgFile, "-dnsserver", dnsAddr}
	if s.opts.Strict {
		args = append(args, "-strict")
	}
	peb, err := s.start("pebble", s.pebbleBin, args, env, s.PebbleLogFile)
	if err != nil {
		return err
	}
	return s.waitPebble(peb)
}

// pebbleConfig is Pebble's -config file.
type pebbleConfig struct {
	Pebble struct {
		ListenAddress                  string                 `json:"listenAddress"`
		ManagementListenAddress        string                 `json:"managementListenAddress"`
		Certificate                    string                 `json:"certificate"`
		PrivateKey                     string                 `json:"privateKey"`
		HTTPPort                       int                    `json:"httpPort"`
		TLSPort                        int                    `json:"tlsPort"`
		OCSPResponderURL               string                 `json:"ocspResponderURL"`
		ExternalAccountBindingRequired bool                   `json:"externalAccountBindingRequired"`
		ExternalAccountMACKeys         map[string]string      `json:"externalAccountMACKeys,omitempty"`
		CAAIdentities                  []string               `json:"caaIdentities,omitempty"`
		DomainBlocklist                []string               `json:"domainBlocklist"`
		KeyAlgorithm                   string                 `json:"keyAlgorithm"`
		Profiles                       map[string]profileJSON `json:"profiles"`
		RetryAfter                     struct {
			Authz int `json:"authz"`
			Order int `json:"order"`
		} `json:"retryAfter"`
	} `json:"pebble"`
}

type profileJSON struct {
	Description       string `json:"description"`
	ValidityPeriod    uint64 `json:"validityPeriod"` // seconds
	PromoteCommonName bool   `json:"promoteCommonName,omitempty"`
}

func (s *Server) writeConfig(path, acmeAddr, mgmtAddr string) error {
	var c pebbleConfig
	p := &c.Pebble
	p.ListenAddress = acmeAddr
	p.ManagementListenAddress = mgmtAddr
	p.Certificate = s.tls.certFile
	p.PrivateKey = s.tls.keyFile
	p.HTTPPort = cmpOr(s.opts.HTTPPort, 5002)
	p.TLSPort = cmpOr(s.opts.TLSPort, 5001)
	p.OCSPResponderURL = s.opts.OCSPResponderURL
	p.ExternalAccountBindingRequired = s.EABRequired
	if len(s.EAB) > 0 {
		p.ExternalAccountMACKeys = s.EAB
	}
	p.CAAIdentities = s.opts.CAAIdentities
	p.DomainBlocklist = s.opts.DomainBlocklist
	if p.DomainBlocklist == nil {
		p.DomainBlocklist = []string{}
	}
	p.KeyAlgorithm = cmpOr(s.opts.KeyAlgorithm, "ecdsa")
	p.Profiles = make(map[string]profileJSON, len(s.Profiles))
	for name, prof := range s.Profiles {
		secs := uint64(prof.Validity / time.Second)
		if prof.Validity > 0 && secs == 0 {
			secs = 1
		}
		p.Profiles[name] = profileJSON{Description: prof.Description, ValidityPeriod: secs, PromoteCommonName: prof.PromoteCommonName}
	}
	p.RetryAfter.Authz = int((s.opts.RetryAfterAuthz + time.Second/2) / time.Second)
	p.RetryAfter.Order = int((s.opts.RetryAfterOrder + time.Second/2) / time.Second)
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// cleanEnv is the test's environment without PEBBLE_* variables, so that
// a developer's shell cannot change what the harness runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitChallSrv waits until pebble-challtestsrv's management API takes a
// TXT record and its DNS server returns it over UDP and TCP. A DNS port
// taken by someone else does not stop the process (it only logs), so the
// log is checked too.
func (s *Server) waitChallSrv(p *proc) error {
	probe := fmt.Sprintf("_ready-%d.pebble.test.", time.Now().UnixNano())
	value := NewEABKey()
	udp, tcp := s.resolver("udp"), s.resolver("tcp")
	set := false
	return poll(readyTimeout, func() (bool, error) {
		if err := p.failed(); err != nil {
			return false, err
		}
		if !set {
			if err := s.challPost("/set-txt", map[string]string{"host": probe, "value": value}); err != nil {
				return false, nil
			}
			set = true
		}
		for _, r := range []*net.Resolver{udp, tcp} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			txts, err := r.LookupTXT(ctx, probe)
			cancel()
			if err != nil || !slices.Contains(txts, value) {
				return false, nil
			}
		}
		return true, s.challPost("/clear-txt", map[string]string{"host": probe})
	})
}

// waitPebble waits until Pebble serves its directory and its management
// API serves the root.
func (s *Server) waitPebble(p *proc) error {
	return poll(readyTimeout, func() (bool, error) {
		if err := p.failed(); err != nil {
			return false, err
		}
		var dir struct {
			NewAccount  string `json:"newAccount"`
			RenewalInfo string `json:"renewalInfo"`
		}
		if err := s.getJSON(s.DirectoryURL, &dir); err != nil || dir.NewAccount == "" {
			return false, nil
		}
		if _, _, err := s.get(s.ManagementURL + "/roots/0"); err != nil {
			return false, nil
		}
		s.RenewalInfoURL = dir.RenewalInfo
		return true, nil
	})
}

// poll calls f until it reports done or an error, or until timeout,
// waiting a little longer after each try.
func poll(timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v", timeout)
		}
		time.Sleep(wait)
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// HTTPClient returns a new HTTP client, with its own transport, that
// trusts Pebble's HTTPS certificate (ServerCAPEM) and uses no proxy. Each
// call returns a new one because lego's api.New replaces the client's
// Transport with an HTTPS-only wrapper, which would break plain-HTTP calls
// (pebble-challtestsrv) on a shared client.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil, // never an HTTP(S)_PROXY for 127.0.0.1
			TLSClientConfig: &tls.Config{RootCAs: s.ServerCAPool()},
		},
	}
}

// ServerCAPool returns a pool holding ServerCAPEM.
func (s *Server) ServerCAPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.ServerCAPEM)
	return pool
}

// ExecSolverEnv is the environment for ExecSolver's script:
// CHALLTESTSRV_URL=ChallSrvURL.
func (s *Server) ExecSolverEnv() []string {
	return []string{"CHALLTESTSRV_URL=" + s.ChallSrvURL}
}

// SetTXT adds value to the TXT records pebble-challtestsrv serves at fqdn
// (a trailing dot is added when missing), e.g.
// "_acme-challenge.www.example.com.". Values add up; ClearTXT removes all.
func (s *Server) SetTXT(t testing.TB, fqdn, value string) {
	t.Helper()
	if err := s.challPost("/set-txt", map[string]string{"host": fqdnOf(fqdn), "value": value}); err != nil {
		t.Fatalf("pebble: set TXT %s: %v", fqdn, err)
	}
}

// ClearTXT removes every TXT record at fqdn.
func (s *Server) ClearTXT(t testing.TB, fqdn string) {
	t.Helper()
	if err := s.challPost("/clear-txt", map[string]string{"host": fqdnOf(fqdn)}); err != nil {
		t.Fatalf("pebble: clear TXT %s: %v", fqdn, err)
	}
}

// ChallSrvPost POSTs body, as JSON, to pebble-challtestsrv's management
// API at path (e.g. "/set-cname", "/set-servfail", "/add-caa"; see its
// README) and fails the test unless it answers 200.
func (s *Server) ChallSrvPost(t testing.TB, path string, body any) {
	t.Helper()
	if err := s.challPost(path, body); err != nil {
		t.Fatalf("pebble: challtestsrv %s: %v", path, err)
	}
}

// Resolver returns a resolver that sends every query to DNSAddr over UDP.
// pebble-challtestsrv sets neither the AA nor the RA bit, so Go's resolver
// reports a name without records as a *net.DNSError "lame referral"
// rather than "no such host" (and names its error after the system's
// name server, not DNSAddr).
func (s *Server) Resolver() *net.Resolver { return s.resolver("udp") }

func (s *Server) resolver(network string) *net.Resolver {
	addr := s.DNSAddr
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// Roots returns Pebble's issuing root certificates: the default chain's
// first, then the alternates (Options.AlternateRoots). They are new at
// every start.
func (s *Server) Roots(t testing.TB) []*x509.Certificate {
	t.Helper()
	return s.chainCerts(t, "/roots/")
}

// RootPool returns a pool of Roots, to verify issued chains.
func (s *Server) RootPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range s.Roots(t) {
		pool.AddCert(c)
	}
	return pool
}

// Intermediates returns the intermediate nearest the leaf of each chain,
// in the order of Roots. All chains share the intermediate's key and
// subject.
func (s *Server) Intermediates(t testing.TB) []*x509.Certificate {
	t.Helper()
	return s.chainCerts(t, "/intermediates/")
}

func (s *Server) chainCerts(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	body, hdr, err := s.get(s.ManagementURL + path + "0")
	if err != nil {
		t.Fatalf("pebble: %v", err)
	}
	n := 1
	for _, l := range hdr.Values("Link") {
		n += strings.Count(l, `rel="alternate"`)
	}
	certs := []*x509.Certificate{mustParsePEM(t, path+"0", body)}
	for i := 1; i < n; i++ {
		p := path + strconv.Itoa(i)
		body, _, err := s.get(s.ManagementURL + p)
		if err != nil {
			t.Fatalf("pebble: %v", err)
		}
		certs = append(certs, mustParsePEM(t, p, body))
	}
	return certs
}

func mustParsePEM(t testing.TB, what string, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("pebble: %s: no PEM certificate in %q", what, b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("pebble: %s: %v", what, err)
	}
	return c
}

// CertStatus returns what Pebble's management API says of the certificate
// with that serial: "Valid", "Revoked", or "" when Pebble does not know it.
func (s *Server) CertStatus(t testing.TB, serial *big.Int) string {
	t.Helper()
	resp, err := s.client.Get(s.ManagementURL + "/cert-status-by-serial/" + serial.Text(16))
	if err != nil {
		t.Fatalf("pebble: cert status: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	var st struct{ Status string }
	if err := decode(resp, &st); err != nil {
		t.Fatalf("pebble: cert status: %v", err)
	}
	return st.Status
}

// SuggestedWindow is the ARI window Pebble suggests for a certificate
// that is neither revoked nor overridden by SetRenewalInfo: two days
// centred on the point two thirds into its validity (notAfter - validity/3
// ± 24 h), clipped to [notBefore, notAfter], truncated to milliseconds.
// Validity counts the last second: notAfter + 1 s - notBefore. For a
// 90-day certificate that is days 59 to 61 after notBefore; for a 6-day
// one days 3 to 5. A revoked certificate's window is "renew now".
func SuggestedWindow(notBefore, notAfter time.Time) (start, end time.Time) {
	notBefore, notAfter = notBefore.UTC(), notAfter.UTC()
	validity := notAfter.Add(time.Second).Sub(notBefore)
	ideal := notAfter.Add(-validity / 3)
	start, end = ideal.Add(-24*time.Hour), ideal.Add(24*time.Hour)
	if end.After(notAfter) {
		end = notAfter
	}
	if start.Before(notBefore) {
		start = notBefore
	}
	if !start.Before(end) {
		start = start.Add(-time.Second)
	}
	return start.Truncate(time.Millisecond), end.Truncate(time.Millisecond)
}

// SetRenewalInfo makes Pebble answer ariResponse, verbatim (it may be
// malformed on purpose), to renewalInfo requests for the certificate in
// certPEM (its first PEM block), instead of SuggestedWindow.
func (s *Server) SetRenewalInfo(t testing.TB, certPEM []byte, ariResponse string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"certificate": string(certPEM), "ariResponse": ariResponse})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Post(s.ManagementURL+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("pebble: set renewal info: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("pebble: set renewal info: %s: %s", resp.Status, b)
	}
}

// SetRenewalWindow makes Pebble suggest the window [start, end] for the
// certificate in certPEM (see SetRenewalInfo).
func (s *Server) SetRenewalWindow(t testing.TB, certPEM []byte, start, end time.Time) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start.UTC(), "end": end.UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	s.SetRenewalInfo(t, certPEM, string(b))
}

// Logs returns what Pebble and pebble-challtestsrv have logged so far.
func (s *Server) Logs() string { return s.logs(0) }

// logs is Logs with each log cut to its last max bytes (0: all).
func (s *Server) logs(max int) string {
	var b strings.Builder
	for _, f := range []struct{ name, path string }{
		{"pebble", s.PebbleLogFile},
		{"pebble-challtestsrv", s.ChallSrvLogFile},
	} {
		data, err := os.ReadFile(f.path)
		text := string(data)
		if err != nil {
			text = err.Error()
		} else if max > 0 {
			text = tail(text, max)
		}
		fmt.Fprintf(&b, "--- %s ---\n%s", f.name, text)
		if !strings.HasSuffix(text, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Stop stops Pebble and pebble-challtestsrv (SIGTERM, then SIGKILL after
// 5 s) and waits for them. It is safe to call more than once; Start's
// cleanup calls it.
func (s *Server) Stop() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	if tr, ok := s.client.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// challPost POSTs body as JSON to pebble-challtestsrv's management API.
func (s *Server) challPost(path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := s.client.Post(s.ChallSrvURL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// get GETs url and returns the body of a 200 answer.
func (s *Server) get(url string) ([]byte, http.Header, error) {
	resp, err := s.client.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, resp.Header, nil
}

func (s *Server) getJSON(url string, v any) error {
	b, _, err := s.get(url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func decode(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

func fqdnOf(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// freeAddr returns a 127.0.0.1 TCP address that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// freeUDPTCPAddr returns a 127.0.0.1 address whose port was free on both
// TCP and UDP a moment ago.
func freeUDPTCPAddr() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			pc.Close()
			return addr, nil
		}
	}
	return "", errors.New("no port free on both TCP and UDP")
}

// sourceDir is the directory of this file.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("pebble: cannot locate the package's source directory (built with -trimpath?)")
	}
	return filepath.Dir(file), nil
}
