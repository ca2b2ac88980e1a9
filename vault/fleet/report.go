package fleet

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/report"
	"github.com/certvault/certvault/internal/serial"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/audit"
	"github.com/certvault/certvault/vault/certs"
)

// The core of the evidence report (internal/report): rotation history
// from the certificate versions and the history records of those that
// version retention purged, deliveries from the agents' install
// reports, access from the role assignments, and secret reads from every
// node's audit trail.

// EvidenceReportRequest bounds the report in time.
type EvidenceReportRequest struct {
	// Since, when set, leaves out versions, deliveries and reads before it.
	Since time.Time
	// Until, when set, leaves out versions, deliveries and reads at or
	// after it.
	Until time.Time
}

// within reports whether t lies in the request's period.
func (req EvidenceReportRequest) within(t time.Time) bool {
	return (req.Since.IsZero() || !t.Before(req.Since)) && (req.Until.IsZero() || t.Before(req.Until))
}

// EvidenceReport builds the evidence report from the local state (the
// front makes it current first) and every node's audit trail. Its Vault
// (the address the caller used) is the front's to fill in.
func (f *Fleet) EvidenceReport(ctx context.Context, p core.Caller, req EvidenceReportRequest) (*report.Report, error) {
	rep := &report.Report{Generated: time.Now().UTC(),
		Certificates: []report.Certificate{}, Deliveries: []report.Delivery{}, Access: []report.Access{}, SecretReads: []report.SecretRead{}}
	if !req.Since.IsZero() {
		s := req.Since.UTC()
		rep.Since = &s
	}
	if !req.Until.IsZero() {
		u := req.Until.UTC()
		rep.Until = &u
	}
	certNames := f.reportRotation(rep, req)
	f.reportDeliveries(rep, req)
	f.reportAccess(rep, certNames)
	if err := f.reportReads(ctx, rep, req); err != nil {
		return nil, err
	}
	return rep, nil
}

// reportRotation fills section (a) and returns the certificate names.
func (f *Fleet) reportRotation(rep *report.Report, req EvidenceReportRequest) []string {
	prefix := "meta/" + core.KindCertificates + "/"
	es, _ := f.Store.List(prefix, "", 0)
	var names []string
	for _, e := range es {
		var m core.ObjectMeta
		if json.Unmarshal(e.Value, &m) != nil || m.Deleted != nil {
			continue
		}
		name := strings.TrimPrefix(e.Key, prefix)
		names = append(names, name)
		rc := report.Certificate{Name: name, Versions: []report.Version{}}
		if p, _, ok, _ := f.LoadPolicy(name); ok {
			rc.Issuer = p.IssuerName()
			if p.X509Properties != nil {
				rc.Subject = p.X509Properties.Subject
			}
			rc.AutoRenew = slices.ContainsFunc(p.LifetimeActions, func(la keyvault.LifetimeAction) bool { return la.Action.ActionType == keyvault.ActionAutoRenew })
		}
		vs, _ := f.Store.List(core.VerPrefix(core.KindCertificates, name), "", 0)
		for _, ve := range vs {
			var v core.VersionMeta
			if json.Unmarshal(ve.Value, &v) != nil || len(v.Chain) == 0 {
				continue
			}
			created := time.Unix(v.Attributes.Created, 0).UTC()
			if !req.within(created) {
				continue
			}
			leaf, err := x509.ParseCertificate(v.Chain[0])
			if err != nil {
				continue
			}
			version := strings.TrimPrefix(ve.Key, core.VerPrefix(core.KindCertificates, name))
			how := v.How
			if how == "" {
				how = "create"
			}
			rc.Versions = append(rc.Versions, report.Version{
				Version: version, Serial: serial.Format(leaf.SerialNumber),
				Thumbprint: strings.ToUpper(hex.EncodeToString(certs.Thumbprint(v.Chain[0]))),
				Created:    created, NotBefore: leaf.NotBefore.UTC(), Expires: leaf.NotAfter.UTC(),
				CreatedBy: v.CreatedBy, How: how, Current: version == m.Current,
				Enabled: v.Attributes.Enabled == nil || *v.Attributes.Enabled,
			})
		}
		// Versions that retention purged stay in the history as their
		// history records.
		for _, h := range f.ListHistory(core.KindCertificates, name) {
			created := time.Unix(h.Created, 0).UTC()
			if !req.within(created) {
				continue
			}
			purged := time.Unix(h.Purged, 0).UTC()
			how := h.How
			if how == "" {
				how = "create"
			}
			rc.Versions = append(rc.Versions, report.Version{
				Version: h.Version, Serial: h.Serial, Thumbprint: h.Thumbprint,
				Created: created, NotBefore: time.Unix(h.NotBefore, 0).UTC(), Expires: time.Unix(h.Expires, 0).UTC(),
				CreatedBy: h.CreatedBy, How: how, Enabled: h.Enabled, Purged: &purged, PurgeReason: h.Reason,
			})
		}
		slices.SortFunc(rc.Versions, func(a, b report.Version) int { return b.Created.Compare(a.Created) })
		rep.Certificates = append(rep.Certificates, rc)
	}
	return names
}

