package test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certvault/certvault/test/softhsmtest"
	"github.com/certvault/certvault/test/testcluster"
)

// TestPKCS11Seal starts a vault whose data key is wrapped by a key inside
// a SoftHSM2 token: no seal key file is written, a secret survives a
// restart (the HSM unwraps the data key again), a wrong PIN or a missing
// token is refused at start with a message that says which, and a build
// without cgo says it has no PKCS#11 support.
func TestPKCS11Seal(t *testing.T) {
	tok := softhsmtest.New(t, "vault")
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: tok.Args()})
	n := c.Nodes[0]
	if _, err := os.Stat(filepath.Join(n.Dir, "seal.key")); err == nil {
		t.Fatal("the pkcs11 seal wrote a seal key file")
	}
	cl := c.Client(n)
	if st, resp := dpDo(t, cl, http.MethodPut, "/secrets/canary", map[string]string{"value": "sealed by the HSM"}); st != http.StatusOK {
		t.Fatalf("set: %d %v", st, resp)
	}
	n.Stop()
	n.Restart()
	c.WaitReady(n)
	st, resp := dpDo(t, cl, http.MethodGet, "/secrets/canary/", nil)
	if st != http.StatusOK || resp["value"] != "sealed by the HSM" {
		t.Fatalf("after restart: %d %v", st, resp)
	}

	daemon, _ := testcluster.Binaries(t)
	badPIN := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(badPIN, []byte("000000\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong PIN", []string{"--seal", "pkcs11", "--pkcs11-module", tok.Module, "--pkcs11-token-label", tok.Label, "--pkcs11-pin-file", badPIN}, "refused the PIN"},
		{"missing token", []string{"--seal", "pkcs11", "--pkcs11-module", tok.Module, "--pkcs11-token-label", "absent", "--pkcs11-pin-file", tok.PINFile}, `no PKCS#11 token labelled "absent"`},
		{"no module", []string{"--seal", "pkcs11"}, "--pkcs11-module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"--data", dir, "--listen", testcluster.FreeAddr(t), "--raft-listen", testcluster.FreeAddr(t)}, tc.args...)
			var stderr bytes.Buffer
			cmd := exec.Command(daemon, args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("certvaultd %s: %v, stderr %q; want exit 1 mentioning %q", strings.Join(tc.args, " "), err, stderr.String(), tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Fatalf("a refused start left files: %v", entries)
			}
		})
	}

	t.Run("built without cgo", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "certvaultd-nocgo")
		build := exec.Command("go", "build", "-o", bin, "./cmd/certvaultd")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{"--data", t.TempDir(), "--listen", testcluster.FreeAddr(t), "--raft-listen", testcluster.FreeAddr(t)}, tok.Args()...)...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "built without PKCS#11 support") {
			t.Fatalf("cgo-free certvaultd with --seal pkcs11: %v, %q", err, stderr.String())
		}
	})
}
