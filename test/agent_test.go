package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/test/nginxtest"
	"github.com/certvault/certvault/test/testcluster"
)

// agentProc is a running certvault-agent.
type agentProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startAgent(t *testing.T, bin, cfg string) *agentProc {
	t.Helper()
	a := &agentProc{cmd: exec.Command(bin, "run", "--config", cfg, "--log-level", "debug"), log: &lockedBuffer{}, done: make(chan struct{})}
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("--- agent log ---\n%s", a.log.String())
		}
	})
	return a
}

func (a *agentProc) kill() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// joinAgent runs certvault-agent join into state and returns the agent's ID.
func joinAgent(t *testing.T, bin, vaultURL, tok, fp, state string, extra ...string) string {
	t.Helper()
	args := append([]string{"join", "--vault", vaultURL, "--token", tok, "--ca-fingerprint", fp, "--state-dir", state}, extra...)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("certvault-agent join: %v\n%s", err, out)
	}
	var id struct {
		AgentID string `json:"agent_id"`
	}
	data, err := os.ReadFile(filepath.Join(state, "identity.json"))
	if err != nil {
		t.Fatalf("read file: %v", err)
	}
	if err := json.Unmarshal(data, &id); err != nil || id.AgentID == "" {
		t.Fatalf("identity.json after join: %q %v", data, err)
	}
	return id.AgentID
}