// reportDeliveries fills section (b) from the agents' install reports.
func (f *Fleet) reportDeliveries(rep *report.Report, req EvidenceReportRequest) {
	agents := map[string]AgentRecord{}
	for _, a := range f.agents() {
		agents[a.ID] = a
	}
	for _, d := range f.deliveries(req.Since) {
		kind, name, _ := strings.Cut(d.Object, "/")
		if kind != core.KindCertificates || !req.within(d.Time) {
			continue
		}
		detail := d.Detail
		if d.Hook != nil && d.Hook.Error != "" {
			detail = strings.TrimSpace(detail + "; reload: " + d.Hook.Error)
		}
		rep.Deliveries = append(rep.Deliveries, report.Delivery{Agent: d.Agent, AgentName: agents[d.Agent].Name, Group: agents[d.Agent].Group,
			Certificate: name, Version: d.Version, Time: d.Time, Result: d.Result, Detail: detail})
	}
}

// reportAccess fills section (c), first half: every object and who may
// read it, read its secret, or change it.
func (f *Fleet) reportAccess(rep *report.Report, certNames []string) {
	as, _ := f.Assignments()
	type object struct {
		res  access.Resource
		read access.Action
		put  access.Action
	}
	var objs []object
	for _, name := range certNames {
		objs = append(objs, object{access.Resource{Kind: core.KindCertificates, Name: name}, access.CertificatesRead, access.CertificatesWrite})
	}
	for _, kind := range []string{core.KindSecrets, core.KindKeys} {
		prefix := "meta/" + kind + "/"
		es, _ := f.Store.List(prefix, "", 0)
		for _, e := range es {
			var m core.ObjectMeta
			if json.Unmarshal(e.Value, &m) != nil || m.Deleted != nil || m.ManagedBy != "" {
				continue
			}
			name := strings.TrimPrefix(e.Key, prefix)
			if kind == core.KindSecrets {
				objs = append(objs, object{access.Resource{Kind: kind, Name: name}, access.SecretsMetadata, access.SecretsWrite})
			} else {
				objs = append(objs, object{access.Resource{Kind: kind, Name: name}, access.KeysRead, access.KeysWrite})
			}
		}
	}
	for _, a := range as {
		pol := access.NewPolicy([]access.Assignment{a})
		pr := access.Principal{Name: a.Assignee}
		if g, ok := strings.CutPrefix(a.Assignee, access.GroupPrefix); ok {
			pr = access.Principal{Groups: []string{g}}
		}
		for _, o := range objs {
			secret := access.Resource{Kind: core.KindSecrets, Name: o.res.Name, Certificate: o.res.Kind == core.KindCertificates}
			readsSecret := o.res.Kind != core.KindKeys && pol.Allowed(pr, access.SecretsGet, secret)
			writes := pol.Allowed(pr, o.put, o.res)
			if !readsSecret && !writes && !pol.Allowed(pr, o.read, o.res) {
				continue
			}
			rep.Access = append(rep.Access, report.Access{Object: o.res.String(), Principal: a.Assignee, Role: a.Role, Scope: a.Scope, ReadsSecret: readsSecret, Writes: writes})
		}
	}
	slices.SortFunc(rep.Access, func(a, b report.Access) int {
		return strings.Compare(a.Object+"\x00"+a.Principal+"\x00"+a.Role, b.Object+"\x00"+b.Principal+"\x00"+b.Role)
	})
}

// reportReads fills section (c), second half, from the audit trails.
func (f *Fleet) reportReads(ctx context.Context, rep *report.Report, req EvidenceReportRequest) error {
	res, err := f.AuditRecords(ctx, core.AuditQuery{Filter: audit.Filter{Since: req.Since, Until: req.Until, Object: "/secrets/", Outcome: "allowed"}, Limit: 100000})
	if err != nil {
		return err
	}
	rep.Unreachable = res.Unreachable
	type key struct{ object, principal string }
	sums := map[key]*report.SecretRead{}
	for _, rec := range res.Value {
		if rec.Action != string(access.SecretsGet) {
			continue
		}
		k := key{rec.Object, rec.Principal}
		s := sums[k]
		if s == nil {
			s = &report.SecretRead{Object: rec.Object, Principal: rec.Principal, First: rec.Time}
			sums[k] = s
		}
		s.Count++
		s.Last = rec.Time
	}
	for _, s := range sums {
		rep.SecretReads = append(rep.SecretReads, *s)
	}
	slices.SortFunc(rep.SecretReads, func(a, b report.SecretRead) int {
		return strings.Compare(a.Object+"\x00"+a.Principal, b.Object+"\x00"+b.Principal)
	})
	return nil
}
