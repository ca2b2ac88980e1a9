package vault

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/raftstore/raftstoretest"
	"github.com/certvault/certvault/vault/front/kvapi"

	"github.com/certvault/certvault/vault/barrier"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/raftstore"
)

func TestCanonicalStorageKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"meta/secrets/CASEY", "meta/secrets/casey"},
		{"ver/certificates/Web-1/0123abcdEF", "ver/certificates/web-1/0123abcdEF"}, // versions keep their case
		{"val/keys/K/v1", "val/keys/k/v1"},
		{"deleted/keys/K", "deleted/keys/k"},
		{"policy/certificates/WWW", "policy/certificates/www"},
		{"pending/certificates/WWW", "pending/certificates/www"},
		{"pendkey/certificates/WWW", "pendkey/certificates/www"},
		{"rotation/keys/Signer", "rotation/keys/signer"},
		{"issuers/DigiCert", "issuers/digicert"},
		{"acme/orders/WWW", "acme/orders/www"},
		{"rollout/state/certificates/WWW", "rollout/state/certificates/www"},
		{"rollout/plans/secrets/DB", "rollout/plans/secrets/db"},
		{"pki/Team-CA/revoked", "pki/team-ca/revoked"},
		// Keys without an object name are left alone.
		{"sys/tokens/AbC", "sys/tokens/AbC"},
		{"sched/certificates/000000000001/WWW", "sched/certificates/000000000001/WWW"},
		{"pki/Team-CA/other", "pki/Team-CA/other"},
		{"meta/secrets", "meta/secrets"},
	} {
		if got := core.CanonicalStorageKey(tc.in); got != tc.want {
			t.Errorf("canonicalStorageKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Every key builder already produces the canonical form.
	for _, k := range []string{core.MetaKey("secrets", "CASEY"), core.VerKey("keys", "K", "v"), core.ValKey("keys", "K", "v"), core.DeletedKey("secrets", "X"),
		core.PolicyKey("W"), core.PendingKey("W"), core.PendKeyKey("W"), core.RotationPolicyKey("R"), issuance.IssuerKey("I"), issuance.ACMEOrderKey("O"),
		fleet.RolloutKey("certificates", "R"), fleet.PlanKey("secrets", "P"), issuance.RevokedKey("CA")} {
		if core.CanonicalStorageKey(k) != k {
			t.Errorf("key %q is not canonical", k)
		}
	}
}

func TestNameCollisions(t *testing.T) {
	keys := map[string][]string{
		"meta/secrets/":      {"meta/secrets/CASEY", "meta/secrets/Casey", "meta/secrets/casey", "meta/secrets/other"},
		"meta/certificates/": {"meta/certificates/www"},
		"issuers/":           {"issuers/DigiCert", "issuers/digicert"},
	}
	got := nameCollisions(func(p string) []string { return keys[p] })
	want := []string{"issuers: DigiCert, digicert", "secrets: CASEY, Casey, casey"}
	if !slices.Equal(got, want) {
		t.Errorf("nameCollisions = %q, want %q", got, want)
	}
	if err := collisionError(got); !errors.Is(err, ErrNameCollision) || !strings.Contains(err.Error(), "secrets: CASEY, Casey, casey") {
		t.Errorf("collisionError = %v, want ErrNameCollision listing the names", err)
	}
	if got := nameCollisions(func(p string) []string { return []string{p + "a", p + "b"} }); len(got) != 0 {
		t.Errorf("nameCollisions without collisions = %q, want none", got)
	}
}

// TestRekeyEntry checks how an entry stored under another spelling moves:
// a sealed value is re-sealed for its new key (the old ciphertext would
// not open there), a meta record keeps the old spelling for display.
func TestRekeyEntry(t *testing.T) {
	bar := testBarrier(t)
	n := &Node{Core: &core.Core{}}
	n.Barrier.Store(bar)

	old := "val/secrets/CASEY/v1"
	ct, err := bar.Encrypt(old, []byte("the value"))
	if err != nil {
		t.Fatal(err)
	}
	nk, v, err := n.RekeyEntry(old, ct, fixIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	if nk != "val/secrets/casey/v1" {
		t.Errorf("new key %q, want val/secrets/casey/v1", nk)
	}
	if pt, err := bar.Decrypt(nk, v); err != nil || string(pt) != "the value" {
		t.Errorf("re-sealed value at %s: %q, %v; want the value", nk, pt, err)
	}

	nk, v, err = n.RekeyEntry("meta/secrets/CASEY", core.MustJSON(core.ObjectMeta{Current: "v1"}), fixIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	var m core.ObjectMeta
	if err := json.Unmarshal(v, &m); err != nil {
		t.Fatal(err)
	}
	if nk != "meta/secrets/casey" || m.Name != "CASEY" || m.Current != "v1" {
		t.Errorf("meta moved to %s as %+v, want meta/secrets/casey with name CASEY and current v1", nk, m)
	}

	ik := "issuers/DigiCert"
	ct, err = bar.Encrypt(ik, core.MustJSON(issuance.StoredIssuer{Provider: "DigiCert"}))
	if err != nil {
		t.Fatal(err)
	}
	nk, v, err = n.RekeyEntry(ik, ct, fixIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := bar.Decrypt(nk, v)
	if err != nil {
		t.Fatal(err)
	}
	var si issuance.StoredIssuer
	if err := json.Unmarshal(pt, &si); err != nil {
		t.Fatal(err)
	}
	if nk != "issuers/digicert" || si.Name != "DigiCert" || si.Provider != "DigiCert" {
		t.Errorf("issuer moved to %s as %+v, want issuers/digicert named DigiCert", nk, si)
	}

	if _, _, err := n.RekeyEntry("val/secrets/CASEY/v2", []byte(barrier.BarrierMagic+"garbage"), fixIssuerName); err == nil {
		t.Error("rekeyEntry of a damaged sealed value: nil error, want one")
	}
}

// TestMoveLegacyNames moves an object stored before names were
// case-insensitive (keys with its creator's spelling) to canonical keys on
// a real single-node raft store, and leaves canonical objects alone.
func TestMoveLegacyNames(t *testing.T) {
	st := raftstoretest.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bar := testBarrier(t)
	n := &Node{Core: &core.Core{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	n.Barrier.Store(bar)

	// A legacy secret "Legacy" (as an older version stored it) and a
	// current one.
	b := &raftstore.Batch{}
	b.Put("meta/secrets/Legacy", core.MustJSON(core.ObjectMeta{Current: "v1"}))
	b.Put("ver/secrets/Legacy/v1", core.MustJSON(core.VersionMeta{Sealed: true}))
	if err := core.PutSealed(b, bar, "val/secrets/Legacy/v1", []byte("legacy value")); err != nil {
		t.Fatal(err)
	}
	core.PutMeta(b, core.KindSecrets, "Current", core.ObjectMeta{Current: "v1"}, raftstore.Entry{})
	if _, err := st.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	legacy := n.legacyNameKeys()
	if len(legacy) != 3 {
		t.Fatalf("legacy keys: %d, want 3 (meta, ver, val of Legacy)", len(legacy))
	}
	if err := n.moveLegacyNames(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if left := n.legacyNameKeys(); len(left) != 0 {
		t.Fatalf("legacy keys after the move: %v", left)
	}
	m, _, ok, err := n.LoadMeta(core.KindSecrets, "LEGACY")
	if err != nil || !ok || m.Name != "Legacy" || m.Current != "v1" {
		t.Fatalf("meta of LEGACY: %+v %v %v, want name Legacy, current v1", m, ok, err)
	}
	e, ok := st.Get(core.ValKey(core.KindSecrets, "legacy", "v1"))
	if !ok {
		t.Fatal("the value did not move to its canonical key")
	}
	if pt, err := n.OpenSealed(e); err != nil || string(pt) != "legacy value" {
		t.Fatalf("moved value: %q, %v", pt, err)
	}
	if _, ok := st.Get("meta/secrets/Legacy"); ok {
		t.Error("the old meta key is still there")
	}
	if m, _, ok, err := n.LoadMeta(core.KindSecrets, "current"); err != nil || !ok || m.Name != "Current" {
		t.Errorf("the canonical object: %+v %v %v, want it untouched with name Current", m, ok, err)
	}
}

// TestParseBackupOtherSpelling: a blob made before names were
// case-insensitive holds keys in the spelling of its time; it is still
// the object's own, and another object's keys are still refused.
func TestParseBackupOtherSpelling(t *testing.T) {
	blob := core.BackupBlob{Kind: core.KindSecrets, Name: "CASEY", Entries: map[string][]byte{
		"meta/secrets/CASEY":    core.MustJSON(core.ObjectMeta{Current: "v1"}),
		"ver/secrets/CASEY/v1":  []byte("{}"),
		"val/secrets/CASEY/v1":  []byte(barrier.BarrierMagic + "x"),
		"ver/secrets/casey/v2":  []byte("{}"),
		"meta/secrets/CASEY-2x": nil,
	}}
	if _, err := kvapi.ParseBackup(core.KindSecrets, core.MustJSON(blob)); err == nil {
		t.Error("a blob with another object's meta record: nil error, want damaged")
	}
	delete(blob.Entries, "meta/secrets/CASEY-2x")
	if _, err := kvapi.ParseBackup(core.KindSecrets, core.MustJSON(blob)); err != nil {
		t.Errorf("a blob in the spelling of its time: %v, want accepted", err)
	}
	delete(blob.Entries, "meta/secrets/CASEY")
	if _, err := kvapi.ParseBackup(core.KindSecrets, core.MustJSON(blob)); err == nil {
		t.Error("a blob without its meta record: nil error, want damaged")
	}
}

// testBarrier opens a new keyring under a new file seal.
func testBarrier(t *testing.T) *barrier.Barrier {
	t.Helper()
	seal, err := barrier.LoadFileSeal(filepath.Join(t.TempDir(), "seal.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	kr, _, err := barrier.NewKeyring(seal)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(kr)
	if err != nil {
		t.Fatal(err)
	}
	bar, err := barrier.OpenKeyring(data, seal)
	if err != nil {
		t.Fatal(err)
	}
	return bar
}
