package test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/softhsmtest"
	"github.com/certvault/certvault/test/testcluster"
	"github.com/certvault/certvault/vault/certs"
	"github.com/certvault/certvault/vault/hsm"
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
	if err := os.WriteFile(badPIN, []byte("000000\n"), 0o600); err != nil {
		t.Fatalf("write %s: %v", badPIN, err)
	}
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
			entries, err := os.ReadDir(dir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("list the data directory after a refused start: %v", err)
			}
			if len(entries) > 0 {
				t.Fatalf("a refused start left files: %v", entries)
			}
		})
	}

	t.Run("HSM lost at run time", func(t *testing.T) {
		away := tok.Dir + ".away"
		if err := os.Rename(tok.Dir, away); err != nil {
			t.Fatal(err)
		}
		waitReadyz(t, c, n, http.StatusServiceUnavailable, "HSM unreachable")
		st, resp := dpDo(t, cl, http.MethodPut, "/secrets/during-loss", map[string]string{"value": "x"})
		if _, msg := errorOf(resp); st != http.StatusServiceUnavailable || !strings.Contains(msg, "writes are refused") {
			t.Fatalf("write without the HSM: %d %v", st, resp)
		}
		if err := os.Rename(away, tok.Dir); err != nil {
			t.Fatal(err)
		}
		waitReadyz(t, c, n, http.StatusOK, "")
		if st, resp := dpDo(t, cl, http.MethodPut, "/secrets/after-loss", map[string]string{"value": "x"}); st != http.StatusOK {
			t.Fatalf("write after the HSM came back: %d %v", st, resp)
		}
	})

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

