// Package pebbletest builds and starts a real Pebble ACME server and
// pebble-challtestsrv (its test DNS server) for integration tests, from
// github.com/letsencrypt/pebble/v2 at a pinned version. The binaries are
// built with the go command through the module proxy (no binary
// downloads) into a per-user cache, outside this module's go.mod.
package pebbletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// Version is the Pebble release the tests run.
const Version = "v2.10.3"

const module = "github.com/letsencrypt/pebble/v2"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Build installs pebble and pebble-challtestsrv into the user cache
// (once per machine and version) and returns their paths.
func Build(t testing.TB) (pebble, challtestsrv string) {
	t.Helper()
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "certvault-test", "pebble-"+Version)
		if exists(filepath.Join(dir, "pebble")) && exists(filepath.Join(dir, "pebble-challtestsrv")) {
			buildDir = dir
			return
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			buildErr = err
			return
		}
		// Build into a fresh directory, then rename it into place, so
		// that concurrent test binaries never see half a build.
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "pebble-build-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", module+"/cmd/pebble@"+Version, module+"/cmd/pebble-challtestsrv@"+Version)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "CGO_ENABLED=0")
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go install pebble %s: %v\n%s", Version, err, out)
			return
		}
		if err := os.Rename(tmp, dir); err != nil && !exists(filepath.Join(dir, "pebble")) {
			buildErr = err
			return
		}
		buildDir = dir
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "pebble"), filepath.Join(buildDir, "pebble-challtestsrv")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Options configure a Pebble.
type Options struct {
	// EAB maps External Account Binding key ids to base64url HMAC keys.
	// When it is not empty, Pebble requires EAB on new accounts.
	EAB map[string]string
	// DNSServer, when set, is the DNS server (HOST:PORT) Pebble validates
	// dns-01 challenges against instead of challtestsrv's (e.g. a BIND
	// the vault updates with RFC 2136). Pebble queries it over TCP.
	DNSServer string
}

// Server is a running Pebble with its challenge test server.
type Server struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// ServerCAFile is the PEM of the CA that signed Pebble's HTTPS
	// certificate (give it to the vault as --directory-ca-file).
	ServerCAFile string
	ServerCAPEM  []byte
	// ManagementURL is Pebble's management API (roots, intermediates).
	ManagementURL string
	// DNSAddr is challtestsrv's DNS server (HOST:PORT): Pebble resolves
	// through it, and a propagation check should query it.
	DNSAddr string
	// ChallSrvURL is challtestsrv's management API (set-txt, clear-txt).
	ChallSrvURL string

	dir        string
	pebbleLog  *bytes.Buffer
	challLog   *bytes.Buffer
	mu         sync.Mutex
	httpClient *http.Client
}

// Start starts challtestsrv and Pebble on free 127.0.0.1 ports; both are
// stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	pebbleBin, challBin := Build(t)
	dir := t.TempDir()
	s := &Server{dir: dir, pebbleLog: &bytes.Buffer{}, challLog: &bytes.Buffer{}}

	caPEM, certFile, keyFile := makeServerCert(t, dir)
	s.ServerCAPEM = caPEM
	s.ServerCAFile = filepath.Join(dir, "pebble-server-ca.pem")
	if err := os.WriteFile(s.ServerCAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	s.httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	s.DNSAddr = freeUDPTCPAddr(t)
	challMgmt := testcluster.FreeAddr(t)
	s.ChallSrvURL = "http://" + challMgmt
	chall := exec.Command(challBin,
		"-dnsserver", s.DNSAddr, "-management", challMgmt,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	chall.Stdout, chall.Stderr = syncWriter{&s.mu, s.challLog}, syncWriter{&s.mu, s.challLog}
	startProc(t, chall, "pebble-challtestsrv")

	acmeAddr, mgmtAddr := testcluster.FreeAddr(t), testcluster.FreeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  acmeAddr,
		"managementListenAddress":        mgmtAddr,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       5002,
		"tlsPort":                        5001,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": len(opts.EAB) > 0,
		"externalAccountMACKeys":         opts.EAB,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			"default":    map[string]any{"description": "90 days", "validityPeriod": 7776000},
			"shortlived": map[string]any{"description": "6 days", "validityPeriod": 518400},
		},
	}}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	resolver := s.DNSAddr
	if opts.DNSServer != "" {
		resolver = opts.DNSServer
	}
	peb := exec.Command(pebbleBin, "-config", cfgFile, "-dnsserver", resolver)
	peb.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	peb.Stdout, peb.Stderr = syncWriter{&s.mu, s.pebbleLog}, syncWriter{&s.mu, s.pebbleLog}
	startProc(t, peb, "pebble")
	s.DirectoryURL = "https://" + acmeAddr + "/dir"
	s.ManagementURL = "https://" + mgmtAddr

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- pebble log ---\n%s", tail(s.Logs(), 6000))
		}
	})
	s.waitReady(t, chall, peb)
	return s
}

