package console

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"
)

// The inventories of secrets and keys: the objects the caller may see
// with the API's listing action for the kind (secrets/readMetadata,
// keys/read), their state, expiry, tags and content or key type. They
// are built from metadata and public keys only: a secret's value or a
// key's private material is never read for them, let alone rendered. A
// certificate's managed secret or key links to the certificate's page.

// objectRow is one row of the secrets or keys inventory.
type objectRow struct {
	objectFacts
	// Type is a secret's content type or a key's type (RSA 2048, EC
	// P-256, with -HSM when the key lives in the HSM).
	Type    string
	Updated string
	// Managed says the object is a certificate's; CertLink that the
	// caller may open that certificate's page.
	Managed, CertLink bool
}

// objectsPage is an inventory page's data.
type objectsPage struct {
	page
	// Kind is secrets or keys; Noun names one object ("secret").
	Kind, Noun, TypeHeading string
	Q, Tag, Expiring        string
	Rows                    []objectRow
	Next                    string
}

// objectInventory describes one kind's inventory.
type objectInventory struct {
	kind, title, noun, typeHeading string
	action                         access.Action
	// typeOf fills the row's Type, once the row matched the search; ok
	// false leaves the object out (deleted since it was listed).
	typeOf func(r *http.Request, c core.Caller, o *catalog.Object) (string, bool, error)
}

// secretsInventory lists secrets by their metadata (the listing's
// content type); the value is never read.
var secretsInventory = objectInventory{kind: core.KindSecrets, title: "Secrets", noun: "secret", typeHeading: "Content type",
	action: access.SecretsMetadata,
	typeOf: func(_ *http.Request, _ core.Caller, o *catalog.Object) (string, bool, error) {
		return o.ContentType, true, nil
	}}

// keysInventory returns the keys inventory, which reads each matching
// key's public part for its type.
func (f *Front) keysInventory() objectInventory {
	return objectInventory{kind: core.KindKeys, title: "Keys", noun: "key", typeHeading: "Key type", action: access.KeysRead,
		typeOf: f.keyType}
}

// keyType names the current version's key type from its public key.
func (f *Front) keyType(r *http.Request, c core.Caller, o *catalog.Object) (string, bool, error) {
	k, err := f.GetKey(r.Context(), c, core.GetKeyRequest{Name: o.Name})
	if core.IsKind(err, core.KindNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var t string
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		t = fmt.Sprintf("RSA %d", pub.N.BitLen())
	case *ecdsa.PublicKey:
		t = "EC " + pub.Curve.Params().Name
	default:
		t = fmt.Sprintf("%T", pub)
	}
	if k.HSM {
		t += " (HSM)"
	}
	return t, true, nil
}

// handleSecrets lists the secrets the caller may see.
func (f *Front) handleSecrets(w http.ResponseWriter, r *http.Request) {
	f.handleObjects(w, r, secretsInventory)
}

// handleKeys lists the keys the caller may see.
func (f *Front) handleKeys(w http.ResponseWriter, r *http.Request) {
	f.handleObjects(w, r, f.keysInventory())
}

// handleObjects serves inv's page: the search (name, tag, expiring
// within), a page of matching objects and the link to the next.
func (f *Front) handleObjects(w http.ResponseWriter, r *http.Request, inv objectInventory) {
	s, _ := sessionOf(r)
	q := r.URL.Query()
	flt, ok := parseSearch(q)
	if !ok {
		f.renderError(w, r, http.StatusBadRequest, "Bad search", badExpiring)
		return
	}
	now := time.Now()
	pol := f.Policy()
	rows, next, err := scan(f, s.caller, inv.kind, inv.action, flt, q.Get("after"), func(o *catalog.Object) (objectRow, bool, error) {
		row := objectRow{objectFacts: factsOf(o, now), Managed: o.Managed}
		t, ok, err := inv.typeOf(r, s.caller, o)
		if err != nil || !ok {
			return row, false, err
		}
		row.Type = t
		if u := o.Attributes.Updated; u != 0 {
			row.Updated = time.Unix(u, 0).UTC().Format("2006-01-02 15:04")
		}
		if row.Managed {
			row.CertLink = pol.Allowed(s.caller.Principal, access.CertificatesRead,
				access.Resource{Kind: core.KindCertificates, Name: o.Canonical})
		}
		return row, true, nil
	})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	f.render(w, http.StatusOK, inv.kind, objectsPage{
		page: f.pageFor(s, inv.title, inv.kind),
		Kind: inv.kind, Noun: inv.noun, TypeHeading: inv.typeHeading,
		Q: q.Get("q"), Tag: q.Get("tag"), Expiring: q.Get("expiring"),
		Rows: rows, Next: nextPage("/ui/"+inv.kind, q, next),
	})
}
