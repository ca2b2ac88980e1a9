package hsm_test

import (
	"os"
	"testing"

	"github.com/certvault/certvault/test/softhsmtest"
	"github.com/certvault/certvault/vault/hsm"
)

// TestReopenAfterLoss: a token that goes away fails Ping, a Reopen while
// it is away fails without harm, and once it is back Reopen logs in again
// and Ping passes.
func TestReopenAfterLoss(t *testing.T) {
	if !hsm.Built {
		t.Skip("built without cgo")
	}
	tok := softhsmtest.New(t, "loss")
	h, err := hsm.Open(hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PINFile: tok.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	id := []byte("probe")
	if _, err := h.SealAEAD(id, true); err != nil {
		t.Fatal(err)
	}
	if err := h.Ping(id); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tok.Dir, tok.Dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := h.Ping(id); err == nil {
		t.Fatal("Ping passed with the token gone")
	}
	if err := h.Reopen(); err == nil {
		t.Fatal("Reopen succeeded with the token gone")
	}
	if err := h.Ping(id); err == nil {
		t.Fatal("Ping passed on a closed session pool")
	}
	if err := os.Rename(tok.Dir+".away", tok.Dir); err != nil {
		t.Fatal(err)
	}
	if err := h.Reopen(); err != nil {
		t.Fatalf("Reopen with the token back: %v", err)
	}
	if err := h.Ping(id); err != nil {
		t.Fatalf("Ping with the token back: %v", err)
	}
}
