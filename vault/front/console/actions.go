package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"
)

// The everyday actions, for those allowed them (the API's actions on the
// same resources): create a certificate from a policy form, renew now,
// enable or disable, set the contacts. Each is a POST form with the
// session's CSRF token (signedIn checks it and the origin), authorized
// again when posted, and answered by a redirect to the page that shows
// the result (or the form again with what to fix).

func (f *Front) actionRoutes() {
	f.mux.HandleFunc("GET /ui/certificates/new", f.signedIn(f.handleNewCertificatePage))
	f.mux.HandleFunc("POST /ui/certificates/new", f.signedIn(f.handleNewCertificate))
	f.mux.HandleFunc("POST /ui/certificates/{name}/renew", f.signedIn(f.handleRenew))
	f.mux.HandleFunc("POST /ui/certificates/{name}/enabled", f.signedIn(f.handleSetEnabled))
	f.mux.HandleFunc("GET /ui/contacts", f.signedIn(f.handleContactsPage))
	f.mux.HandleFunc("POST /ui/contacts", f.signedIn(f.handleSetContacts))
}

// newCertificatePage is the policy form's data.
type newCertificatePage struct {
	page
	Error                                        string
	Name, Subject, DNS, Issuer, Key, Months, Pct string
	Issuers, Keys                                []string
}

func (f *Front) handleNewCertificatePage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	f.showNewCertificate(w, r, s, http.StatusOK, newCertificatePage{Issuer: "Self", Key: "EC-P256", Months: "12", Pct: "66"})
}

func (f *Front) showNewCertificate(w http.ResponseWriter, r *http.Request, s session, status int, data newCertificatePage) {
	data.page = f.pageFor(s, "New certificate", "certificates")
	data.Issuers = []string{"Self", "Unknown"}
	data.Keys = []string{"EC-P256", "EC-P384", "RSA-2048", "RSA-3072"}
	if is, err := f.ListIssuers(r.Context(), s.caller, issuance.ListIssuersRequest{}); err == nil {
		for _, it := range is.Items {
			data.Issuers = append(data.Issuers, it.Name)
		}
	}
	f.render(w, status, "newcertificate", data)
}

