package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "cva.tok1.s3cret"

// fakeVault serves /v1/agents/enroll and /v1/agents/renew like the vault:
// its API certificate is issued by a root CA, which it presents with the
// leaf, and an agent CA under the root signs agents' certificates.
type fakeVault struct {
	t                   *testing.T
	root, agentCA       *x509.Certificate
	rootKey, agentCAKey *ecdsa.PrivateKey
	rootPool            *x509.CertPool
	mux                 *http.ServeMux
	srv                 *httptest.Server
	enrolls, renews     atomic.Int32
	serial              atomic.Int64

	mu       sync.Mutex
	validity func(now time.Time) (time.Time, time.Time)
	wrongCA  bool
	lastName string
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCA makes a self-signed root CA.
func newCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	return signCert(t, tmpl, tmpl, &key.PublicKey, key), key
}

// serverCert is a certificate for 127.0.0.1 from ca, presented with ca.
func serverCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, present *x509.Certificate) tls.Certificate {
	key := newKey(t)
	now := time.Now()
	leaf := signCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vault"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca, &key.PublicKey, caKey)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, present.Raw}, PrivateKey: key, Leaf: leaf}
}

func newFakeVault(t *testing.T) *fakeVault {
	f := &fakeVault{t: t}
	f.root, f.rootKey = newCA(t, "test vault CA")
	f.rootPool = x509.NewCertPool()
	f.rootPool.AddCert(f.root)
	f.agentCAKey = newKey(t)
	now := time.Now()
	f.agentCA = signCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "test agent CA"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}, f.root, &f.agentCAKey.PublicKey, f.rootKey)
	f.serial.Store(100)
	f.validity = func(now time.Time) (time.Time, time.Time) { return now.Add(-time.Minute), now.Add(time.Hour) }

	f.mux = http.NewServeMux()
	f.mux.HandleFunc("POST /v1/agents/enroll", f.handleEnroll)
	f.mux.HandleFunc("POST /v1/agents/renew", f.handleRenew)
	f.srv = f.start(serverCert(t, f.root, f.rootKey, f.root))
	return f
}

