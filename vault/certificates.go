package vault

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/certs"
)

func (n *KVFront) certificateRoutes(rt *router) {
	rt.handle("POST", "/certificates/{name}/create", access.CertificatesWrite, n.handleCreateCertificate)
	rt.handle("POST", "/certificates/{name}/import", access.CertificatesWrite, n.handleImportCertificate)
	rt.handle("GET", "/certificates", access.CertificatesRead, n.handleListCertificates)
	rt.handle("GET", "/certificates/{name}", access.CertificatesRead, n.handleGetCertificate)
	rt.handle("GET", "/certificates/{name}/{version}", access.CertificatesRead, n.handleGetCertificate)
	rt.handle("PATCH", "/certificates/{name}", access.CertificatesWrite, n.handleUpdateCertificate)
	rt.handle("PATCH", "/certificates/{name}/{version}", access.CertificatesWrite, n.handleUpdateCertificate)
	rt.handle("GET", "/certificates/{name}/versions", access.CertificatesRead, n.handleCertificateVersions)
	rt.handle("GET", "/certificates/{name}/policy", access.CertificatesRead, n.handleGetPolicy)
	rt.handle("PATCH", "/certificates/{name}/policy", access.CertificatesWrite, n.handleUpdatePolicy)
	rt.handle("GET", "/certificates/{name}/pending", access.CertificatesRead, n.handleGetPending)
	rt.handle("PATCH", "/certificates/{name}/pending", access.CertificatesWrite, n.handleCancelPending)
	rt.handle("DELETE", "/certificates/{name}/pending", access.CertificatesWrite, n.handleDeletePending)
	rt.handle("POST", "/certificates/{name}/pending/merge", access.CertificatesWrite, n.handleMerge)
	rt.handle("DELETE", "/certificates/{name}", access.CertificatesDelete, n.handleDeleteObject(core.KindCertificates))
	rt.handle("GET", "/deletedcertificates", access.CertificatesRead, n.handleListDeleted(core.KindCertificates))
	rt.handle("GET", "/deletedcertificates/{name}", access.CertificatesRead, n.handleGetDeleted(core.KindCertificates))
	rt.handle("POST", "/deletedcertificates/{name}/recover", access.CertificatesDelete, n.handleRecover(core.KindCertificates))
	rt.handle("DELETE", "/deletedcertificates/{name}", access.CertificatesDelete, n.handlePurge(core.KindCertificates))
	rt.handle("POST", "/certificates/{name}/backup", access.CertificatesBackup, n.handleBackup(core.KindCertificates))
	rt.handle("POST", "/certificates/restore", access.CertificatesBackup, n.handleRestore(core.KindCertificates))
	rt.handle("GET", "/certificates/contacts", access.CertificatesRead, n.handleGetContacts)
	rt.handle("PUT", "/certificates/contacts", access.ContactsWrite, n.handleSetContacts)
	rt.handle("DELETE", "/certificates/contacts", access.ContactsWrite, n.handleDeleteContacts)
}

// The Key Vault front of certificates: each handler reads the path, the
// query and the body, calls the core (core_certificates.go) and writes
// Key Vault's JSON with the ids of this host.

func (n *KVFront) handleCreateCertificate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := core.ValidName(core.KindCertificates, name); err != nil {
		n.Fail(w, r, err)
		return
	}
	var req keyvault.CreateCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.CreateCertificate(r.Context(), callerOf(r), issuance.CreateCertificateRequest{Name: name, Policy: req.Policy, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	setIndexHeader(w, res.Index)
	w.Header().Set("Location", objectID(r, core.KindCertificates, name, "")+"/pending?api-version="+url.QueryEscape(r.URL.Query().Get("api-version")))
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, operationBundle(r, name, res.Operation))
}

// certBundle renders a certificate version.
func (n *KVFront) certBundle(r *http.Request, name, version string) (keyvault.Certificate, error) {
	c, err := n.Certificate(name, version)
	if err != nil {
		return keyvault.Certificate{}, err
	}
	return certificateBundle(r, c), nil
}

// certificateBundle renders a certificate version the core returned.
func certificateBundle(r *http.Request, c issuance.Certificate) keyvault.Certificate {
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
func (n *KVFront) writeCertificate(w http.ResponseWriter, r *http.Request, status int, res issuance.CertificateResult) {
	setIndexHeader(w, res.Index)
	c, err := n.certBundle(r, res.Name, res.Version)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeJSON(w, status, c)
}

func (n *KVFront) handleGetCertificate(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !n.Linearized(w, r) {
		return
	}
	c, err := n.GetCertificate(r.Context(), callerOf(r), issuance.GetCertificateRequest{Name: name, Version: version})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, certificateBundle(r, c))
}

