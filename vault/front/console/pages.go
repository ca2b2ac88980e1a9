package console

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"
)

// pageRows is how many rows an inventory page shows.
const pageRows = 50

// certRow is one row of the inventory.
type certRow struct {
	objectFacts
	Subject, Issuer string
	Pending         bool
}

// certificatesPage is the inventory's data.
type certificatesPage struct {
	page
	Q, Issuer, Tag, Expiring string
	Rows                     []certRow
	Next                     string
}

// inventoryFilter is a search of the inventory.
type inventoryFilter struct {
	q, issuer, tagKey, tagValue string
	within                      time.Duration // 0: any expiry
}

// handleCertificates lists the certificates the caller may read that
// match the search, a page at a time.
func (f *Front) handleCertificates(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	q := r.URL.Query()
	data := certificatesPage{page: f.pageFor(s, "Certificates", "certificates"),
		Q: q.Get("q"), Issuer: q.Get("issuer"), Tag: q.Get("tag"), Expiring: q.Get("expiring")}
	flt, ok := parseSearch(q)
	if !ok {
		f.renderError(w, r, http.StatusBadRequest, "Bad search", badExpiring)
		return
	}
	flt.issuer = strings.ToLower(strings.TrimSpace(data.Issuer))
	rows, next, err := f.inventory(s.caller, flt, q.Get("after"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	data.Rows, data.Next = rows, nextPage("/ui/certificates", q, next)
	f.render(w, http.StatusOK, "certificates", data)
}

// inventory walks the certificates after after, keeping those the
// caller may read (certificates/read on each, the API's action) that
// match flt, until a page is full; next resumes the walk.
func (f *Front) inventory(c core.Caller, flt inventoryFilter, after string) ([]certRow, string, error) {
	now := time.Now()
	return scan(f, c, core.KindCertificates, access.CertificatesRead, flt, after, func(o *catalog.Object) (certRow, bool, error) {
		n, err := o.Names()
		if err != nil {
			return certRow{}, false, err
		}
		return certRow{objectFacts: factsOf(o, now), Pending: o.Pending, Subject: n.Subject, Issuer: n.Issuer}, true, nil
	})
}

// versionRow is one version on a certificate's page.
type versionRow struct {
	Version, Created, Expires string
	Enabled, Current          bool
	Holders                   []string
}

// policyView is a policy as the certificate's page shows it.
type policyView struct {
	Issuer, Key, Validity string
	Actions               []string
}

// certificatePage is a certificate's page data.
type certificatePage struct {
	page
	Name, Subject, Issuer, Current, Pending string
	SANs                                    []string
	// CanWrite shows the actions (renew, enable/disable) to those the
	// policy allows them; they are authorized again when posted.
	CanWrite, Enabled bool
	Versions          []versionRow
	Policy            *policyView
}

// handleCertificate shows one certificate: its versions (and the agents
// holding each), its policy and lifetime actions, its issuer and any
// operation in progress.
func (f *Front) handleCertificate(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	name := r.PathValue("name")
	res := access.Resource{Kind: core.KindCertificates, Name: name}
	if !f.permit(w, r, s.caller, res, access.CertificatesRead) {
		return
	}
	cert, err := f.GetCertificate(r.Context(), s.caller, issuance.GetCertificateRequest{Name: name})
	if core.IsKind(err, core.KindNotFound) {
		f.renderError(w, r, http.StatusNotFound, "Not found", "There is no certificate "+name+".")
		return
	}
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	data := certificatePage{page: f.pageFor(s, "Certificate "+cert.Name, "certificates"),
		Name: cert.Name, Current: cert.Version, Enabled: cert.Attributes.IsEnabled(),
		CanWrite: f.Policy().Allowed(s.caller.Principal, access.CertificatesWrite, res)}
	if len(cert.Chain) > 0 {
		if leaf, err := x509.ParseCertificate(cert.Chain[0]); err == nil {
			data.Subject, data.SANs = leaf.Subject.String(), leaf.DNSNames
		}
	}
	if p := cert.Policy; p != nil {
		data.Policy = viewPolicy(p)
		data.Issuer = data.Policy.Issuer
	}
	if op, err := f.GetCertificateOperation(r.Context(), s.caller, name); err == nil && op.Operation != nil && op.Operation.Status != "" {
		data.Pending = op.Operation.Status
		if op.Operation.StatusDetails != "" {
			data.Pending += ": " + op.Operation.StatusDetails
		}
	}
	holders := f.Holders(core.KindCertificates, name)
	versions, err := f.ListCertificateVersions(r.Context(), s.caller, core.ListVersionsRequest{Name: name, Page: core.PageRequest{Limit: 25}})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	for _, v := range versions.Items {
		row := versionRow{Version: v.Version, Current: v.Version == cert.Version, Enabled: v.Attributes.IsEnabled(),
			Holders: holders[v.Version]}
		if v.Attributes.Created != 0 {
			row.Created = time.Unix(v.Attributes.Created, 0).UTC().Format("2006-01-02 15:04")
		}
		if v.Attributes.Expires != nil {
			row.Expires = time.Unix(*v.Attributes.Expires, 0).UTC().Format("2006-01-02")
		}
		data.Versions = append(data.Versions, row)
	}
	f.render(w, http.StatusOK, "certificate", data)
}

// viewPolicy is what the page shows of a policy.
func viewPolicy(p *keyvault.Policy) *policyView {
	v := &policyView{}
	if p.Issuer != nil {
		v.Issuer = p.Issuer.Name
	}
	if k := p.KeyProperties; k != nil {
		v.Key = strings.TrimSpace(fmt.Sprintf("%s %s", k.KeyType, keySize(k)))
	}
	if x := p.X509Properties; x != nil {
		switch {
		case x.ValidityDuration != "":
			v.Validity = x.ValidityDuration
		case x.ValidityInMonths > 0:
			v.Validity = fmt.Sprintf("%d months", x.ValidityInMonths)
		}
	}
	for _, a := range p.LifetimeActions {
		when := fmt.Sprintf("at %d%% of its life", a.Trigger.LifetimePercentage)
		if a.Trigger.DaysBeforeExpiry > 0 {
			when = fmt.Sprintf("%d days before expiry", a.Trigger.DaysBeforeExpiry)
		}
		v.Actions = append(v.Actions, a.Action.ActionType+" "+when)
	}
	return v
}

func keySize(k *keyvault.KeyProperties) string {
	if k.Curve != "" {
		return k.Curve
	}
	if k.KeySize > 0 {
		return strconv.Itoa(k.KeySize)
	}
	return ""
}
