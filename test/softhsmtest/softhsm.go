// Package softhsmtest makes SoftHSM2 tokens for tests: a token directory
// under t.TempDir(), a softhsm2.conf pointing at it (SOFTHSM2_CONF is set
// for the test and the processes it starts), and a token initialized with
// softhsm2-util with a user PIN in a file.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is Debian's SoftHSM2 PKCS#11 library (package softhsm2).
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Token is an initialized SoftHSM2 token.
type Token struct {
	Module  string
	Label   string
	PINFile string
	PIN     string
	// Conf is the softhsm2.conf that SOFTHSM2_CONF names.
	Conf string
	// Dir is the token directory.
	Dir string
}

// New initializes a token labelled label in a fresh directory and points
// SOFTHSM2_CONF at it for the rest of the test (t.Setenv: the test must
// not run in parallel). The install command is in the failure message
// when SoftHSM2 is missing.
func New(t testing.TB, label string) *Token {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("softhsm2-util not found: apt-get install -y softhsm2 (make deps does it)")
		}
		t.Skip("SoftHSM2 is not installed: sudo apt-get install -y softhsm2")
	}
	if _, err := os.Stat(Module); err != nil {
		t.Fatalf("%s: %v (apt-get install -y softhsm2)", Module, err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	data := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok := &Token{Module: Module, Label: label, PIN: "123456", Conf: conf, Dir: tokens, PINFile: filepath.Join(dir, "pin")}
	if err := os.WriteFile(tok.PINFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", "987654", "--pin", tok.PIN)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tok
}

// Args are certvaultd's flags for the token with the pkcs11 seal.
func (k *Token) Args() []string {
	return []string{"--seal", "pkcs11", "--pkcs11-module", k.Module, "--pkcs11-token-label", k.Label, "--pkcs11-pin-file", k.PINFile}
}