func (n *KVFront) handleUpdateCertificate(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req keyvault.UpdateCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.UpdateCertificate(r.Context(), callerOf(r), issuance.UpdateCertificateRequest{Name: name, Version: version, Policy: req.Policy, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	n.writeCertificate(w, r, http.StatusOK, res)
}

func (n *KVFront) handleGetPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !n.Linearized(w, r) {
		return
	}
	res, err := n.GetCertificatePolicy(r.Context(), callerOf(r), name)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, policyBundle(r, name, res.Policy))
}

func (n *KVFront) handleUpdatePolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var upd keyvault.Policy
	if err := decodeBody(r, &upd); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.UpdateCertificatePolicy(r.Context(), callerOf(r), issuance.UpdateCertificatePolicyRequest{Name: name, Policy: &upd})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	setIndexHeader(w, res.Index)
	writeJSON(w, http.StatusOK, policyBundle(r, name, res.Policy))
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

func (n *KVFront) handleCertificateVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, after, err := pageParams(r)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	if !n.Linearized(w, r) {
		return
	}
	res, err := n.ListVersions(r.Context(), callerOf(r), core.ListVersionsRequest{Kind: core.KindCertificates, Name: name, Page: core.PageRequest{Limit: limit, After: after}})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writePage(w, r, certificateItems(r, res.Items), res.Next, limit)
}

func (n *KVFront) handleListCertificates(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	if !n.Linearized(w, r) {
		return
	}
	includePending := strings.EqualFold(r.URL.Query().Get("includePending"), "true")
	res, err := n.ListObjects(r.Context(), callerOf(r), core.ListObjectsRequest{Kind: core.KindCertificates, IncludePending: includePending,
		Page: core.PageRequest{Limit: limit, After: after}})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writePage(w, r, certificateItems(r, res.Items), res.Next, limit)
}

// writeOperation answers a certificate's operation.
func writeOperation(w http.ResponseWriter, r *http.Request, res issuance.CertificateOperationResult) {
	setIndexHeader(w, res.Index)
	writeJSON(w, http.StatusOK, operationBundle(r, res.Name, res.Operation))
}

func (n *KVFront) handleGetPending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !n.Linearized(w, r) {
		return
	}
	res, err := n.GetCertificateOperation(r.Context(), callerOf(r), name)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeOperation(w, r, res)
}

func (n *KVFront) handleCancelPending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Cancel *bool `json:"cancellation_requested"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.CancelCertificateOperation(r.Context(), callerOf(r), issuance.CancelCertificateOperationRequest{Name: name, CancellationRequested: req.Cancel != nil && *req.Cancel})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeOperation(w, r, res)
}

func (n *KVFront) handleDeletePending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, err := n.DeleteCertificateOperation(r.Context(), callerOf(r), name)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeOperation(w, r, res)
}

// handleMerge completes an Unknown-issuer operation with the chain signed
// outside: the leaf must carry the pending key and the policy's names.
func (n *KVFront) handleMerge(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req keyvault.MergeRequest
	if err := decodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.MergeCertificate(r.Context(), callerOf(r), issuance.MergeCertificateRequest{Name: name, X5C: req.X5C, Attributes: req.Attributes, Tags: req.Tags,
		Target: objectID(r, core.KindCertificates, name, "")})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	n.writeCertificate(w, r, http.StatusCreated, res)
}

func (n *KVFront) handleImportCertificate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := core.ValidName(core.KindCertificates, name); err != nil {
		n.Fail(w, r, err)
		return
	}
	var req keyvault.ImportCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.ImportCertificate(r.Context(), callerOf(r), issuance.ImportCertificateRequest{Name: name, Value: req.Value, Password: req.Password,
		Policy: req.Policy, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	n.writeCertificate(w, r, http.StatusOK, res)
}

// Contacts.

// writeContacts answers the vault's contacts with their id.
func writeContacts(w http.ResponseWriter, r *http.Request, res core.ContactsResult) {
	setIndexHeader(w, res.Index)
	c := res.Contacts
	c.ID = baseURL(r) + "/certificates/contacts"
	writeJSON(w, http.StatusOK, c)
}

func (n *KVFront) handleGetContacts(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	res, err := n.GetContacts(r.Context(), callerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeContacts(w, r, res)
}

func (n *KVFront) handleSetContacts(w http.ResponseWriter, r *http.Request) {
	var c keyvault.Contacts
	if err := decodeBody(r, &c); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.SetContacts(r.Context(), callerOf(r), c)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeContacts(w, r, res)
}

func (n *KVFront) handleDeleteContacts(w http.ResponseWriter, r *http.Request) {
	res, err := n.DeleteContacts(r.Context(), callerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeContacts(w, r, res)
}
