package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/barrier"
	"github.com/certvault/certvault/vault/core"
)

func TestFileSealCreatesKeyOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	if _, err := barrier.LoadFileSeal(path, false); err == nil {
		t.Fatal("loading a missing seal key without create: got nil error")
	}
	s1, err := barrier.LoadFileSeal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("seal key mode: got %v, want 0600", fi.Mode().Perm())
	}
	s2, err := barrier.LoadFileSeal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s1.Wrap([]byte("data key"))
	if err != nil {
		t.Fatalf("wrap: %v", err)
	}
	got, err := s2.Unwrap(w)
	if err != nil || string(got) != "data key" {
		t.Fatalf("reloaded seal unwrap: got %q %v", got, err)
	}
}

func TestFileSealRejectsOtherKeysAndBadFiles(t *testing.T) {
	dir := t.TempDir()
	a, err := barrier.LoadFileSeal(filepath.Join(dir, "a"), true)
	if err != nil {
		t.Fatalf("load seal a: %v", err)
	}
	b, err := barrier.LoadFileSeal(filepath.Join(dir, "b"), true)
	if err != nil {
		t.Fatalf("load seal b: %v", err)
	}
	w, err := a.Wrap([]byte("k"))
	if err != nil {
		t.Fatalf("wrap: %v", err)
	}
	if _, err := b.Unwrap(w); !errors.Is(err, barrier.ErrSealMismatch) {
		t.Fatalf("unwrap with another seal: got %v, want ErrSealMismatch", err)
	}
	for name, content := range map[string]string{
		"no header":  "AAAA",
		"short key":  barrier.SealFileHeader + "AAAA",
		"not base64": barrier.SealFileHeader + "!!!",
	} {
		p := filepath.Join(dir, "bad")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatalf("%s: write the seal file: %v", name, err)
		}
		if _, err := barrier.LoadFileSeal(p, false); err == nil {
			t.Errorf("%s: got nil error", name)
		}
	}
}

func TestBarrier(t *testing.T) {
	seal, err := barrier.LoadFileSeal(filepath.Join(t.TempDir(), "seal.key"), true)
	if err != nil {
		t.Fatalf("load seal: %v", err)
	}
	kr, _, err := barrier.NewKeyring(seal)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(kr)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	b, err := barrier.OpenKeyring(data, seal)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("correct horse battery staple")
	ct, err := b.Encrypt("secrets/x/v/1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if pt, err := b.Decrypt("secrets/x/v/1", ct); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("decrypt: got %q %v", pt, err)
	}
	// The storage key is authenticated: a value moved elsewhere fails.
	if _, err := b.Decrypt("secrets/y/v/1", ct); !errors.Is(err, barrier.ErrDecrypt) {
		t.Fatalf("decrypt under another key: got %v, want ErrDecrypt", err)
	}
	ct[len(ct)-1] ^= 1
	if _, err := b.Decrypt("secrets/x/v/1", ct); !errors.Is(err, barrier.ErrDecrypt) {
		t.Fatalf("decrypt tampered: got %v, want ErrDecrypt", err)
	}
	if _, err := b.Decrypt("k", []byte("plain")); !errors.Is(err, barrier.ErrDecrypt) {
		t.Fatalf("decrypt plaintext: got %v, want ErrDecrypt", err)
	}
	other, err := barrier.LoadFileSeal(filepath.Join(t.TempDir(), "other.key"), true)
	if err != nil {
		t.Fatalf("load seal: %v", err)
	}
	if _, err := barrier.OpenKeyring(data, other); !errors.Is(err, barrier.ErrSealMismatch) {
		t.Fatalf("open keyring with another seal: got %v, want ErrSealMismatch", err)
	}
}

func TestTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok, rec, err := core.NewToken("abc", "alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	id, secret, ok := splitToken(tok)
	if !ok || id != "abc" || secret == "" {
		t.Fatalf("split %q: got %q %q %v", tok, id, secret, ok)
	}
	if rec.Expires != now.Add(time.Hour).Unix() || bytes.Contains(rec.Hash, []byte(secret)) {
		t.Fatalf("record: %+v", rec)
	}
	for _, bad := range []string{"", "cvt.", "cvt.abc", "cvt..x", "xyz.abc.def"} {
		if _, _, ok := splitToken(bad); ok {
			t.Errorf("split %q: got ok", bad)
		}
	}
}

func TestJoinTokenParse(t *testing.T) {
	ca, _, err := newCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, rec, err := newJoinToken("id1", ca, time.Hour, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseJoinToken(tok)
	if err != nil || p.id != "id1" || rec.Uses != 2 {
		t.Fatalf("parse: %+v %v", p, err)
	}
	for _, bad := range []string{"cvj.a.b", "cvj.a.b.!!", "nope"} {
		if _, err := parseJoinToken(bad); !errors.Is(err, ErrBadJoinToken) {
			t.Errorf("parse %q: got %v, want ErrBadJoinToken", bad, err)
		}
	}
}