// placeholder writes a self-signed certificate and key, so that nginx can
// start before the agent installs the real one.
func placeholder(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "placeholder"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"www.example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o755); err != nil {
		t.Fatalf("make directory: %v", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatalf("write %s: %v", certFile, err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatalf("write %s: %v", keyFile, err)
	}
}

// currentSerial returns the serial (upper-case hex) of certificate
// name's current version, from the CLI.
func currentSerial(t *testing.T, c *testcluster.Cluster, name string) string {
	t.Helper()
	out := mustCLI(t, c, "cert", "get", name, "-o", "json")
	var cert struct {
		Cer []byte `json:"cer"`
	}
	if err := json.Unmarshal([]byte(out), &cert); err != nil || len(cert.Cer) == 0 {
		t.Fatalf("cert get %s: %q", name, out)
	}
	leaf, err := x509.ParseCertificate(cert.Cer)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(leaf.SerialNumber.Text(16))
}

func servedSerial(ng *nginxtest.Server) string {
	leaf, err := ng.Served("www.example.com")
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.ToUpper(leaf.SerialNumber.Text(16))
}

// TestAgentNginx is the agent against a real nginx: first install, a
// rotation picked up and served within seconds, a broken reload rolled
// back (the old serial stays served, the failure is reported and not
// retried), the vault stopped (the agent keeps serving and puts back a
// deleted key), the vault back (the agent catches up), PKCS#12 output,
// modes and owners, and a secret binding.
func TestAgentNginx(t *testing.T) {
	t.Parallel()
	nginxtest.Binary(t)
	c := testcluster.Start(t, 1, testcluster.Options{})
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	mustCLI(t, c, "cert", "policy", "new", "--subject", "CN=www.example.com", "--san", "www.example.com", "--out", policy)
	rotate := func() string {
		t.Helper()
		mustCLI(t, c, "cert", "create", "www", "--policy", policy)
		mustCLI(t, c, "cert", "operation", "www", "--wait")
		return currentSerial(t, c, "www")
	}
	v1 := rotate()
	dbValue := "db-password-value-for-agent-test"
	testcluster.KnownSecret(dbValue)
	mustCLI(t, c, "secret", "set", "db-password", "--value", dbValue)
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:web", "--scope", "/certificates/www")
	mustCLI(t, c, "role", "assign", "Secrets User", "--to", "group:web", "--scope", "/secrets/db-password")

	tok, fp, _ := agentJoinToken(t, c, "--group", "web")
	state := filepath.Join(dir, "state")
	joinAgent(t, agentBin, c.Nodes[0].URL(), tok, fp, state, "--name", "web-1")

	tlsDir := filepath.Join(dir, "tls", "www")
	placeholder(t, filepath.Join(tlsDir, "fullchain.pem"), filepath.Join(tlsDir, "key.pem"))
	ng := nginxtest.Start(t, testcluster.FreeAddr(t), "www.example.com", filepath.Join(tlsDir, "fullchain.pem"), filepath.Join(tlsDir, "key.pem"))
	secretFile := filepath.Join(dir, "app", "db-password")
	if err := os.MkdirAll(filepath.Dir(secretFile), 0o755); err != nil {
		t.Fatalf("make directory: %v", err)
	}
	group := "www-data"
	if _, err := user.LookupGroup(group); err != nil {
		group = ""
	}
	reload, err := json.Marshal(ng.ReloadArgv())
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	cfg := filepath.Join(dir, "agent.yaml")
	writeCfg := func() {
		data := fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
certificates:
  - name: www
    dir: %s
    files: {cert: cert.pem, chain: chain.pem, fullchain: fullchain.pem, key: key.pem, pfx: www.pfx}
    mode: "0640"
    %s
    reload: %s
    check: {tls: "%s", server_name: www.example.com}
    timeout: 10s
secrets:
  - name: db-password
    file: %s
    mode: "0400"
`, c.Nodes[0].URL(), c.CACert, state, tlsDir, map[bool]string{true: "group: " + group, false: ""}[group != ""], reload, ng.Addr, secretFile)
		if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg()
	if out, err := exec.Command(agentBin, "check-config", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	ag := startAgent(t, agentBin, cfg)

	// First install: nginx serves the vault's certificate.
	waitFor(t, 30*time.Second, "nginx serves version 1", func() bool { return servedSerial(ng) == v1 })
	key := filepath.Join(tlsDir, "key.pem")
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("key.pem mode: %v %v", fi, err)
	}
	if link, err := os.Readlink(key); err != nil || !strings.Contains(link, ".certvault/www/current/") {
		t.Fatalf("key.pem should be a link into the current version: %q %v", link, err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			t.Fatalf("LookupGroup: %v", err)
		}
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			t.Fatalf("parse integer: %v", err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid || int(st.Uid) != os.Getuid() {
			t.Fatalf("key.pem owner %d:%d, want %d:%d", st.Uid, st.Gid, os.Getuid(), gid)
		}
	}
	if out, err := exec.Command("openssl", "pkcs12", "-in", filepath.Join(tlsDir, "www.pfx"), "-passin", "pass:", "-nokeys").CombinedOutput(); err != nil || !strings.Contains(string(out), "BEGIN CERTIFICATE") {
		t.Fatalf("openssl pkcs12: %v\n%s", err, out)
	}
	waitUntil(t, 30*time.Second, "the secret file with the value, mode 0400", func() (bool, string) {
		data, err := os.ReadFile(secretFile)
		if err != nil {
			return false, err.Error()
		}
		fi, err := os.Stat(secretFile)
		if err != nil {
			return false, err.Error()
		}
		return string(data) == dbValue && fi.Mode().Perm() == 0o400, fmt.Sprintf("%d bytes, mode %v", len(data), fi.Mode().Perm())
	})

	// Rotation: the new serial is served within seconds.
	start := time.Now()
	v2 := rotate()
	waitFor(t, 30*time.Second, "nginx serves version 2", func() bool { return servedSerial(ng) == v2 })
	t.Logf("rotation: new version served by nginx %v after its commit (CLI round trips included)", time.Since(start).Round(time.Millisecond))
	agentID := strings.TrimSpace(mustCLI(t, c, "agent", "list", "-o", "json"))
	var agents struct{ Value []struct{ ID string } }
	if err := json.Unmarshal([]byte(agentID), &agents); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, agentID)
	}
	if len(agents.Value) != 1 {
		t.Fatalf("agent list: %s", agentID)
	}
	waitFor(t, 30*time.Second, "agent status shows the install", func() bool {
		out, _, _ := c.CLI("agent", "status", agents.Value[0].ID)
		return strings.Contains(out, "certificates/www") && strings.Contains(out, "installed")
	})
	if out := mustCLI(t, c, "agent", "list", "--certificate", "www"); !strings.Contains(out, "web-1") || !strings.Contains(out, "certificates/www") || !strings.Contains(out, "installed") {
		t.Fatalf("agent list --certificate www: %q", out)
	}
	// The evidence report says where the certificate went.
	rep := mustCLI(t, c, "report", "--format", "json")
	if !strings.Contains(rep, `"agent_name": "web-1"`) || !strings.Contains(rep, `"result": "installed"`) {
		t.Fatalf("report deliveries: %s", rep)
	}

	// A reload that leaves nginx on its old configuration: the check
	// fails, the agent switches back and reports it, once.
	ng.BreakConfig()
	v3 := rotate()
	waitFor(t, 40*time.Second, "rollback reported", func() bool {
		out, _, _ := c.CLI("agent", "status", agents.Value[0].ID)
		return strings.Contains(out, "rolled-back")
	})
	if got := servedSerial(ng); got != v2 {
		t.Fatalf("after the rollback nginx serves %s, want the old %s", got, v2)
	}
	link, err := os.Readlink(filepath.Join(tlsDir, ".certvault", "www", "current"))
	if err != nil {
		t.Fatalf("read the current link after the rollback: %v", err)
	}
	if strings.Contains(link, strings.ToLower(v3)) {
		t.Fatalf("current still points at the failed version: %s", link)
	}
	out, err := exec.Command(agentBin, "status", "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rolled-back") {
		t.Fatalf("certvault-agent status: %v\n%s", err, out)
	}
	ng.FixConfig()

	// A changed configuration is picked up without a restart: a second
	// secret binding appears; a broken one is refused and the running
	// configuration kept.
	second := filepath.Join(dir, "app2", "db-password")
	if err := os.MkdirAll(filepath.Dir(second), 0o755); err != nil {
		t.Fatalf("make directory: %v", err)
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatalf("read file: %v", err)
	}
	if err := os.WriteFile(cfg, append(data, []byte(fmt.Sprintf("  - name: db-password\n    file: %s\n", second))...), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}
	waitFor(t, 30*time.Second, "the new binding from the changed configuration", func() bool {
		got, err := os.ReadFile(second)
		return err == nil && string(got) == dbValue
	})
	// A reload is also the operator's "try again": with nginx fixed, the
	// version that failed goes in.
	waitFor(t, 30*time.Second, "the failed version retried after the reload", func() bool { return servedSerial(ng) == v3 })
	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatalf("read file: %v", err)
	}
	if err := os.WriteFile(cfg, append(good, []byte("  - name: bad_name\n")...), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}
	waitFor(t, 30*time.Second, "the broken configuration refused", func() bool {
		return strings.Contains(ag.log.String(), "does not load; keeping the running one")
	})
	if err := os.WriteFile(cfg, good, 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}

	// The vault stops: the agent keeps serving and puts back a deleted key.
	c.Nodes[0].Stop()
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "key.pem put back while the vault is down", func() bool {
		_, err := os.Stat(key)
		return err == nil
	})
	if got := servedSerial(ng); got != v3 {
		t.Fatalf("with the vault down nginx serves %s, want %s", got, v3)
	}
	// The vault returns: the agent catches up with a new version.
	c.Nodes[0].Restart()
	c.WaitReady(c.Nodes[0])
	v4 := rotate()
	waitFor(t, 60*time.Second, "nginx serves version 4 after the outage", func() bool { return servedSerial(ng) == v4 })
}

// TestAgentKilledMidInstall SIGKILLs the agent at random points while it
// installs new versions, 50 times: every time, the files readers see are
// wholly one version (the key matches the certificate, the full chain
// starts with it, the PKCS#12 holds it), and the next agent finishes the job.
func TestAgentKilledMidInstall(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:web", "--scope", "/certificates/www")
	cl := c.Client(c.Nodes[0])
	policy := map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"},
		"key_props":  map[string]any{"kty": "EC", "crv": "P-256"},
		"x509_props": map[string]any{"subject": "CN=www.example.com", "sans": map[string]any{"dns_names": []string{"www.example.com"}}}}}
	create := func() {
		t.Helper()
		if code := status(t, cl, "POST", "/certificates/www/create?api-version=7.6", policy); code != 202 {
			t.Fatalf("create: %d", code)
		}
	}
	create()
	tok, fp, _ := agentJoinToken(t, c, "--group", "web")
	state := filepath.Join(dir, "state")
	joinAgent(t, agentBin, c.Nodes[0].URL(), tok, fp, state)
	tlsDir := filepath.Join(dir, "tls")
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
certificates:
  - name: www
    dir: %s
    files: {cert: cert.pem, chain: chain.pem, fullchain: fullchain.pem, key: key.pem, combined: combined.pem, pfx: www.pfx}
`, c.Nodes[0].URL(), c.CACert, state, tlsDir)), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}

	// consistent checks that every file is of one version and returns its serial.
	consistent := func() (string, bool) {
		read := func(name string) []byte {
			data, err := os.ReadFile(filepath.Join(tlsDir, name))
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			return data
		}
		certs := func(data []byte) []*x509.Certificate {
			var out []*x509.Certificate
			for {
				var b *pem.Block
				if b, data = pem.Decode(data); b == nil {
					return out
				}
				if b.Type == "CERTIFICATE" {
					cert, err := x509.ParseCertificate(b.Bytes)
					if err != nil {
						t.Fatalf("parse certificate: %v", err)
					}
					out = append(out, cert)
				}
			}
		}
		leaf := certs(read("cert.pem"))[0]
		kb, _ := pem.Decode(read("key.pem"))
		key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			t.Fatalf("key.pem: %v", err)
		}
		pub, err := x509.MarshalPKIXPublicKey(key.(*ecdsa.PrivateKey).Public())
		if err != nil {
			t.Fatalf("MarshalPKIXPublicKey: %v", err)
		}
		leafPub, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
		if err != nil {
			t.Fatalf("MarshalPKIXPublicKey: %v", err)
		}
		full := certs(read("fullchain.pem"))
		comb := certs(read("combined.pem"))
		ok := string(pub) == string(leafPub) && len(full) > 0 && full[0].Equal(leaf) && len(comb) > 0 && comb[0].Equal(leaf) &&
			strings.Contains(string(read("combined.pem")), string(read("key.pem")))
		return leaf.SerialNumber.Text(16), ok
	}

	ag := startAgent(t, agentBin, cfg)
	waitFor(t, 30*time.Second, "first install", func() bool {
		_, err := os.Stat(filepath.Join(tlsDir, "cert.pem"))
		return err == nil
	})
	seen := map[string]bool{}
	for i := range 50 {
		create()
		time.Sleep(time.Duration(mrand.N(40)) * time.Millisecond) // a random point of the install
		ag.kill()
		serial, ok := consistent()
		if !ok {
			t.Fatalf("run %d: the files mix versions after a SIGKILL", i)
		}
		seen[serial] = true
		ag = startAgent(t, agentBin, cfg)
	}
	// The last agent finishes: the current version is installed.
	want := strings.ToLower(currentSerial(t, c, "www"))
	waitFor(t, 30*time.Second, "the last version installed", func() bool {
		s, ok := consistent()
		return ok && s == want
	})
	t.Logf("50 kills: the files held %d different versions, each whole", len(seen))
}

