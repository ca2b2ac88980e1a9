package kvapi

import (
	"bytes"
	"io"
	"net/http"
	"net/url"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/certs"
)

func (f *Front) certificateRoutes(rt *front.Router) {
	rt.HandleAnyNode("POST", "/certificates/{name}/create", access.CertificatesWrite, f.handleCreateCertificate)
	rt.Handle("POST", "/certificates/{name}/import", access.CertificatesWrite, f.handleImportCertificate)
	rt.Handle("GET", "/certificates", access.CertificatesRead, listHandler(f, core.KindCertificates, false, certificateItems))
	rt.Handle("GET", "/certificates/{name}", access.CertificatesRead, f.handleGetCertificate)
	rt.Handle("GET", "/certificates/{name}/{version}", access.CertificatesRead, f.handleGetCertificate)
	rt.Handle("PATCH", "/certificates/{name}", access.CertificatesWrite, f.handleUpdateCertificate)
	rt.Handle("PATCH", "/certificates/{name}/{version}", access.CertificatesWrite, f.handleUpdateCertificate)
	rt.Handle("GET", "/certificates/{name}/versions", access.CertificatesRead, listHandler(f, core.KindCertificates, true, certificateItems))
	rt.Handle("GET", "/certificates/{name}/policy", access.CertificatesRead, f.handleGetPolicy)
	rt.Handle("PATCH", "/certificates/{name}/policy", access.CertificatesWrite, f.handleUpdatePolicy)
	rt.Handle("GET", "/certificates/{name}/pending", access.CertificatesRead, f.handleGetPending)
	rt.Handle("PATCH", "/certificates/{name}/pending", access.CertificatesWrite, f.handleCancelPending)
	rt.Handle("DELETE", "/certificates/{name}/pending", access.CertificatesWrite, f.handleDeletePending)
	rt.Handle("POST", "/certificates/{name}/pending/merge", access.CertificatesWrite, f.handleMerge)
	rt.Handle("DELETE", "/certificates/{name}", access.CertificatesDelete, f.handleDeleteObject(core.KindCertificates))
	rt.Handle("GET", "/deletedcertificates", access.CertificatesRead, f.handleListDeleted(core.KindCertificates))
	rt.Handle("GET", "/deletedcertificates/{name}", access.CertificatesRead, f.handleGetDeleted(core.KindCertificates))
	rt.Handle("POST", "/deletedcertificates/{name}/recover", access.CertificatesDelete, f.handleRecover(core.KindCertificates))
	rt.Handle("DELETE", "/deletedcertificates/{name}", access.CertificatesDelete, f.handlePurge(core.KindCertificates))
	rt.Handle("POST", "/certificates/{name}/backup", access.CertificatesBackup, f.handleBackup(core.KindCertificates))
	rt.Handle("POST", "/certificates/restore", access.CertificatesBackup, f.handleRestore(core.KindCertificates))
	rt.Handle("GET", "/certificates/contacts", access.CertificatesRead, f.handleGetContacts)
	rt.Handle("PUT", "/certificates/contacts", access.ContactsWrite, f.handleSetContacts)
	rt.Handle("DELETE", "/certificates/contacts", access.ContactsWrite, f.handleDeleteContacts)
}

// The Key Vault front of certificates: each handler reads the path, the
// query and the body, calls the core (issuance/certificates.go) and writes
// Key Vault's JSON with the ids of this host.