// start serves f's handlers with the given certificate, asking for (but
// not requiring) client certificates from the root, as the vault does.
func (f *fakeVault) start(cert tls.Certificate) *httptest.Server {
	srv := httptest.NewUnstartedServer(f.mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: f.rootPool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	f.t.Cleanup(srv.Close)
	return srv
}

func (f *fakeVault) fingerprint() string {
	sum := sha256.Sum256(f.root.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func readCSR(w http.ResponseWriter, p string) *x509.CertificateRequest {
	b, _ := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		writeError(w, 400, "BadParameter", "csr: give a PEM CERTIFICATE REQUEST")
		return nil
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		writeError(w, 400, "BadParameter", "csr does not verify")
		return nil
	}
	return csr
}

func (f *fakeVault) handleEnroll(w http.ResponseWriter, r *http.Request) {
	f.enrolls.Add(1)
	var req struct {
		Token string `json:"token"`
		CSR   string `json:"csr"`
		Name  string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "BadParameter", "body is not JSON")
		return
	}
	if req.Token != testToken {
		writeError(w, 403, "Forbidden", "agent join token is not valid (wrong, expired or used up; ask for a new one: certvault agent join-token create)")
		return
	}
	csr := readCSR(w, req.CSR)
	if csr == nil {
		return
	}
	f.mu.Lock()
	f.lastName = req.Name
	f.mu.Unlock()
	f.issue(w, http.StatusCreated, "agent-1", csr.PublicKey)
}

func (f *fakeVault) handleRenew(w http.ResponseWriter, r *http.Request) {
	f.renews.Add(1)
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		writeError(w, 403, "Forbidden", "only an agent, with its client certificate, may call this")
		return
	}
	inter := x509.NewCertPool()
	inter.AddCert(f.agentCA)
	leaf := r.TLS.PeerCertificates[0]
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: f.rootPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || !chains[0][1].Equal(f.agentCA) {
		writeError(w, 403, "Forbidden", "the client certificate is not from this vault's agent CA")
		return
	}
	var req struct {
		CSR string `json:"csr"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "BadParameter", "body is not JSON")
		return
	}
	csr := readCSR(w, req.CSR)
	if csr == nil {
		return
	}
	f.issue(w, http.StatusOK, leaf.Subject.CommonName, csr.PublicKey)
}

func (f *fakeVault) issue(w http.ResponseWriter, status int, id string, pub crypto.PublicKey) {
	f.mu.Lock()
	nb, na := f.validity(time.Now())
	wrongCA := f.wrongCA
	f.mu.Unlock()
	leaf := signCert(f.t, &x509.Certificate{
		SerialNumber: big.NewInt(f.serial.Add(1)),
		Subject:      pkix.Name{CommonName: id, OrganizationalUnit: []string{"certvault-agent", "group:web"}},
		NotBefore:    nb, NotAfter: na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, f.agentCA, pub, f.agentCAKey)
	ca := f.root
	if wrongCA {
		ca, _ = newCA(f.t, "someone else's CA")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"agent_id": id, "group": "web",
		"certificate": string(pemCert(leaf.Raw)), "chain": string(pemCert(f.agentCA.Raw)), "ca": string(pemCert(ca.Raw)),
		"not_after": leaf.NotAfter.UTC(),
	})
}

func (f *fakeVault) join(t *testing.T, dir string) *Identity {
	t.Helper()
	id, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: testToken, CAFingerprint: f.fingerprint(), StateDir: dir, Name: "web-1"})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	return id
}

func serial(c *tls.Certificate) string { return c.Leaf.SerialNumber.String() }

func assertNoIdentity(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{KeyFile, CertFile, CAFile, IdentityFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: want no file, stat says %v", name, err)
		}
	}
	if _, err := Load(dir); !errors.Is(err, ErrNotJoined) {
		t.Errorf("Load: want ErrNotJoined, got %v", err)
	}
}

func TestJoinAndLoad(t *testing.T) {
	f := newFakeVault(t)
	dir := filepath.Join(t.TempDir(), "state")
	id := f.join(t, dir)

	if id.AgentID != "agent-1" || id.Group != "web" || id.VaultURL != f.srv.URL {
		t.Errorf("identity = %q %q %q", id.AgentID, id.Group, id.VaultURL)
	}
	if !id.CA.Equal(f.root) || id.Cert.Leaf == nil || !id.NotAfter.Equal(id.Cert.Leaf.NotAfter) || len(id.Cert.Certificate) != 2 {
		t.Errorf("identity certificate or CA is wrong")
	}
	f.mu.Lock()
	name := f.lastName
	f.mu.Unlock()
	if f.enrolls.Load() != 1 || name != "web-1" {
		t.Errorf("enrolls = %d, name %q", f.enrolls.Load(), name)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, mode %v", err, fi.Mode())
	}
	for _, name := range []string{KeyFile, CertFile, CAFile, IdentityFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatalf("read key.pem: %v", err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key.pem is not PKCS #8 PEM")
	}
	var meta map[string]any
	data, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatalf("read identity.json: %v", err)
	}
	if err := json.Unmarshal(data, &meta); err != nil || meta["agent_id"] != "agent-1" || meta["group"] != "web" || meta["vault_url"] != f.srv.URL || meta["not_after"] == nil {
		t.Errorf("identity.json = %s (%v)", data, err)
	}

	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.AgentID != id.AgentID || got.Group != id.Group || got.VaultURL != id.VaultURL || !got.CA.Equal(id.CA) ||
		!got.NotAfter.Equal(id.NotAfter) || !got.Cert.Leaf.Equal(id.Cert.Leaf) || len(got.Cert.Certificate) != 2 ||
		!got.Cert.PrivateKey.(*ecdsa.PrivateKey).Equal(id.Cert.PrivateKey) {
		t.Errorf("Load returned a different identity")
	}
}

func TestJoinRefusesWrongFingerprint(t *testing.T) {
	f := newFakeVault(t)
	other := sha256.Sum256(f.agentCA.Raw)
	dir := t.TempDir()
	_, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: testToken, CAFingerprint: "sha256:" + hex.EncodeToString(other[:]), StateDir: dir, Name: "web-1"})
	if err == nil || !strings.Contains(err.Error(), "does not hold the CA") {
		t.Fatalf("Join: want a pinning error, got %v", err)
	}
	if n := f.enrolls.Load(); n != 0 {
		t.Errorf("the vault was called %d times", n)
	}
	assertNoIdentity(t, dir)
}

func TestJoinRefusesLeafNotFromPinnedCA(t *testing.T) {
	f := newFakeVault(t)
	// A server that shows the pinned CA but whose certificate is another CA's.
	other, otherKey := newCA(t, "impostor")
	srv := f.start(serverCert(t, other, otherKey, f.root))
	dir := t.TempDir()
	_, err := Join(t.Context(), JoinConfig{VaultURL: srv.URL, Token: testToken, CAFingerprint: f.fingerprint(), StateDir: dir, Name: "web-1"})
	if err == nil || !strings.Contains(err.Error(), "pinned CA") {
		t.Fatalf("Join: want a pinning error, got %v", err)
	}
	if n := f.enrolls.Load(); n != 0 {
		t.Errorf("the vault was called %d times", n)
	}
	assertNoIdentity(t, dir)
}

func TestJoinRefusesMalformedFingerprint(t *testing.T) {
	f := newFakeVault(t)
	sum := sha256.Sum256(f.root.Raw)
	h := hex.EncodeToString(sum[:])
	for _, fp := range []string{"", h, "sha1:" + h, "sha256:" + h[:62], "sha256:" + h + "00", "sha256:" + h[:63] + "g"} {
		_, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: testToken, CAFingerprint: fp, StateDir: t.TempDir(), Name: "web-1"})
		if !errors.Is(err, ErrBadFingerprint) || !strings.Contains(err.Error(), "sha256: and the 64 hex digits") {
			t.Errorf("fingerprint %q: got %v", fp, err)
		}
	}
	if n := f.enrolls.Load(); n != 0 {
		t.Errorf("the vault was called %d times", n)
	}
	if got, err := ParseFingerprint(" sha256:" + strings.ToUpper(h) + "\n"); err != nil || !bytes.Equal(got, sum[:]) {
		t.Errorf("ParseFingerprint of upper-case hex: %x, %v", got, err)
	}
}

func TestJoinSurfacesVaultError(t *testing.T) {
	f := newFakeVault(t)
	dir := t.TempDir()
	_, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: "cva.tok1.wrong", CAFingerprint: f.fingerprint(), StateDir: dir, Name: "web-1"})
	var ve *VaultError
	if !errors.As(err, &ve) || ve.StatusCode != 403 || ve.Code != "Forbidden" {
		t.Fatalf("Join: want a 403 VaultError, got %v", err)
	}
	if !strings.Contains(err.Error(), "join token is not valid") {
		t.Errorf("the vault's message is lost: %v", err)
	}
	assertNoIdentity(t, dir)
}

func TestJoinRefusesAnswerWithOtherCA(t *testing.T) {
	f := newFakeVault(t)
	f.mu.Lock()
	f.wrongCA = true
	f.mu.Unlock()
	dir := t.TempDir()
	_, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: testToken, CAFingerprint: f.fingerprint(), StateDir: dir, Name: "web-1"})
	if err == nil || !strings.Contains(err.Error(), "vault CA in the answer") {
		t.Fatalf("Join: got %v", err)
	}
	assertNoIdentity(t, dir)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestJoinRefusesUnpinnableClient(t *testing.T) {
	f := newFakeVault(t)
	c := &http.Client{Transport: roundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("called") })}
	_, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: testToken, CAFingerprint: f.fingerprint(), StateDir: t.TempDir(), HTTPClient: c})
	if err == nil || !strings.Contains(err.Error(), "*http.Transport") {
		t.Fatalf("Join: got %v", err)
	}
	// An *http.Transport is cloned and pinned.
	c = &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	if _, err := Join(t.Context(), JoinConfig{VaultURL: f.srv.URL, Token: testToken, CAFingerprint: f.fingerprint(), StateDir: t.TempDir(), HTTPClient: c}); err != nil {
		t.Fatalf("Join with a client: %v", err)
	}
	if _, err := Join(t.Context(), JoinConfig{VaultURL: strings.Replace(f.srv.URL, "https", "http", 1), Token: testToken, CAFingerprint: f.fingerprint(), StateDir: t.TempDir()}); err == nil {
		t.Errorf("Join accepted an http URL")
	}
}

func TestRenew(t *testing.T) {
	f := newFakeVault(t)
	dir := t.TempDir()
	id := f.join(t, dir)
	conf := id.TLSConfig()
	if conf.MinVersion != tls.VersionTLS12 || conf.RootCAs == nil || conf.InsecureSkipVerify {
		t.Fatalf("TLSConfig: %+v", conf)
	}
	old := serial(&id.Cert)
	c, err := conf.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatalf("GetClientCertificate before Renew: %v", err)
	}
	if serial(c) != old {
		t.Fatalf("GetClientCertificate before Renew: serial %s, want %s", serial(c), old)
	}

	if err := id.Renew(t.Context(), f.srv.URL, dir); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	c, err = conf.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatalf("GetClientCertificate after Renew: %v", err)
	}
	renewed := serial(c)
	if renewed == old || serial(id.Certificate()) != renewed || !id.Expiry().Equal(c.Leaf.NotAfter) {
		t.Fatalf("after Renew: serial %s (was %s), Certificate %s", renewed, old, serial(id.Certificate()))
	}
	if c.PrivateKey.(*ecdsa.PrivateKey).Equal(id.Cert.PrivateKey) {
		t.Errorf("Renew kept the old key")
	}
	if serial(&id.Cert) != old {
		t.Errorf("Renew changed the exported Cert field")
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if serial(&got.Cert) != renewed || !got.Cert.PrivateKey.(*ecdsa.PrivateKey).Equal(c.PrivateKey) {
		t.Errorf("Load after Renew: serial %s, want %s", serial(&got.Cert), renewed)
	}
	for _, name := range []string{KeyFile + nextSuffix, CertFile + nextSuffix} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", name)
		}
	}

	// A second renewal authenticates with the renewed certificate; the
	// vault URL defaults to the one joined.
	if err := id.Renew(t.Context(), "", dir); err != nil {
		t.Fatalf("second Renew: %v", err)
	}
	if serial(id.Certificate()) == renewed || f.renews.Load() != 2 {
		t.Errorf("second Renew: serial %s, renews %d", serial(id.Certificate()), f.renews.Load())
	}
}

func TestRenewRefusedWithoutAgentCertificate(t *testing.T) {
	f := newFakeVault(t)
	dir := t.TempDir()
	id := f.join(t, dir)
	// An identity whose certificate the vault's agent CA did not issue.
	other, otherKey := newCA(t, "other agent CA")
	key := newKey(t)
	leaf := signCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: id.AgentID},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, other, &key.PublicKey, otherKey)
	bad := newIdentity(id.AgentID, id.Group, id.VaultURL, id.CA, tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf})
	err := bad.Renew(t.Context(), "", dir)
	if err == nil {
		t.Fatal("Renew with a foreign certificate succeeded")
	}
	if got, err := Load(dir); err != nil || !got.Cert.Leaf.Equal(id.Cert.Leaf) {
		t.Errorf("a failed Renew changed the stored identity: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if !errors.Is(err, ErrNotJoined) || !strings.Contains(err.Error(), IdentityFile) || !strings.Contains(err.Error(), "certvault-agent join") {
		t.Fatalf("Load: %v", err)
	}
	f := newFakeVault(t)
	f.join(t, dir)
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
		t.Fatalf("remove cert.pem: %v", err)
	}
	if _, err := Load(dir); !errors.Is(err, ErrNotJoined) || !strings.Contains(err.Error(), CertFile) {
		t.Fatalf("Load without cert.pem: %v", err)
	}
}

func TestLoadFinishesInterruptedRenewal(t *testing.T) {
	f := newFakeVault(t)
	dir := t.TempDir()
	id := f.join(t, dir)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oldKey, oldCert := read(KeyFile), read(CertFile)
	if err := id.Renew(t.Context(), "", dir); err != nil {
		t.Fatal(err)
	}
	keyNew, certNew := read(KeyFile), read(CertFile)
	oldSerial, newSerial := serial(&id.Cert), serial(id.Certificate())

	type files map[string][]byte
	for _, tc := range []struct {
		name   string
		files  files
		serial string // "" for an error
	}{
		{"before the renames", files{KeyFile: oldKey, CertFile: oldCert, KeyFile + nextSuffix: keyNew, CertFile + nextSuffix: certNew}, newSerial},
		{"between the renames", files{KeyFile: keyNew, CertFile: oldCert, CertFile + nextSuffix: certNew}, newSerial},
		{"half of the next pair", files{KeyFile: oldKey, CertFile: oldCert, KeyFile + nextSuffix: keyNew}, oldSerial},
		{"mismatch", files{KeyFile: keyNew, CertFile: oldCert}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{KeyFile, CertFile, KeyFile + nextSuffix, CertFile + nextSuffix} {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("remove %s: %v", name, err)
				}
			}
			for name, data := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Load(dir)
			if tc.serial == "" {
				if err == nil || !strings.Contains(err.Error(), "not for the agent's key") {
					t.Fatalf("Load: want a mismatch error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if serial(&got.Cert) != tc.serial {
				t.Fatalf("Load: serial %s, want %s", serial(&got.Cert), tc.serial)
			}
			// What Load chose is now in place.
			again, err := Load(dir)
			if err != nil || serial(&again.Cert) != tc.serial {
				t.Fatalf("second Load: %v", err)
			}
			if tc.serial == newSerial && (!bytes.Equal(read(KeyFile), keyNew) || !bytes.Equal(read(CertFile), certNew)) {
				t.Errorf("the renewal was not moved into place")
			}
		})
	}
}

func TestRenewAt(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name     string
		nb, na   time.Time
		rnd      float64
		want     time.Time
		tolerant bool
	}{
		{"middle", t0, t0.Add(30 * day), 0.5, t0.Add(20 * day), false},
		{"earliest", t0, t0.Add(30 * day), 0, t0.Add(20*day - 36*time.Hour), false},
		{"latest", t0, t0.Add(30 * day), 0.999999, t0.Add(20*day + 36*time.Hour), true},
		{"clamped low", t0, t0.Add(30 * day), -3, t0.Add(20*day - 36*time.Hour), false},
		{"clamped high", t0, t0.Add(30 * day), 7, t0.Add(20*day + 36*time.Hour), false},
		{"short", t0, t0.Add(3 * time.Minute), 0.5, t0.Add(2 * time.Minute), false},
		{"empty", t0, t0, 0.5, t0, false},
		{"backwards", t0, t0.Add(-time.Hour), 0.5, t0, false},
	} {
		got := RenewAt(tc.nb, tc.na, tc.rnd)
		d := got.Sub(tc.want).Abs()
		if d > time.Millisecond && !(tc.tolerant && d < time.Minute) {
			t.Errorf("%s: RenewAt = %v, want %v", tc.name, got, tc.want)
		}
		if tc.na.After(tc.nb) && (!got.After(tc.nb) || !got.Before(tc.na)) {
			t.Errorf("%s: RenewAt %v is outside the lifetime", tc.name, got)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 2500 * time.Millisecond, 5 * time.Second},
		{2, 5 * time.Second, 10 * time.Second},
		{3, 10 * time.Second, 20 * time.Second},
		{8, 5 * time.Minute, 10 * time.Minute},
		{1000, 5 * time.Minute, 10 * time.Minute},
	} {
		for _, rnd := range []float64{0, 0.5, 0.999} {
			if d := retryDelay(tc.n, rnd); d < tc.min || d > tc.max {
				t.Errorf("retryDelay(%d, %v) = %v, want in [%v, %v]", tc.n, rnd, d, tc.min, tc.max)
			}
		}
	}
}

func TestRenewLoop(t *testing.T) {
	f := newFakeVault(t)
	// The first certificate is long past its renewal time.
	f.mu.Lock()
	f.validity = func(now time.Time) (time.Time, time.Time) { return now.Add(-10 * time.Hour), now.Add(time.Hour) }
	f.mu.Unlock()
	dir := t.TempDir()
	id := f.join(t, dir)
	old := serial(id.Certificate())
	f.mu.Lock()
	f.validity = func(now time.Time) (time.Time, time.Time) { return now.Add(-time.Minute), now.Add(time.Hour) }
	f.mu.Unlock()

	ctx, cancel := context.WithCancel(t.Context())
	logs := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		id.RenewLoop(ctx, "", dir, func(format string, args ...any) {
			select {
			case logs <- format:
			default:
			}
		})
	}()
	select {
	case msg := <-logs:
		if !strings.HasPrefix(msg, "renewed agent identity") || strings.Contains(msg, "already due") {
			t.Errorf("RenewLoop logged %q", msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("RenewLoop logged nothing within 30s (%d renewals seen by the vault)", f.renews.Load())
	}
	cancel()
	<-done
	if serial(id.Certificate()) == old || f.renews.Load() != 1 {
		t.Errorf("RenewLoop: serial %s (was %s), %d renewals", serial(id.Certificate()), old, f.renews.Load())
	}
	if got, err := Load(dir); err != nil || serial(&got.Cert) != serial(id.Certificate()) {
		t.Errorf("Load after RenewLoop: %v", err)
	}
}
