package vault

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/core"
)

// TestCoreObjectsWithoutHTTP drives secrets and keys through the core
// alone (issue 17): versions, listing and paging, soft delete, recover,
// purge, backup and restore, each refusal a typed *Error of its kind.
func TestCoreObjectsWithoutHTTP(t *testing.T) {
	n := startClockNode(t, &testClock{t: time.Now()})
	ctx := context.Background()
	var p core.Caller
	wantKind := func(what string, err error, k core.ErrorKind) {
		t.Helper()
		var ce *core.Error
		if !errors.As(err, &ce) || ce.Kind != k {
			t.Fatalf("%s: got %v, want a core error of kind %d", what, err, k)
		}
	}

	// Three versions of one secret, and a second secret.
	var versions []string
	for _, v := range []string{"one", "two", "three"} {
		s, err := n.SetSecret(ctx, p, core.SetSecretRequest{Name: "Db-Password", Value: &v})
		if err != nil {
			t.Fatalf("set secret: %v", err)
		}
		if s.Index == 0 || s.Version == "" {
			t.Fatalf("set secret: got index %d version %q, want both set", s.Index, s.Version)
		}
		versions = append(versions, s.Version)
	}
	other := "x"
	if _, err := n.SetSecret(ctx, p, core.SetSecretRequest{Name: "other", Value: &other}); err != nil {
		t.Fatalf("set secret: %v", err)
	}
	_, err := n.SetSecret(ctx, p, core.SetSecretRequest{Name: "no value"})
	wantKind("set without a value and with a bad name", err, core.KindBadParameter)
	_, err = n.SetSecret(ctx, p, core.SetSecretRequest{Name: "novalue"})
	wantKind("set without a value", err, core.KindBadParameter)

	got, err := n.GetSecret(ctx, p, core.GetSecretRequest{Name: "db-password"})
	if err != nil || got.Value != "three" || got.Version != versions[2] || got.Index == 0 {
		t.Fatalf("get secret: got %+v, %v, want value three at version %s with an index", got, err, versions[2])
	}
	_, err = n.GetSecret(ctx, p, core.GetSecretRequest{Name: "missing"})
	wantKind("get a missing secret", err, core.KindNotFound)

	// Versions in pages of two: the second page resumes where the first
	// ended, and the listing ends there.
	page1, err := n.ListVersions(ctx, p, core.ListVersionsRequest{Kind: core.KindSecrets, Name: "Db-Password", Page: core.PageRequest{Limit: 2}})
	if err != nil || len(page1.Items) != 2 || page1.Next == "" {
		t.Fatalf("versions page 1: got %+v, %v, want 2 items and a next", page1, err)
	}
	page2, err := n.ListVersions(ctx, p, core.ListVersionsRequest{Kind: core.KindSecrets, Name: "Db-Password", Page: core.PageRequest{Limit: 2, After: page1.Next}})
	if err != nil || len(page2.Items) != 1 || page2.Next != "" {
		t.Fatalf("versions page 2: got %+v, %v, want 1 item and no next", page2, err)
	}
	var listed []string
	for _, it := range append(page1.Items, page2.Items...) {
		listed = append(listed, it.Version)
	}
	sorted := slices.Clone(versions)
	slices.Sort(sorted)
	if !slices.Equal(listed, sorted) {
		t.Fatalf("versions: got %v, want %v", listed, sorted)
	}

	objects, err := n.ListObjects(ctx, p, core.ListObjectsRequest{Kind: core.KindSecrets})
	if err != nil || len(objects.Items) != 2 || objects.Items[0].Name != "Db-Password" || objects.Next != "" {
		t.Fatalf("list secrets: got %+v, %v, want Db-Password and other", objects, err)
	}

	// Backup, soft delete, the name held, recover, delete and purge,
	// then restore from the backup. (A backup keeps the name as the
	// request spells it: the Key Vault front's router gives the
	// creator's.)
	backup, err := n.BackupObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "Db-Password"})
	if err != nil || len(backup.Blob) == 0 {
		t.Fatalf("backup: got %d bytes, %v", len(backup.Blob), err)
	}
	if _, err := n.DeleteObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db-password"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = n.SetSecret(ctx, p, core.SetSecretRequest{Name: "db-password", Value: &other})
	wantKind("set a deleted secret", err, core.KindConflict)
	_, err = n.GetSecret(ctx, p, core.GetSecretRequest{Name: "db-password"})
	wantKind("get a deleted secret", err, core.KindNotFound)
	d, err := n.GetDeletedObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db-password"})
	if err != nil || d.Name != "Db-Password" || d.ScheduledPurge <= d.Date {
		t.Fatalf("get deleted: got %+v, %v", d, err)
	}
	deleted, err := n.ListDeletedObjects(ctx, p, core.ListDeletedRequest{Kind: core.KindSecrets})
	if err != nil || !slices.Equal(deleted.Names, []string{"Db-Password"}) {
		t.Fatalf("list deleted: got %+v, %v, want [Db-Password]", deleted, err)
	}
	if _, err := n.RecoverObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db-password"}); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if got, err := n.GetSecret(ctx, p, core.GetSecretRequest{Name: "db-password"}); err != nil || got.Value != "three" {
		t.Fatalf("get after recover: got %+v, %v, want three", got, err)
	}
	_, err = n.PurgeObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db-password"})
	wantKind("purge a live secret", err, core.KindNotFound)
	_, err = n.RestoreObject(ctx, p, core.RestoreRequest{Kind: core.KindSecrets, Blob: backup.Blob})
	wantKind("restore over a live secret", err, core.KindConflict)
	if _, err := n.DeleteObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db-password"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := n.PurgeObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db-password"}); err != nil {
		t.Fatalf("purge: %v", err)
	}
	_, err = n.RestoreObject(ctx, p, core.RestoreRequest{Kind: core.KindKeys, Blob: backup.Blob})
	wantKind("restore a secret's backup as a key", err, core.KindBadParameter)
	restored, err := n.RestoreObject(ctx, p, core.RestoreRequest{Kind: core.KindSecrets, Blob: backup.Blob})
	if err != nil || restored.Name != "Db-Password" || restored.Index == 0 {
		t.Fatalf("restore: got %+v, %v", restored, err)
	}
	if got, err := n.GetSecret(ctx, p, core.GetSecretRequest{Name: "db-password", Version: versions[0]}); err != nil || got.Value != "one" {
		t.Fatalf("get the first version after restore: got %+v, %v, want one", got, err)
	}

	// A key: create, sign and verify, update, rotate.
	k, err := n.CreateKey(ctx, p, core.CreateKeyRequest{Name: "signer", KeyType: "EC", Curve: "P-256"})
	if err != nil || !slices.Equal(k.KeyOps, core.ECOps) {
		t.Fatalf("create key: got %+v, %v", k, err)
	}
	_, err = n.CreateKey(ctx, p, core.CreateKeyRequest{Name: "signer", KeyType: "RSA", KeyOps: []string{"fly"}})
	wantKind("create a key with an unknown operation", err, core.KindBadParameter)
	digest := sha256.Sum256([]byte("message"))
	sig, err := n.KeyOperation(ctx, p, core.KeyOperationRequest{Name: "signer", Op: "sign", Alg: "ES256", Value: digest[:]})
	if err != nil || sig.Version != k.Version || len(sig.Value) != 64 {
		t.Fatalf("sign: got %+v, %v", sig, err)
	}
	ok, err := n.KeyOperation(ctx, p, core.KeyOperationRequest{Name: "signer", Op: "verify", Alg: "ES256", Value: sig.Value, Digest: digest[:]})
	if err != nil || !ok.Valid {
		t.Fatalf("verify: got %+v, %v, want valid", ok, err)
	}
	_, err = n.KeyOperation(ctx, p, core.KeyOperationRequest{Name: "signer", Op: "encrypt", Alg: "RSA-OAEP", Value: []byte("x")})
	wantKind("encrypt with an EC key", err, core.KindForbidden)
	if _, err := n.UpdateKey(ctx, p, core.UpdateKeyRequest{Name: "signer", KeyOps: []string{"verify"}}); err != nil {
		t.Fatalf("update key: %v", err)
	}
	_, err = n.KeyOperation(ctx, p, core.KeyOperationRequest{Name: "signer", Op: "sign", Alg: "ES256", Value: digest[:]})
	wantKind("sign with a verify-only key", err, core.KindForbidden)
	rotated, err := n.RotateKey(ctx, p, core.RotateKeyRequest{Name: "signer"})
	if err != nil || rotated.Version == k.Version || !slices.Equal(rotated.KeyOps, []string{"verify"}) {
		t.Fatalf("rotate: got %+v, %v, want a new version that keeps key_ops [verify]", rotated, err)
	}
	keyVersions, err := n.ListVersions(ctx, p, core.ListVersionsRequest{Kind: core.KindKeys, Name: "signer"})
	if err != nil || len(keyVersions.Items) != 2 {
		t.Fatalf("key versions: got %+v, %v, want 2", keyVersions, err)
	}
}