func (f *Front) handleCreateCertificate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := core.ValidName(core.KindCertificates, name); err != nil {
		f.Fail(w, r, err)
		return
	}
	// The route is AnyNode: a follower builds the create itself when it
	// can (the key made here, the certificate signed here, the batch
	// forwarded to the leader), and passes the request on otherwise.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req keyvault.CreateCertificateRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	if !f.IsLeader() {
		if !f.IssuesOnAnyNode(req.Policy) {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			f.ProxyToLeader(w, r)
			return
		}
		// Build from a state that has every write completed before
		// this request began, as the leader would.
		if !f.Linearized(w, r) {
			return
		}
	}
	res, err := f.CreateCertificate(r.Context(), front.CallerOf(r), issuance.CreateCertificateRequest{Name: name, Policy: req.Policy, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	w.Header().Set("Location", objectID(r, core.KindCertificates, name, "")+"/pending?api-version="+url.QueryEscape(r.URL.Query().Get("api-version")))
	w.Header().Set("Retry-After", "1")
	front.WriteJSON(w, http.StatusAccepted, operationBundle(r, name, res.Operation))
}

// certBundle renders a certificate version.
func (f *Front) certBundle(r *http.Request, name, version string) (keyvault.Certificate, error) {
	c, err := f.Certificate(name, version)
	if err != nil {
		return keyvault.Certificate{}, err
	}
	return certificateBundle(r, c), nil
}

// certificateBundle renders a certificate version the core returned.
func certificateBundle(r *http.Request, c issuance.Certificate) keyvault.Certificate {
	if c.Pending {
		// Key Vault's answer for a version still pending: no key,
		// secret or certificate yet, and where its operation is.
		kc := keyvault.Certificate{ID: objectID(r, core.KindCertificates, c.Name, c.Version), Attributes: c.Attributes, Tags: c.Tags,
			Pending: &keyvault.PendingRef{ID: objectID(r, core.KindCertificates, c.Name, "") + "/pending"}}
		if c.Policy != nil {
			kc.Policy = policyBundle(r, c.Name, c.Policy)
		}
		return kc
	}
	kc := keyvault.Certificate{
		ID:          objectID(r, core.KindCertificates, c.Name, c.Version),
		Kid:         objectID(r, core.KindKeys, c.Name, c.Version),
		Sid:         objectID(r, core.KindSecrets, c.Name, c.Version),
		X5t:         certs.Thumbprint(c.Chain[0]),
		Cer:         c.Chain[0],
		X5C:         c.Chain,
		ContentType: c.ContentType,
		Attributes:  c.Attributes,
		Tags:        c.Tags,
		RenewalInfo: c.RenewalInfo,
	}
	if c.Policy != nil {
		kc.Policy = policyBundle(r, c.Name, c.Policy)
	}
	return kc
}

func policyBundle(r *http.Request, name string, p *keyvault.Policy) *keyvault.Policy {
	cp := *p
	cp.ID = objectID(r, core.KindCertificates, name, "") + "/policy"
	return &cp
}

func operationBundle(r *http.Request, name string, op *core.PendingOp) keyvault.Operation {
	o := keyvault.Operation{
		ID:                    objectID(r, core.KindCertificates, name, "") + "/pending",
		Issuer:                &keyvault.IssuerParameters{Name: op.Issuer, CertificateType: op.CertType},
		CSR:                   op.CSR,
		CancellationRequested: op.Cancel,
		Status:                op.Status,
		StatusDetails:         op.StatusDetails,
		Error:                 op.Error,
		Target:                op.Target,
		RequestID:             op.RequestID,
	}
	o.ACMEOrder = op.ACMEOrder
	if o.Target == "" && op.Status == keyvault.StatusCompleted {
		// Orders completed in the background have no request to name
		// the host; the reader's request does.
		o.Target = objectID(r, core.KindCertificates, name, "")
	}
	return o
}

// writeCertificate answers a write's certificate version.
func (f *Front) writeCertificate(w http.ResponseWriter, r *http.Request, status int, res issuance.CertificateResult) {
	front.SetIndexHeader(w, res.Index)
	c, err := f.certBundle(r, res.Name, res.Version)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, status, c)
}

func (f *Front) handleGetCertificate(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !f.Linearized(w, r) {
		return
	}
	c, err := f.GetCertificate(r.Context(), front.CallerOf(r), issuance.GetCertificateRequest{Name: name, Version: version})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, certificateBundle(r, c))
}

