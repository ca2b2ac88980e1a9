package vault

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/certs"
)

// wantCoreError fails unless err is a core error of the kind, code and
// field given.
func wantCoreError(t *testing.T, what string, err error, kind core.ErrorKind, code, field string) {
	t.Helper()
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Kind != kind || ce.Code != code || ce.Field != field {
		t.Errorf("%s: got %#v, want a core error of kind %d, code %s, field %q", what, err, kind, code, field)
	}
}

// TestCertificatesCoreWithoutHTTP drives the certificates and issuers core
// as a front other than Key Vault's would: typed requests, typed results
// with the raft index of each write, and typed errors with the request
// member they are about.
func TestCertificatesCoreWithoutHTTP(t *testing.T) {
	clock := &testClock{}
	clock.Set(time.Now())
	n := startClockNode(t, clock)
	ctx := context.Background()
	p := core.Caller{}
	p.Name = "core-test"
	selfPolicy := func(issuer string) *keyvault.Policy {
		return &keyvault.Policy{
			KeyProperties: &keyvault.KeyProperties{KeyType: keyvault.KeyTypeEC, Curve: "P-256"},
			// A year: no expiry event is due at once, whose write would
			// race the test's (see TestCreateRetriedAfterConcurrentChange).
			X509Properties: &keyvault.X509Properties{Subject: "CN=core.example", ValidityInMonths: 12},
			Issuer:         &keyvault.IssuerParameters{Name: issuer},
		}
	}

	_, err := n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "not_valid", Policy: selfPolicy(keyvault.IssuerSelf)})
	wantCoreError(t, "create with a bad name", err, core.KindBadParameter, "BadParameter", "name")
	_, err = n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "core-nopolicy"})
	wantCoreError(t, "create without a policy", err, core.KindBadParameter, "BadParameter", "policy")

	created, err := n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "core-self", Policy: selfPolicy(keyvault.IssuerSelf), Tags: map[string]string{"a": "1"}})
	if err != nil || created.Operation.Status != keyvault.StatusCompleted || created.Index == 0 || created.Operation.CreatedBy != "core-test" {
		t.Fatalf("create core-self: %v %+v, want a completed operation by core-test with an index", err, created)
	}
	c, err := n.GetCertificate(ctx, p, issuance.GetCertificateRequest{Name: "core-self"})
	if err != nil || c.Version == "" || len(c.Chain) == 0 || c.Policy == nil || c.Tags["a"] != "1" {
		t.Fatalf("get core-self: %v %+v", err, c)
	}
	upd, err := n.UpdateCertificate(ctx, p, issuance.UpdateCertificateRequest{Name: "core-self", Tags: map[string]string{"b": "2"}})
	if err != nil || upd.Version != c.Version || upd.Index <= created.Index {
		t.Fatalf("update core-self: %v %+v, want version %s after index %d", err, upd, c.Version, created.Index)
	}
	if c, err := n.GetCertificate(ctx, p, issuance.GetCertificateRequest{Name: "core-self", Version: upd.Version}); err != nil || c.Tags["b"] != "2" {
		t.Fatalf("get core-self after the update: %v %+v", err, c)
	}
	versions, err := n.ListVersions(ctx, p, core.ListVersionsRequest{Kind: core.KindCertificates, Name: "core-self"})
	if err != nil || len(versions.Items) != 1 || versions.Items[0].Version != c.Version || versions.Next != "" {
		t.Fatalf("versions of core-self: %v %+v, want the one version %s", err, versions, c.Version)
	}
	if !bytes.Equal(versions.Items[0].X5t, certs.Thumbprint(c.Chain[0])) {
		t.Fatalf("versions of core-self: x5t %x, want the version's thumbprint", versions.Items[0].X5t)
	}
	sec, err := n.GetSecret(ctx, p, core.GetSecretRequest{Name: "core-self"})
	if err != nil || sec.ManagedBy != core.KindCertificates || sec.Version != c.Version || sec.Value == "" || sec.Tags["b"] != "2" || sec.Index == 0 {
		t.Fatalf("get the secret core-self: %v %+v, want the managed secret of version %s", err, sec, c.Version)
	}

	pending, err := n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "core-csr", Policy: selfPolicy(keyvault.IssuerUnknown)})
	if err != nil || pending.Operation.Status != keyvault.StatusInProgress || len(pending.Operation.CSR) == 0 {
		t.Fatalf("create core-csr: %v %+v, want an operation in progress with a CSR", err, pending)
	}
	_, err = n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "core-csr", Policy: selfPolicy(keyvault.IssuerUnknown)})
	wantCoreError(t, "create during an operation", err, core.KindConflict, "Conflict", "")
	list, err := n.ListObjects(ctx, p, core.ListObjectsRequest{Kind: core.KindCertificates})
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "core-self" {
		t.Fatalf("list: %v %+v, want core-self alone", err, list)
	}
	if list, err := n.ListObjects(ctx, p, core.ListObjectsRequest{Kind: core.KindCertificates, IncludePending: true}); err != nil || len(list.Items) != 2 {
		t.Fatalf("list with pending: %v %+v, want core-csr and core-self", err, list)
	}
	_, err = n.MergeCertificate(ctx, p, issuance.MergeCertificateRequest{Name: "core-csr"})
	wantCoreError(t, "merge without x5c", err, core.KindBadParameter, "BadParameter", "x5c")
	_, err = n.CancelCertificateOperation(ctx, p, issuance.CancelCertificateOperationRequest{Name: "core-csr"})
	wantCoreError(t, "cancel not requested", err, core.KindBadParameter, "BadParameter", "cancellation_requested")
	cancelled, err := n.CancelCertificateOperation(ctx, p, issuance.CancelCertificateOperationRequest{Name: "core-csr", CancellationRequested: true})
	if err != nil || cancelled.Operation.Status != keyvault.StatusCancelled || cancelled.Index == 0 {
		t.Fatalf("cancel core-csr: %v %+v", err, cancelled)
	}
	_, err = n.MergeCertificate(ctx, p, issuance.MergeCertificateRequest{Name: "core-csr", X5C: [][]byte{c.Chain[0]}})
	wantCoreError(t, "merge after the cancel", err, core.KindForbidden, "Forbidden", "")
	_, err = n.GetCertificateOperation(ctx, p, "core-none")
	wantCoreError(t, "operation of a name without one", err, core.KindNotFound, "PendingCertificateNotFound", "")

	_, err = n.GetContacts(ctx, p)
	wantCoreError(t, "contacts before any", err, core.KindNotFound, "ContactsNotFound", "")
	_, err = n.SetContacts(ctx, p, keyvault.Contacts{Contacts: []keyvault.Contact{{Email: "ops@example.com"}, {Email: "nobody"}}})
	wantCoreError(t, "a contact without an address", err, core.KindBadParameter, "BadParameter", "contacts[1].email")
	set, err := n.SetContacts(ctx, p, keyvault.Contacts{ID: "ignored", Contacts: []keyvault.Contact{{Email: "ops@example.com"}}})
	if err != nil || set.Index == 0 || set.Contacts.ID != "" {
		t.Fatalf("set contacts: %v %+v, want an index and no id", err, set)
	}
	if got, err := n.DeleteContacts(ctx, p); err != nil || len(got.Contacts.Contacts) != 1 || got.Contacts.Contacts[0].Email != "ops@example.com" {
		t.Fatalf("delete contacts: %v %+v, want the one set", err, got)
	}

	_, err = n.SetIssuer(ctx, p, issuance.SetIssuerRequest{Name: "self", Provider: "internal"})
	wantCoreError(t, "an issuer named Self", err, core.KindBadParameter, "BadParameter", "name")
	_, err = n.GetIssuer(ctx, p, "core-ca")
	wantCoreError(t, "a missing issuer", err, core.KindNotFound, "CertificateIssuerNotFound", "")
	_, err = n.SetIssuer(ctx, p, issuance.SetIssuerRequest{Name: "core-ca", Provider: "internal", CA: &issuance.CARequest{}})
	wantCoreError(t, "a CA without a subject", err, core.KindBadParameter, "BadParameter", "ca.subject")
	is, err := n.SetIssuer(ctx, p, issuance.SetIssuerRequest{Name: "Core-CA", Provider: "internal", CA: &issuance.CARequest{Subject: "CN=Core CA"}})
	if err != nil || is.Index == 0 || is.Issuer.Name != "Core-CA" || len(is.Issuer.CACert) == 0 || is.Issuer.CRLURL == "" {
		t.Fatalf("set issuer Core-CA: %v %+v", err, is)
	}
	if _, err := n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "core-issued", Policy: selfPolicy("core-ca")}); err != nil {
		t.Fatalf("create from core-ca: %v", err)
	}
	_, err = n.DeleteIssuer(ctx, p, "core-ca")
	wantCoreError(t, "delete an issuer a policy names", err, core.KindConflict, "Conflict", "")
	rev, err := n.RevokeCertificate(ctx, p, issuance.RevokeCertificateRequest{Name: "core-issued"})
	if err != nil || rev.Index == 0 || rev.Issuer != "core-ca" {
		t.Fatalf("revoke core-issued: %v %+v", err, rev)
	}
	if again, err := n.RevokeCertificate(ctx, p, issuance.RevokeCertificateRequest{Name: "core-issued"}); err != nil || again.Index != 0 {
		t.Fatalf("revoke core-issued again: %v %+v, want no write", err, again)
	}
	if _, err := n.IssuerCRL(ctx, "core-ca"); err != nil {
		t.Fatalf("CRL of core-ca: %v", err)
	}
}
