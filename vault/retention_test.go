package vault

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/audit"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/issuance"
)

// retainAll runs retention rounds at now until one purges nothing and
// finds nothing stale (a concurrent write, such as an expiry event the
// moved clock fired, makes a batch stale; the next round redoes it), and
// returns how many versions were purged in all.
func retainAll(t *testing.T, n *Node, now time.Time) int {
	t.Helper()
	total := 0
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, err := n.RetentionRound(context.Background(), now)
		if err != nil {
			t.Fatalf("retention round: %v", err)
		}
		total += res.Purged
		if res.Purged == 0 && res.Stale == 0 {
			return total
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention rounds still purging or stale after 30 s: last %+v", res)
		}
	}
}

// versionsOf lists an object's versions through the core's listing.
func versionsOf(t *testing.T, n *Node, kind, name string) []string {
	t.Helper()
	res, err := n.ListVersions(context.Background(), core.Caller{}, core.ListVersionsRequest{Kind: kind, Name: name, Page: core.PageRequest{Limit: 25}})
	if err != nil {
		t.Fatalf("versions of %s/%s: %v", kind, name, err)
	}
	var out []string
	for _, it := range res.Items {
		out = append(out, it.Version)
	}
	slices.Sort(out)
	return out
}

func sortedCopy(vs ...string) []string {
	out := slices.Clone(vs)
	slices.Sort(out)
	return out
}