// handleNewCertificate makes a certificate from the form's policy.
func (f *Front) handleNewCertificate(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	form := newCertificatePage{Name: strings.TrimSpace(r.PostFormValue("name")), Subject: strings.TrimSpace(r.PostFormValue("subject")),
		DNS: strings.TrimSpace(r.PostFormValue("dns")), Issuer: r.PostFormValue("issuer"), Key: r.PostFormValue("key"),
		Months: r.PostFormValue("months"), Pct: r.PostFormValue("renew_pct")}
	res := access.Resource{Kind: core.KindCertificates, Name: form.Name}
	if !f.permit(w, r, s.caller, res, access.CertificatesWrite) {
		return
	}
	pol, err := formPolicy(form)
	if err == nil {
		_, err = f.CreateCertificate(r.Context(), s.caller, issuance.CreateCertificateRequest{Name: form.Name, Policy: pol})
	}
	if err != nil {
		var ce *core.Error
		if errors.As(err, &ce) && ce.Kind != core.KindInternal && ce.Kind != core.KindUnavailable {
			form.Error = ce.Message
			f.showNewCertificate(w, r, s, http.StatusBadRequest, form)
			return
		}
		f.Fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/certificates/"+url.PathEscape(form.Name), http.StatusSeeOther)
}

// formPolicy is the policy the form describes.
func formPolicy(form newCertificatePage) (*keyvault.Policy, error) {
	months, err := strconv.Atoi(form.Months)
	if err != nil || months < 1 || months > 120 {
		return nil, core.BadParameter("months", "validity: give a number of months from 1 to 120")
	}
	pct, err := strconv.Atoi(form.Pct)
	if err != nil || pct < 1 || pct > 99 {
		return nil, core.BadParameter("renew_pct", "renew at: give a percentage of the lifetime from 1 to 99")
	}
	if form.Subject == "" {
		return nil, core.BadParameter("subject", "subject: give a distinguished name such as CN=www.example.com")
	}
	key := &keyvault.KeyProperties{KeyType: "EC", Curve: "P-256"}
	switch form.Key {
	case "EC-P256":
	case "EC-P384":
		key.Curve = "P-384"
	case "RSA-2048", "RSA-3072":
		key = &keyvault.KeyProperties{KeyType: "RSA", KeySize: 2048}
		if form.Key == "RSA-3072" {
			key.KeySize = 3072
		}
	default:
		return nil, core.BadParameter("key", "key: choose one of the listed key types")
	}
	x := &keyvault.X509Properties{Subject: form.Subject, ValidityInMonths: months}
	if dns := strings.Fields(strings.ReplaceAll(form.DNS, ",", " ")); len(dns) > 0 {
		x.SANs = &keyvault.SubjectAlternativeNames{DNSNames: dns}
	}
	return &keyvault.Policy{KeyProperties: key, X509Properties: x, Issuer: &keyvault.IssuerParameters{Name: form.Issuer},
		LifetimeActions: []keyvault.LifetimeAction{{Trigger: keyvault.Trigger{LifetimePercentage: pct}, Action: keyvault.Action{ActionType: "AutoRenew"}}}}, nil
}

// handleRenew makes a new version now with the stored policy.
func (f *Front) handleRenew(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	name := r.PathValue("name")
	res := access.Resource{Kind: core.KindCertificates, Name: name}
	if !f.permit(w, r, s.caller, res, access.CertificatesWrite) {
		return
	}
	if _, err := f.CreateCertificate(r.Context(), s.caller, issuance.CreateCertificateRequest{Name: name}); err != nil {
		f.actionFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/certificates/"+url.PathEscape(name), http.StatusSeeOther)
}

// handleSetEnabled enables or disables the current version.
func (f *Front) handleSetEnabled(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	name := r.PathValue("name")
	res := access.Resource{Kind: core.KindCertificates, Name: name}
	if !f.permit(w, r, s.caller, res, access.CertificatesWrite) {
		return
	}
	enabled := r.PostFormValue("enabled") == "true"
	if _, err := f.UpdateCertificate(r.Context(), s.caller, issuance.UpdateCertificateRequest{Name: name, Attributes: &keyvault.Attributes{Enabled: &enabled}}); err != nil {
		f.actionFailed(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/certificates/"+url.PathEscape(name), http.StatusSeeOther)
}

// actionFailed answers a refused action with its reason, or fails.
func (f *Front) actionFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ce *core.Error
	if errors.As(err, &ce) && ce.Kind != core.KindInternal && ce.Kind != core.KindUnavailable {
		f.renderError(w, r, http.StatusBadRequest, "Not done", ce.Message)
		return
	}
	f.Fail(w, r, err)
}

// contactsPage is the contacts form's data.
type contactsPage struct {
	page
	Error, Contacts string
	CanWrite        bool
}

func (f *Front) handleContactsPage(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	res := access.Resource{Kind: core.KindCertificates}
	if !f.permit(w, r, s.caller, res, access.CertificatesRead) {
		return
	}
	data := contactsPage{page: f.pageFor(s, "Certificate contacts", "contacts"),
		CanWrite: f.Policy().Allowed(s.caller.Principal, access.ContactsWrite, access.Resource{})}
	cs, err := f.GetContacts(r.Context(), s.caller)
	if err != nil && !core.IsKind(err, core.KindNotFound) {
		f.Fail(w, r, err)
		return
	}
	var lines []string
	for _, c := range cs.Contacts.Contacts {
		lines = append(lines, strings.TrimSpace(fmt.Sprintf("%s %s", c.Email, c.Name)))
	}
	data.Contacts = strings.Join(lines, "\n")
	f.render(w, http.StatusOK, "contacts", data)
}

// handleSetContacts replaces the contacts: one per line, an address and
// an optional name.
func (f *Front) handleSetContacts(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	if !f.permit(w, r, s.caller, access.Resource{}, access.ContactsWrite) {
		return
	}
	var cs keyvault.Contacts
	for _, line := range strings.Split(r.PostFormValue("contacts"), "\n") {
		email, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		if email != "" {
			cs.Contacts = append(cs.Contacts, keyvault.Contact{Email: email, Name: strings.TrimSpace(name)})
		}
	}
	if _, err := f.SetContacts(r.Context(), s.caller, cs); err != nil {
		var ce *core.Error
		if errors.As(err, &ce) && ce.Kind == core.KindBadParameter {
			f.render(w, http.StatusBadRequest, "contacts", contactsPage{page: f.pageFor(s, "Certificate contacts", "contacts"),
				Error: ce.Message, Contacts: r.PostFormValue("contacts"), CanWrite: true})
			return
		}
		f.Fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/contacts", http.StatusSeeOther)
}