func (f *Front) handleUpdateCertificate(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req keyvault.UpdateCertificateRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.UpdateCertificate(r.Context(), front.CallerOf(r), issuance.UpdateCertificateRequest{Name: name, Version: version, Policy: req.Policy, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	f.writeCertificate(w, r, http.StatusOK, res)
}

func (f *Front) handleGetPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !f.Linearized(w, r) {
		return
	}
	res, err := f.GetCertificatePolicy(r.Context(), front.CallerOf(r), name)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, policyBundle(r, name, res.Policy))
}

func (f *Front) handleUpdatePolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var upd keyvault.Policy
	if err := front.DecodeBody(r, &upd); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.UpdateCertificatePolicy(r.Context(), front.CallerOf(r), issuance.UpdateCertificatePolicyRequest{Name: name, Policy: &upd})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, policyBundle(r, name, res.Policy))
}

// certificateItems renders list items of certificates or of a
// certificate's versions.
func certificateItems(r *http.Request, items []core.ObjectItem) []keyvault.CertificateItem {
	var out []keyvault.CertificateItem
	for _, it := range items {
		out = append(out, keyvault.CertificateItem{ID: objectID(r, core.KindCertificates, it.Name, it.Version),
			X5t: it.X5t, Attributes: it.Attributes, Tags: it.Tags})
	}
	return out
}

// writeOperation answers a certificate's operation.
func writeOperation(w http.ResponseWriter, r *http.Request, res issuance.CertificateOperationResult) {
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, operationBundle(r, res.Name, res.Operation))
}

func (f *Front) handleGetPending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !f.Linearized(w, r) {
		return
	}
	res, err := f.GetCertificateOperation(r.Context(), front.CallerOf(r), name)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeOperation(w, r, res)
}

func (f *Front) handleCancelPending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Cancel *bool `json:"cancellation_requested"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.CancelCertificateOperation(r.Context(), front.CallerOf(r), issuance.CancelCertificateOperationRequest{Name: name, CancellationRequested: req.Cancel != nil && *req.Cancel})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeOperation(w, r, res)
}

func (f *Front) handleDeletePending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, err := f.DeleteCertificateOperation(r.Context(), front.CallerOf(r), name)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeOperation(w, r, res)
}

// handleMerge completes an Unknown-issuer operation with the chain signed
// outside: the leaf must carry the pending key and the policy's names.
func (f *Front) handleMerge(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req keyvault.MergeRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.MergeCertificate(r.Context(), front.CallerOf(r), issuance.MergeCertificateRequest{Name: name, X5C: req.X5C, Attributes: req.Attributes, Tags: req.Tags,
		Target: objectID(r, core.KindCertificates, name, "")})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	f.writeCertificate(w, r, http.StatusCreated, res)
}

func (f *Front) handleImportCertificate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := core.ValidName(core.KindCertificates, name); err != nil {
		f.Fail(w, r, err)
		return
	}
	var req keyvault.ImportCertificateRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.ImportCertificate(r.Context(), front.CallerOf(r), issuance.ImportCertificateRequest{Name: name, Value: req.Value, Password: req.Password,
		Policy: req.Policy, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	f.writeCertificate(w, r, http.StatusOK, res)
}

// Contacts.

// writeContacts answers the vault's contacts with their id.
func writeContacts(w http.ResponseWriter, r *http.Request, res core.ContactsResult) {
	front.SetIndexHeader(w, res.Index)
	c := res.Contacts
	c.ID = front.BaseURL(r) + "/certificates/contacts"
	front.WriteJSON(w, http.StatusOK, c)
}

func (f *Front) handleGetContacts(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	res, err := f.GetContacts(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeContacts(w, r, res)
}

func (f *Front) handleSetContacts(w http.ResponseWriter, r *http.Request) {
	var c keyvault.Contacts
	if err := front.DecodeBody(r, &c); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.SetContacts(r.Context(), front.CallerOf(r), c)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeContacts(w, r, res)
}

func (f *Front) handleDeleteContacts(w http.ResponseWriter, r *http.Request) {
	res, err := f.DeleteContacts(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeContacts(w, r, res)
}