// hsmKeyOf finds, in the token, the key pair whose public key is pub, and
// checks it is sensitive and not extractable.
func hsmKeyOf(t *testing.T, tok *softhsmtest.Token, pub crypto.PublicKey) {
	t.Helper()
	h, err := hsm.Open(hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PINFile: tok.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	pairs, err := h.KeyPairs()
	if err != nil {
		t.Fatal(err)
	}
	for id, p := range pairs {
		if certs.SamePublicKey(p, pub) {
			sensitive, extractable, err := h.KeyAttributes([]byte(id))
			if err != nil || !sensitive || extractable {
				t.Fatalf("HSM key %x: sensitive %v, extractable %v, %v", id, sensitive, extractable, err)
			}
			return
		}
	}
	t.Fatalf("no key in the token has the certificate's public key (%d key pairs there)", len(pairs))
}

// TestHSMCertificatesAndKeys issues EC-HSM and RSA-HSM certificates with
// the Self issuer and with an internal CA whose own key is in the HSM, on
// a 3-node cluster whose nodes share one SoftHSM2 token: every key object
// is in the token, sensitive and not extractable; managed secrets hold no
// private key; signatures made through the keys API on any node verify
// with crypto/x509 and with openssl; RSA-HSM keys unwrap in the HSM; an
// exportable HSM key is refused.
func TestHSMCertificatesAndKeys(t *testing.T) {
	tok := softhsmtest.New(t, "cluster")
	c := testcluster.Start(t, 3, testcluster.Options{ExtraArgs: tok.Args()})
	dir := t.TempDir()
	run := func(n *testcluster.Node, args ...string) string {
		t.Helper()
		out, errOut, code := c.CLIAt(n, args...)
		if code != 0 {
			t.Fatalf("certvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	leaf := func(n *testcluster.Node, name string) (*x509.Certificate, []*x509.Certificate) {
		t.Helper()
		st, resp := dpDo(t, c.Client(n), http.MethodGet, "/certificates/"+name+"/", nil)
		if st != http.StatusOK {
			t.Fatalf("get %s: %d %v", name, st, resp)
		}
		var chain []*x509.Certificate
		for _, v := range resp["x5c"].([]any) {
			der, err := base64.StdEncoding.DecodeString(v.(string))
			if err != nil {
				t.Fatalf("decode base64: %v", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, cert)
		}
		return chain[0], chain
	}

	// An internal CA whose key is generated in the HSM.
	run(c.Nodes[1], "issuer", "set", "hsm-ca", "--provider", "internal", "--ca-subject", "CN=HSM Issuing CA", "--ca-kty", "EC-HSM", "--ca-curve", "P-384")

	for i, tc := range []struct {
		name, issuer string
		flags        []string
	}{
		{"ec-self", "Self", []string{"--kty", "EC-HSM", "--curve", "P-256"}},
		{"rsa-self", "Self", []string{"--kty", "RSA-HSM", "--key-size", "2048"}},
		{"ec-ca", "hsm-ca", []string{"--kty", "EC-HSM", "--curve", "P-256"}},
		{"rsa-ca", "hsm-ca", []string{"--kty", "RSA-HSM", "--key-size", "3072"}},
	} {
		n := c.Nodes[i%3] // every node issues
		p := filepath.Join(dir, tc.name+".json")
		run(n, append([]string{"cert", "policy", "new", "--subject", "CN=" + tc.name + ".example.test", "--san", tc.name + ".example.test",
			"--issuer", tc.issuer, "--content-type", "application/x-pem-file", "--out", p}, tc.flags...)...)
		run(n, "cert", "create", tc.name, "--policy", p, "--wait")
		cert, chain := leaf(n, tc.name)
		hsmKeyOf(t, tok, cert.PublicKey)
		roots := x509.NewCertPool()
		roots.AddCert(chain[len(chain)-1])
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: tc.name + ".example.test"}); err != nil {
			t.Fatalf("%s: chain does not verify: %v", tc.name, err)
		}
		if tc.issuer == "hsm-ca" {
			hsmKeyOf(t, tok, chain[1].PublicKey) // the CA's key too
		}
		// The managed secret carries the chain but no private key.
		_, sec := dpDo(t, c.Client(n), http.MethodGet, "/secrets/"+tc.name+"/", nil)
		if v, _ := sec["value"].(string); !strings.Contains(v, "BEGIN CERTIFICATE") || strings.Contains(v, "PRIVATE KEY") {
			t.Fatalf("%s: managed secret: %q", tc.name, v)
		}
		// The managed key's kty says where it lives.
		_, k := dpDo(t, c.Client(n), http.MethodGet, "/keys/"+tc.name+"/", nil)
		if kty := k["key"].(map[string]any)["kty"]; !strings.HasSuffix(kty.(string), "-HSM") {
			t.Fatalf("%s: managed key kty %v", tc.name, kty)
		}
	}

	// Unknown issuer: the CSR is signed by the HSM key, the signed
	// certificate is merged back, and the key stays in the HSM.
	pu := filepath.Join(dir, "unknown.json")
	run(c.Nodes[2], "cert", "policy", "new", "--subject", "CN=csr.example.test", "--san", "csr.example.test",
		"--issuer", "Unknown", "--kty", "EC-HSM", "--curve", "P-256", "--out", pu)
	run(c.Nodes[2], "cert", "create", "csr", "--policy", pu)
	csrFile := filepath.Join(dir, "csr.pem")
	run(c.Nodes[0], "cert", "operation", "csr", "--csr-out", csrFile)
	csrPEM, err := os.ReadFile(csrFile)
	if err != nil {
		t.Fatalf("read file: %v", err)
	}
	blk, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR made with the HSM key: %v", err)
	}
	ca := newSDKCA(t)
	signed := ca.sign(t, csr.Subject, csr.DNSNames, csr.PublicKey)
	chainFile := filepath.Join(dir, "csr-chain.pem")
	if err := os.WriteFile(chainFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signed.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...), 0o644); err != nil {
		t.Fatalf("write %s: %v", chainFile, err)
	}
	run(c.Nodes[1], "cert", "merge", "csr", "--file", chainFile)
	merged, _ := leaf(c.Nodes[1], "csr")
	hsmKeyOf(t, tok, merged.PublicKey)

	// Sign a digest through the keys API on a node that did not create
	// the key; verify with crypto/x509 and with openssl.
	data := []byte("signed inside the HSM")
	digest := sha256.Sum256(data)
	for _, name := range []string{"ec-self", "rsa-self"} {
		cert, _ := leaf(c.Nodes[2], name)
		alg := "ES256"
		if name == "rsa-self" {
			alg = "RS256"
		}
		st, resp := dpDo(t, c.Client(c.Nodes[2]), http.MethodPost, "/keys/"+name+"/sign", map[string]string{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(digest[:])})
		if st != http.StatusOK {
			t.Fatalf("sign with %s: %d %v", name, st, resp)
		}
		sig, err := base64.RawURLEncoding.DecodeString(resp["value"].(string))
		if err != nil {
			t.Fatalf("decode base64: %v", err)
		}
		if alg == "ES256" {
			// JWS r||s to the DER form x509 and openssl verify.
			var s struct{ R, S *big.Int }
			s.R, s.S = new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if sig, err = asn1.Marshal(s); err != nil {
				t.Fatalf("%s: encode the signature as DER: %v", name, err)
			}
			if err := cert.CheckSignature(x509.ECDSAWithSHA256, data, sig); err != nil {
				t.Fatalf("%s: crypto/x509: %v", name, err)
			}
		} else if err := cert.CheckSignature(x509.SHA256WithRSA, data, sig); err != nil {
			t.Fatalf("%s: crypto/x509: %v", name, err)
		}
		pubDER, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
		if err != nil {
			t.Fatalf("MarshalPKIXPublicKey: %v", err)
		}
		pubFile, sigFile, dataFile := filepath.Join(dir, name+".pub"), filepath.Join(dir, name+".sig"), filepath.Join(dir, name+".data")
		if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
			t.Fatalf("write %s: %v", pubFile, err)
		}
		if err := os.WriteFile(sigFile, sig, 0o644); err != nil {
			t.Fatalf("write %s: %v", sigFile, err)
		}
		if err := os.WriteFile(dataFile, data, 0o644); err != nil {
			t.Fatalf("write %s: %v", dataFile, err)
		}
		if out, err := exec.Command("openssl", "dgst", "-sha256", "-verify", pubFile, "-signature", sigFile, dataFile).CombinedOutput(); err != nil || !strings.Contains(string(out), "Verified OK") {
			t.Fatalf("%s: openssl: %v %s", name, err, out)
		}
	}

	// A key of the keys API in the HSM: wrap outside, unwrap inside.
	cl := c.Client(c.Nodes[1])
	st, resp := dpDo(t, cl, http.MethodPost, "/keys/kek/create", map[string]any{"kty": "RSA-HSM", "key_size": 2048})
	if st != http.StatusOK || resp["key"].(map[string]any)["kty"] != "RSA-HSM" {
		t.Fatalf("create RSA-HSM key: %d %v", st, resp)
	}
	// (SoftHSM2 implements RSA-OAEP with SHA-1 only; a network HSM also
	// offers RSA-OAEP-256, and an HSM that refuses says so.)
	secret := base64.RawURLEncoding.EncodeToString([]byte("a data key to wrap"))
	for _, alg := range []string{"RSA-OAEP", "RSA1_5"} {
		st, resp = dpDo(t, cl, http.MethodPost, "/keys/kek/wrapkey", map[string]string{"alg": alg, "value": secret})
		if st != http.StatusOK {
			t.Fatalf("wrap %s: %d %v", alg, st, resp)
		}
		st, resp = dpDo(t, c.Client(c.Nodes[0]), http.MethodPost, "/keys/kek/unwrapkey", map[string]string{"alg": alg, "value": resp["value"].(string)})
		if st != http.StatusOK || resp["value"] != secret {
			t.Fatalf("unwrap %s in the HSM: %d %v", alg, st, resp)
		}
	}
	_, resp = dpDo(t, cl, http.MethodPost, "/keys/kek/wrapkey", map[string]string{"alg": "RSA-OAEP-256", "value": secret})
	st, resp = dpDo(t, cl, http.MethodPost, "/keys/kek/unwrapkey", map[string]string{"alg": "RSA-OAEP-256", "value": resp["value"].(string)})
	if _, msg := errorOf(resp); st == http.StatusOK && resp["value"] != secret || st != http.StatusOK && !strings.Contains(msg, "in the HSM") {
		t.Fatalf("RSA-OAEP-256 unwrap: %d %v", st, resp)
	}

	// HSM keys never leave the HSM: exportable is refused.
	st, resp = dpDo(t, cl, http.MethodPost, "/certificates/exp/create", map[string]any{"policy": map[string]any{
		"key_props": map[string]any{"kty": "EC-HSM", "crv": "P-256", "exportable": true}, "x509_props": map[string]any{"subject": "CN=exp"}, "issuer": map[string]any{"name": "Self"}}})
	if _, msg := errorOf(resp); st != http.StatusBadRequest || !strings.Contains(msg, "exportable") {
		t.Fatalf("exportable HSM key: %d %s", st, msg)
	}
}

// waitReadyz polls /readyz until it answers status with a body holding
// want, or fails after 30 s.
func waitReadyz(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, status int, want string) {
	t.Helper()
	hc := c.HTTPClient()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := hc.Get(n.URL() + "/readyz")
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			if err != nil {
				last = fmt.Sprintf("%d, body unread: %v", resp.StatusCode, err)
			}
			if resp.StatusCode == status && strings.Contains(string(b), want) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz never answered %d with %q; last: %s", status, want, last)
}