// waitReady polls both servers until they answer.
func (s *Server) waitReady(t testing.TB, procs ...*exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := s.httpClient.Get(s.DirectoryURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if resp2, err := http.Post(s.ChallSrvURL+"/clear-txt", "application/json", strings.NewReader(`{"host":"ready.check."}`)); err == nil {
					resp2.Body.Close()
					return
				}
			}
		}
		for _, p := range procs {
			if p.ProcessState != nil {
				t.Fatalf("%s exited: %s", p.Path, tail(s.Logs(), 2000))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("pebble did not answer within 30s:\n%s", tail(s.Logs(), 2000))
}

// HTTPClient returns a client that trusts Pebble's HTTPS certificate.
func (s *Server) HTTPClient() *http.Client { return s.httpClient }

// Logs returns both servers' output so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "pebble:\n" + s.pebbleLog.String() + "\nchalltestsrv:\n" + s.challLog.String()
}

// SetTXT publishes a TXT record in challtestsrv's DNS.
func (s *Server) SetTXT(t testing.TB, fqdn, value string) {
	t.Helper()
	s.challPost(t, "/set-txt", map[string]string{"host": dotted(fqdn), "value": value})
}

// ClearTXT removes the TXT records of fqdn.
func (s *Server) ClearTXT(t testing.TB, fqdn string) {
	t.Helper()
	s.challPost(t, "/clear-txt", map[string]string{"host": dotted(fqdn)})
}

func (s *Server) challPost(t testing.TB, path string, body any) {
	t.Helper()
	data, _ := json.Marshal(body)
	resp, err := http.Post(s.ChallSrvURL+path, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("challtestsrv %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challtestsrv %s: status %d", path, resp.StatusCode)
	}
}

// Roots returns Pebble's root certificate (it makes a new one per run).
func (s *Server) Roots(t testing.TB) []*x509.Certificate {
	t.Helper()
	return s.mgmtCerts(t, "/roots/0")
}

// Intermediates returns Pebble's intermediate certificate.
func (s *Server) Intermediates(t testing.TB) []*x509.Certificate {
	t.Helper()
	return s.mgmtCerts(t, "/intermediates/0")
}

func (s *Server) mgmtCerts(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	resp, err := s.httpClient.Get(s.ManagementURL + path)
	if err != nil {
		t.Fatalf("pebble management %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("pebble management %s: %v", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("pebble management %s: no certificate", path)
	}
	return out
}

// ExecSolver writes a program for the vault's exec DNS solver that
// publishes and removes records in this server's DNS (PROGRAM
// present|cleanup FQDN VALUE), appending each call to a log file, and
// returns the program's and the log's paths. While the file named by
// hold exists, present waits (up to two minutes) before it publishes:
// tests use it to stop an order mid-way.
func (s *Server) ExecSolver(t testing.TB) (program, callLog, hold string) {
	t.Helper()
	dir := t.TempDir()
	program = filepath.Join(dir, "challtxt.sh")
	callLog = filepath.Join(dir, "calls.log")
	hold = filepath.Join(dir, "hold")
	script := fmt.Sprintf(`#!/bin/sh
# exec DNS solver for pebble-challtestsrv: $0 present|cleanup FQDN VALUE
set -e
echo "$1 $2 $3" >> %[1]q
if [ "$1" = present ]; then
	i=0
	while [ -e %[2]q ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
	curl -sf -X POST -d "{\"host\":\"$2\",\"value\":\"$3\"}" %[3]q/set-txt
elif [ "$1" = cleanup ]; then
	curl -sf -X POST -d "{\"host\":\"$2\"}" %[3]q/clear-txt
else
	echo "unknown action $1" >&2; exit 2
fi
`, callLog, hold, s.ChallSrvURL)
	if err := os.WriteFile(program, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return program, callLog, hold
}

func dotted(fqdn string) string {
	if strings.HasSuffix(fqdn, ".") {
		return fqdn
	}
	return fqdn + "."
}

// startProc starts cmd and kills it when the test ends.
func startProc(t testing.TB, cmd *exec.Cmd, name string) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
}

// freeUDPTCPAddr returns a 127.0.0.1 port free for both UDP and TCP.
func freeUDPTCPAddr(t testing.TB) string {
	t.Helper()
	for range 50 {
		addr := testcluster.FreeAddr(t)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatal("no free UDP+TCP port")
	return ""
}

// makeServerCert writes a CA and a certificate for 127.0.0.1 and
// localhost signed by it, for Pebble's HTTPS listeners.
func makeServerCert(t testing.TB, dir string) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test server CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile, keyFile
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