// TestAgentHealthCheckRollback: a reload that succeeds but leaves the old
// certificate served fails the health check; the agent switches the files
// back, reports the rollback, and does not try that version again.
func TestAgentHealthCheckRollback(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:web", "--scope", "/certificates/www")
	cl := c.Client(c.Nodes[0])
	policy := map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"},
		"x509_props": map[string]any{"subject": "CN=www.example.com", "sans": map[string]any{"dns_names": []string{"www.example.com"}}}}}
	rotate := func() *x509.Certificate {
		t.Helper()
		if code := status(t, cl, "POST", "/certificates/www/create?api-version=7.6", policy); code != 202 {
			t.Fatalf("create: %d", code)
		}
		out := mustCLI(t, c, "cert", "get", "www", "-o", "json")
		var cert struct {
			Cer []byte `json:"cer"`
		}
		if err := json.Unmarshal([]byte(out), &cert); err != nil {
			t.Fatalf("decode JSON: %v\n%s", err, out)
		}
		leaf, err := x509.ParseCertificate(cert.Cer)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	// A TLS server that serves whatever certificate the test says: the
	// "service" the agent's check looks at.
	var served atomic.Pointer[tls.Certificate]
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return served.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { conn.(*tls.Conn).Handshake(); conn.Close() }()
		}
	}()
	serve := func(leaf *x509.Certificate) {
		served.Store(&tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key})
	}

	v1 := rotate()
	serve(v1)
	tok, fp, _ := agentJoinToken(t, c, "--group", "web")
	state := filepath.Join(dir, "state")
	joinAgent(t, agentBin, c.Nodes[0].URL(), tok, fp, state)
	tlsDir := filepath.Join(dir, "tls")
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
certificates:
  - name: www
    dir: %s
    files: {cert: cert.pem, key: key.pem}
    reload: ["true"]
    check: {tls: "%s", server_name: www.example.com}
    timeout: 2s
