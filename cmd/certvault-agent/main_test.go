package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStaticAndIndependent: the agent builds with CGO_ENABLED=0 and
// imports nothing of the vault's server code, so it runs on any Linux VM.
func TestStaticAndIndependent(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/certvault/certvault/vault") || strings.HasPrefix(dep, "github.com/certvault/certvault/raftstore") {
			t.Errorf("certvault-agent imports %s", dep)
		}
		if dep == "runtime/cgo" {
			t.Error("certvault-agent needs cgo")
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "certvault-agent join --vault URL") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"join", "--vault", "https://x"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "required") {
		t.Fatalf("join without token: %d %q", code, errOut.String())
	}
}

// TestCheckConfigManagedIdentity: check-config names the managed
// identity's users and addresses, and --help tells how an application
// uses it.
func TestCheckConfigManagedIdentity(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.yaml")
	data := "vault: https://vault.example:8443\nca_file: " + ca + "\nstate_dir: " + filepath.Join(dir, "state") + `
managed_identity:
  listen: 127.0.0.1:50342
  socket: /run/certvault-agent/identity.sock
  identities:
    - {user: root, service_principal: billing, env_file: /run/certvault-agent/identity/root.env}
`
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, errOut.String())
	}
	want := cfg + ": ok, 0 certificate and 0 secret bindings, managed identity for 1 user on http://127.0.0.1:50342/msi/token and /run/certvault-agent/identity.sock\n"
	if out.String() != want {
		t.Fatalf("check-config printed %q, want %q", out.String(), want)
	}
	out.Reset()
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "IDENTITY_ENDPOINT=http://LISTEN/msi/token") {
		t.Fatalf("--help does not tell how to use the managed identity: %q", out.String())
	}
}