// TestVersionRetention (issue 20, item 2): the leader's retention round
// purges the versions the rules let go — older than the last N, expired
// more than D days ago or without expiry — and never the current
// version, one an agent holds, one a rollout refers to, one within its
// validity or grace; an object's own retention overrides the vault's; a
// batch built on a state that changed fails; each batch leaves an audit
// record; a purged certificate version stays in the evidence report.
func TestVersionRetention(t *testing.T) {
	clock := &testClock{}
	start := time.Now().Truncate(time.Second)
	clock.Set(start)
	n := startClockNode(t, clock)
	ctx := context.Background()
	p := core.Caller{}
	p.Name = "retention-test"

	// Nothing is purged while retain_versions is 0, the default.
	s, err := n.GetSettings(ctx, p)
	if err != nil || s.RetainVersions != 0 || s.RetainExpiredDays == nil || *s.RetainExpiredDays != core.DefaultRetainExpiredDays {
		t.Fatalf("default settings: %+v %v, want retain_versions 0 and retain_expired_days %d", s, err, core.DefaultRetainExpiredDays)
	}

	// Secret db: eight versions.
	now := time.Now()
	day := int64(86400)
	exp := func(days int) *keyvault.Attributes {
		e := now.Unix() + int64(days)*day
		return &keyvault.Attributes{Expires: &e}
	}
	off := false
	attrs := []*keyvault.Attributes{
		exp(-40),                     // s1: expired beyond the grace: purged
		exp(-40),                     // s2: the same, but an agent holds it: kept
		exp(-10),                     // s3: expired within the grace: kept
		{Enabled: &off},              // s4: no expiry, disabled: purged by N alone
		exp(10),                      // s5: valid: kept
		nil,                          // s6: a rollout's previous version: kept
		nil,                          // s7: among the last 2: kept
		{Expires: exp(-100).Expires}, // s8: current (even expired): kept
	}
	db := make([]string, len(attrs))
	for i, a := range attrs {
		v, err := n.SetSecret(ctx, p, core.SetSecretRequest{Name: "db", Value: new(string), Attributes: a})
		if err != nil {
			t.Fatalf("set db version %d: %v", i+1, err)
		}
		db[i] = v.Version
	}
	if got := retainAll(t, n, clock.Now()); got != 0 {
		t.Fatalf("retain_versions 0 purged %d versions", got)
	}
	putAgent(t, n, fleet.AgentRecord{ID: "a1", Name: "vm-1"}, fleet.AgentReport{Object: "secrets/db", Result: "installed", Version: db[1]})
	// A revoked agent holds nothing: it can fetch nothing more.
	putAgent(t, n, fleet.AgentRecord{ID: "a2", Name: "vm-2", Revoked: true}, fleet.AgentReport{Object: "secrets/db", Result: "installed", Version: db[0]})
	rollout := fleet.Rollout{Object: "secrets/db", Version: db[7], Previous: db[5], Status: "running"}
	if _, err := n.Store.Apply(ctx, (&raftstore.Batch{}).Put(fleet.RolloutKey(core.KindSecrets, "db"), core.MustJSON(rollout))); err != nil {
		t.Fatalf("store the rollout of db: %v", err)
	}

	// Secret keep: its own retention keeps every version.
	for i := range 3 {
		if _, err := n.SetSecret(ctx, p, core.SetSecretRequest{Name: "keep", Value: new(string)}); err != nil {
			t.Fatalf("set keep version %d: %v", i+1, err)
		}
	}
	zero := 0
	view, err := n.SetObjectRetention(ctx, p, core.SetObjectRetentionRequest{Kind: core.KindSecrets, Name: "keep", Retention: core.ObjectRetention{RetainVersions: &zero}})
	if err != nil || view.Effective.Versions != 0 || view.Object.RetainVersions == nil || view.Index == 0 {
		t.Fatalf("set the retention of keep: %+v %v", view, err)
	}

	// Bad settings are refused with what to give.
	bad := -1
	_, err = n.UpdateSettings(ctx, p, core.UpdateSettingsRequest{RetainVersions: &bad})
	wantCoreError(t, "retain_versions -1", err, core.KindBadParameter, "BadParameter", "retain_versions")
	tooLong := core.MaxRetainExpiredDays + 1
	_, err = n.SetObjectRetention(ctx, p, core.SetObjectRetentionRequest{Kind: core.KindSecrets, Name: "db", Retention: core.ObjectRetention{RetainExpiredDays: &tooLong}})
	wantCoreError(t, "retain_expired_days 3651", err, core.KindBadParameter, "BadParameter", "retain_expired_days")
	_, err = n.SetObjectRetention(ctx, p, core.SetObjectRetentionRequest{Kind: core.KindSecrets, Name: "nothing", Retention: core.ObjectRetention{RetainVersions: &zero}})
	wantCoreError(t, "retention of a missing secret", err, core.KindNotFound, "SecretNotFound", "")

	two, thirty := 2, 30
	if _, err := n.UpdateSettings(ctx, p, core.UpdateSettingsRequest{RetainVersions: &two, RetainExpiredDays: &thirty}); err != nil {
		t.Fatalf("set retain_versions 2: %v", err)
	}

	// A batch built before the object changed fails: retention never
	// races a new version.
	m, me, _, err := n.LoadMeta(core.KindSecrets, "db")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := n.PlanRetention(core.KindSecrets, "db", m, me, nil, clock.Now())
	if err != nil || len(plan.Victims) == 0 {
		t.Fatalf("plan of db: %+v %v, want victims", plan, err)
	}
	if _, err := n.UpdateSecret(ctx, p, core.UpdateSecretRequest{Name: "db", Version: db[7], Tags: map[string]string{"touched": "yes"}}); err != nil {
		t.Fatalf("update db: %v", err)
	}
	b, err := n.RetentionBatch(plan, plan.Victims, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Commit(ctx, b); !core.IsConflict(err) {
		t.Fatalf("a batch built before an update of db: got %v, want a conflict", err)
	}

	if got := retainAll(t, n, clock.Now()); got != 2 {
		t.Errorf("purged %d versions of db, want 2 (s1 and s4)", got)
	}
	if got, want := versionsOf(t, n, core.KindSecrets, "db"), sortedCopy(db[1], db[2], db[4], db[5], db[6], db[7]); !slices.Equal(got, want) {
		t.Errorf("versions of db: got %v, want %v", got, want)
	}
	for _, v := range []string{db[0], db[3]} {
		_, err := n.GetSecret(ctx, p, core.GetSecretRequest{Name: "db", Version: v})
		wantCoreError(t, "get a purged version", err, core.KindNotFound, "SecretNotFound", "")
		if _, ok := n.Store.Get(core.ValKey(core.KindSecrets, "db", v)); ok {
			t.Errorf("the value of purged version %s is still stored", v)
		}
	}
	if got := len(versionsOf(t, n, core.KindSecrets, "keep")); got != 3 {
		t.Errorf("keep has %d versions, want its 3: its own retain_versions 0 keeps them", got)
	}
	recs, err := n.QueryAudit(ctx, p, core.AuditQuery{Filter: audit.Filter{Principal: fleet.RetentionPrincipal, Object: "/secrets/db"}, Limit: 10})
	if err != nil || len(recs.Value) != 1 {
		t.Fatalf("audit records of the purge: %+v %v, want one", recs, err)
	}
	if r := recs.Value[0]; r.Version != db[0]+","+db[3] || r.Outcome != "allowed" || r.Action != "secrets/delete" || r.Detail == "" {
		t.Errorf("audit record of the purge: %+v, want versions %s,%s, the rule and secrets/delete", r, db[0], db[3])
	}

	// db is done with; deleted objects are the purge janitor's.
	if _, err := n.DeleteObject(ctx, p, core.ObjectRequest{Kind: core.KindSecrets, Name: "db"}); err != nil {
		t.Fatalf("delete db: %v", err)
	}

	// Certificate www: four versions a month long, made 40 days apart.
	pol := &keyvault.Policy{
		KeyProperties:  &keyvault.KeyProperties{KeyType: keyvault.KeyTypeEC, Curve: "P-256"},
		X509Properties: &keyvault.X509Properties{Subject: "CN=www.example", ValidityInMonths: 1},
		Issuer:         &keyvault.IssuerParameters{Name: keyvault.IssuerSelf},
		LifetimeActions: []keyvault.LifetimeAction{{Trigger: keyvault.Trigger{DaysBeforeExpiry: 1},
			Action: keyvault.Action{ActionType: keyvault.ActionEmailContacts}}},
	}
	var www []string
	var made []time.Time
	for i := range 4 {
		clock.Set(start.Add(time.Duration(i) * 40 * 24 * time.Hour))
		made = append(made, clock.Now())
		// The moved clock fires the expiry events of the version before,
		// which change the certificate's record: a create that races them
		// is refused as a conflict, and made again.
		var res issuance.CertificateOperationResult
		for deadline := time.Now().Add(30 * time.Second); ; {
			res, err = n.CreateCertificate(ctx, p, issuance.CreateCertificateRequest{Name: "www", Policy: pol})
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Kind != core.KindConflict || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || res.Operation.Status != keyvault.StatusCompleted {
			t.Fatalf("create www version %d: %+v %v", i+1, res, err)
		}
		c, err := n.GetCertificate(ctx, p, issuance.GetCertificateRequest{Name: "www"})
		if err != nil {
			t.Fatalf("get www: %v", err)
		}
		www = append(www, c.Version)
	}
	// 120 days on: versions 1 and 2 expired more than 30 days ago,
	// version 3 ten days ago (within the grace), version 4 is current.
	one := 1
	if _, err := n.SetObjectRetention(ctx, p, core.SetObjectRetentionRequest{Kind: core.KindCertificates, Name: "www", Retention: core.ObjectRetention{RetainVersions: &one}}); err != nil {
		t.Fatalf("set the retention of www: %v", err)
	}
	_, err = n.SetObjectRetention(ctx, p, core.SetObjectRetentionRequest{Kind: core.KindSecrets, Name: "www", Retention: core.ObjectRetention{RetainVersions: &one}})
	wantCoreError(t, "retention of a certificate's secret", err, core.KindForbidden, "Forbidden", "")
	if got := retainAll(t, n, clock.Now()); got != 2 {
		t.Errorf("purged %d versions of www, want 2", got)
	}
	if got, want := versionsOf(t, n, core.KindCertificates, "www"), sortedCopy(www[2], www[3]); !slices.Equal(got, want) {
		t.Errorf("versions of www: got %v, want %v", got, want)
	}
	if got, want := versionsOf(t, n, core.KindSecrets, "www"), sortedCopy(www[2], www[3]); !slices.Equal(got, want) {
		t.Errorf("versions of the secret www: got %v, want %v", got, want)
	}
	_, err = n.GetCertificate(ctx, p, issuance.GetCertificateRequest{Name: "www", Version: www[0]})
	wantCoreError(t, "get a purged certificate version", err, core.KindNotFound, "CertificateNotFound", "")
	hist := n.ListHistory(core.KindCertificates, "www")
	if len(hist) != 2 {
		t.Fatalf("history of www: %+v, want versions 1 and 2", hist)
	}
	for _, h := range hist {
		if (h.Version != www[0] && h.Version != www[1]) || h.Serial == "" || len(h.Thumbprint) != 40 || h.Expires == 0 || h.Purged != clock.Now().Unix() || h.Reason == "" || h.CreatedBy != "retention-test" {
			t.Errorf("history record %+v: want version 1 or 2 with serial, thumbprint, expiry, purge time, reason and creator", h)
		}
	}

	// The evidence report over the first 50 days lists the two versions
	// made then, both purged, with their history.
	rep, err := n.EvidenceReport(ctx, p, fleet.EvidenceReportRequest{Since: made[0], Until: made[1].Add(10 * 24 * time.Hour)})
	if err != nil {
		t.Fatalf("evidence report: %v", err)
	}
	var got []string
	for _, c := range rep.Certificates {
		if c.Name != "www" {
			continue
		}
		for _, v := range c.Versions {
			if v.Purged == nil || v.Serial == "" || v.Expires.IsZero() || v.How != "create" {
				t.Errorf("report version %+v: want a purged version with its serial, expiry and how", v)
			}
			got = append(got, v.Version)
		}
	}
	if want := []string{www[1], www[0]}; !slices.Equal(got, want) {
		t.Errorf("report of the first 50 days: versions %v, want %v (newest first)", got, want)
	}
	// A purge of the object takes the history with it.
	if _, err := n.DeleteObject(ctx, p, core.ObjectRequest{Kind: core.KindCertificates, Name: "www"}); err != nil {
		t.Fatalf("delete www: %v", err)
	}
	if _, err := n.PurgeObject(ctx, p, core.ObjectRequest{Kind: core.KindCertificates, Name: "www"}); err != nil {
		t.Fatalf("purge www: %v", err)
	}
	if h := n.ListHistory(core.KindCertificates, "www"); len(h) != 0 {
		t.Errorf("history of www after its purge: %+v, want none", h)
	}
	if _, ok := n.Store.Get(core.RetainKey(core.KindCertificates, "www")); ok {
		t.Error("the retention of www outlived its purge")
	}
}
