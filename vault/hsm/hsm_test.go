package hsm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certvault/certvault/test/softhsmtest"
	"github.com/certvault/certvault/vault/hsm"
)

func open(t *testing.T) (*hsm.HSM, *softhsmtest.Token) {
	t.Helper()
	if !hsm.Built {
		t.Skip("built without cgo")
	}
	tok := softhsmtest.New(t, "hsm-test")
	h, err := hsm.Open(hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PINFile: tok.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, tok
}

// TestKeysStayInTheToken generates EC and RSA keys, signs with them, finds
// them again by ID, and checks they are sensitive and not extractable.
func TestKeysStayInTheToken(t *testing.T) {
	h, _ := open(t)
	digest := sha256.Sum256([]byte("certvault"))
	ec, err := h.GenerateEC([]byte("ec-1"), elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ec.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(ec.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatalf("EC signature: %v", err)
	}
	rk, err := h.GenerateRSA([]byte("rsa-1"), 2048)
	if err != nil {
		t.Fatal(err)
	}
	sig, err = rk.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil || rsa.VerifyPKCS1v15(rk.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig) != nil {
		t.Fatalf("RSA signature: %v", err)
	}
	if _, ok := rk.(crypto.Decrypter); !ok {
		t.Fatal("an RSA HSM key does not decrypt")
	}
	for _, id := range []string{"ec-1", "rsa-1"} {
		k, err := h.FindKey([]byte(id))
		if err != nil {
			t.Fatalf("find %s: %v", id, err)
		}
		sensitive, extractable, err := h.KeyAttributes([]byte(id))
		if err != nil || !sensitive || extractable {
			t.Fatalf("%s: sensitive %v extractable %v err %v", id, sensitive, extractable, err)
		}
		if id == "rsa-1" {
			if _, ok := k.(crypto.Decrypter); !ok {
				t.Fatal("the RSA key found again does not decrypt")
			}
		}
	}
	if _, err := h.FindKey([]byte("nope")); err == nil {
		t.Fatal("found a key that does not exist")
	}
	if err := h.DeleteKey([]byte("ec-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.FindKey([]byte("ec-1")); err == nil {
		t.Fatal("a deleted key is still found")
	}
}

// TestSealAEAD round-trips data through AES-GCM in the token.
func TestSealAEAD(t *testing.T) {
	h, _ := open(t)
	if _, err := h.SealAEAD([]byte("seal"), false); err == nil {
		t.Fatal("a missing seal key was not reported")
	}
	a, err := h.SealAEAD([]byte("seal"), true)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	rand.Read(nonce)
	ct := a.Seal(nil, nonce, []byte("data key"), []byte("aad"))
	b, err := h.SealAEAD([]byte("seal"), false)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := b.Open(nil, nonce, ct, []byte("aad"))
	if err != nil || !bytes.Equal(pt, []byte("data key")) {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := b.Open(nil, nonce, ct, []byte("other")); err == nil {
		t.Fatal("opened with the wrong AAD")
	}
}

// TestOpenErrors: a wrong PIN, an unknown token and a missing PIN file
// each say what to fix.
func TestOpenErrors(t *testing.T) {
	if !hsm.Built {
		t.Skip("built without cgo")
	}
	// No context is open in this process yet: PKCS#11 keeps one login per
	// application, and a second login with a wrong PIN would find the
	// user logged in already.
	tok := softhsmtest.New(t, "hsm-errors")
	bad := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(bad, []byte("000000\n"), 0o600); err != nil {
		t.Fatalf("write the wrong PIN file: %v", err)
	}
	for _, tc := range []struct {
		cfg  hsm.Config
		want string
	}{
		{hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PINFile: bad}, "refused the PIN"},
		{hsm.Config{Module: tok.Module, TokenLabel: "no-such-token", PINFile: tok.PINFile}, "no PKCS#11 token labelled"},
		{hsm.Config{Module: tok.Module, TokenLabel: tok.Label}, "--pkcs11-pin-file"},
		{hsm.Config{Module: "/nonexistent.so", TokenLabel: tok.Label, PINFile: tok.PINFile}, "--pkcs11-module"},
	} {
		_, err := hsm.Open(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v): %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