`, c.Nodes[0].URL(), c.CACert, state, tlsDir, ln.Addr())), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}
	ag := startAgent(t, agentBin, cfg)
	certSerial := func() string {
		data, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem"))
		if err != nil {
			return ""
		}
		b, _ := pem.Decode(data)
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parse certificate: %v", err)
		}
		return leaf.SerialNumber.String()
	}
	waitFor(t, 30*time.Second, "version 1 installed", func() bool { return certSerial() == v1.SerialNumber.String() })

	v2 := rotate() // the service keeps serving v1: the check fails
	waitFor(t, 30*time.Second, "the rollback", func() bool { return strings.Contains(ag.log.String(), "new version failed; rolled back") })
	if got := certSerial(); got != v1.SerialNumber.String() {
		t.Fatalf("after the rollback cert.pem is %s, want v1 %s", got, v1.SerialNumber)
	}
	if !strings.Contains(ag.log.String(), "health check") {
		t.Fatalf("the rollback should name the health check:\n%s", ag.log.String())
	}
	// A good version afterwards goes in; the bad one was tried once.
	v3 := rotate()
	serve(v3)
	waitFor(t, 30*time.Second, "version 3 installed", func() bool { return certSerial() == v3.SerialNumber.String() })
	if n := strings.Count(ag.log.String(), "new version failed; rolled back"); n != 1 {
		t.Fatalf("the failed version %s was tried %d times, want once", v2.SerialNumber, n)
	}
	out := mustCLI(t, c, "report", "--format", "json")
	if !strings.Contains(out, `"result": "rolled-back"`) {
		t.Fatalf("the report does not show the rollback: %s", out)
	}
	// The trail has the agent's fetches and reports, and only the polls
	// that brought something new, not its heartbeats.
	var agents struct{ Value []struct{ ID string } }
	if err := json.Unmarshal([]byte(mustCLI(t, c, "agent", "list", "-o", "json")), &agents); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	ops := map[string]int{}
	waitFor(t, 30*time.Second, "the third report in the trail", func() bool {
		var recs struct{ Value []struct{ Operation string } }
		if err := json.Unmarshal([]byte(mustCLI(t, c, "audit", "list", "--principal", "agent:"+agents.Value[0].ID, "-o", "json")), &recs); err != nil {
			t.Fatalf("decode JSON: %v", err)
		}
		clear(ops)
		for _, r := range recs.Value {
			ops[r.Operation]++
		}
		return ops["POST /v1/agents/report"] >= 3
	})
	if ops["GET /secrets/{name}/{version}"] < 3 || ops["GET /v1/agents/watch"] > 6 {
		t.Fatalf("the agent's audit records: %v", ops)
	}
}
