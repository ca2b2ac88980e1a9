package kvapi

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
)

// issuerView is what the API returns: credentials never include the
// password, and an internal CA shows its certificate.
type issuerView struct {
	keyvault.Issuer
	CACert        []byte `json:"ca_cert,omitempty"`
	CAFingerprint string `json:"ca_fingerprint,omitempty"`
	CRL           string `json:"crl_url,omitempty"`
	// CACSR is set while an intermediate waits for its signed certificate.
	CACSR []byte `json:"ca_csr,omitempty"`
	// ACME shows an ACME issuer's directory, account and DNS solver.
	ACME *issuance.ACMEView `json:"acme,omitempty"`
}

func (f *Front) issuerRoutes(rt *front.Router) {
	rt.Handle("GET", "/certificates/issuers", access.IssuersRead, f.handleListIssuers)
	rt.Handle("GET", "/certificates/issuers/{issuer}", access.IssuersRead, f.handleGetIssuer)
	rt.Handle("PUT", "/certificates/issuers/{issuer}", access.IssuersWrite, f.handleSetIssuer(false))
	rt.Handle("PATCH", "/certificates/issuers/{issuer}", access.IssuersWrite, f.handleSetIssuer(true))
	rt.Handle("DELETE", "/certificates/issuers/{issuer}", access.IssuersWrite, f.handleDeleteIssuer)
	rt.Handle("POST", "/certificates/issuers/{issuer}/check", access.IssuersWrite, f.handleCheckIssuer)
}

// The Key Vault front of issuers (and the /v1 CRL and revoke
// endpoints): each handler reads the request, calls the core
// (issuance/issuers.go) and writes the JSON with this host's ids.

// issuerViewOf renders an issuer the core returned.
func issuerViewOf(r *http.Request, is issuance.Issuer) issuerView {
	v := issuerView{Issuer: keyvault.Issuer{
		ID:         front.BaseURL(r) + "/certificates/issuers/" + is.Name,
		Provider:   is.Provider,
		OrgDetails: is.OrgDetails,
	}}
	attrs := is.Attributes
	v.Attributes = &attrs
	if is.AccountID != "" {
		v.Credentials = &keyvault.IssuerCredentials{AccountID: is.AccountID}
	}
	v.CACert, v.CAFingerprint, v.CRL, v.CACSR, v.ACME = is.CACert, is.CAFingerprint, is.CRLURL, is.CACSR, is.ACME
	return v
}

// writeIssuer answers an issuer.
func writeIssuer(w http.ResponseWriter, r *http.Request, res issuance.IssuerResult) {
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, issuerViewOf(r, res.Issuer))
}

func (f *Front) handleGetIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("issuer")
	if !f.Linearized(w, r) {
		return
	}
	res, err := f.GetIssuer(r.Context(), front.CallerOf(r), name)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeIssuer(w, r, res)
}

func (f *Front) handleListIssuers(w http.ResponseWriter, r *http.Request) {
	limit, after, err := PageParams(r)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	if !f.Linearized(w, r) {
		return
	}
	page, err := f.ListIssuers(r.Context(), front.CallerOf(r), issuance.ListIssuersRequest{Page: core.PageRequest{Limit: limit, After: after}})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	var out []keyvault.IssuerItem
	for _, it := range page.Items {
		out = append(out, keyvault.IssuerItem{ID: front.BaseURL(r) + "/certificates/issuers/" + it.Name, Provider: it.Provider})
	}
	writePage(w, r, out, page.Next, limit)
}

func (f *Front) handleSetIssuer(patch bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("issuer")
		if err := issuance.CheckIssuerName(name); err != nil {
			f.Fail(w, r, err)
			return
		}
		var req issuance.IssuerRequest
		if err := front.DecodeBody(r, &req); err != nil {
			f.Fail(w, r, err)
			return
		}
		res, err := f.SetIssuer(r.Context(), front.CallerOf(r), issuance.SetIssuerRequest{Name: name, Patch: patch, Provider: req.Provider, Credentials: req.Credentials,
			OrgDetails: req.OrgDetails, Attributes: req.Attributes, CA: req.CA, ACME: req.ACME})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		writeIssuer(w, r, res)
	}
}

func (f *Front) handleDeleteIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("issuer")
	res, err := f.DeleteIssuer(r.Context(), front.CallerOf(r), name)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeIssuer(w, r, res)
}

// handleCheckIssuer contacts an ACME issuer's CA on demand and reports
// what works (CheckIssuer).
func (f *Front) handleCheckIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("issuer")
	if !f.Linearized(w, r) {
		return
	}
	rep, err := f.CheckIssuer(r.Context(), front.CallerOf(r), name)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, rep)
}
