package access

import (
	"errors"
	"testing"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "/"}, {"/", "/"}, {"/certificates", "/certificates"}, {"/certificates/", "/certificates"},
		{"/certificates/*", "/certificates"}, {"/certificates/www", "/certificates/www"},
		{"/certificates/web-", "/certificates/web-*"}, {"/secrets/db*", "/secrets/db*"}, {"/issuers/Digi", "/issuers/digi"},
		{"/certificates/Web-*", "/certificates/web-*"}, {"/secrets/CASEY", "/secrets/casey"},
	} {
		sc, err := ParseScope(tc.in)
		if err != nil || sc.String() != tc.want {
			t.Errorf("ParseScope(%q) = %v, %v; want %s", tc.in, sc, err, tc.want)
		}
	}
	for _, bad := range []string{"certificates", "/vaults", "/certificates/a b", "/certificates/a/b", "/secrets/ü"} {
		if _, err := ParseScope(bad); !errors.Is(err, ErrBadScope) {
			t.Errorf("ParseScope(%q) err = %v, want ErrBadScope", bad, err)
		}
	}
}

func TestAllowed(t *testing.T) {
	p := NewPolicy([]Assignment{
		{ID: "1", Role: CertificatesOfficer, Assignee: "app", Scope: "/certificates/web-*"},
		{ID: "2", Role: "certificate-user", Assignee: "group:nginx", Scope: "/certificates/www"},
		{ID: "3", Role: SecretsUser, Assignee: "db", Scope: "/secrets/db"},
		{ID: "4", Role: Administrator, Assignee: "root", Scope: "/"},
		{ID: "5", Role: Reader, Assignee: "auditor", Scope: "/certificates"},
		{ID: "6", Role: "No Such Role", Assignee: "x", Scope: "/"},
	})
	app := Principal{Name: "app"}
	agent := Principal{Name: "agent:1", Groups: []string{"nginx"}}
	for _, tc := range []struct {
		name string
		p    Principal
		a    Action
		r    Resource
		want bool
	}{
		{"officer in prefix", app, CertificatesWrite, Resource{Kind: "certificates", Name: "web-1"}, true},
		{"officer outside prefix", app, CertificatesWrite, Resource{Kind: "certificates", Name: "www"}, false},
		{"officer lists only with a collection scope", app, CertificatesRead, Resource{Kind: "certificates"}, false},
		{"officer never reads the private key", app, SecretsGet, Resource{Kind: "secrets", Name: "web-1", Certificate: true}, false},
		{"officer never reads issuers", app, IssuersRead, Resource{Kind: "issuers", Name: "digicert"}, false},
		{"officer has no vault action from an object scope", app, ContactsWrite, Resource{}, false},
		{"group reads the managed secret", agent, SecretsGet, Resource{Kind: "secrets", Name: "www", Certificate: true}, true},
		{"group: a plain secret of the same name is not the certificate's", agent, SecretsGet, Resource{Kind: "secrets", Name: "www"}, false},
		{"group: other certificate", agent, SecretsGet, Resource{Kind: "secrets", Name: "api", Certificate: true}, false},
		{"exact name is not a prefix", Principal{Name: "db"}, SecretsGet, Resource{Kind: "secrets", Name: "db2"}, false},
		{"exact name", Principal{Name: "db"}, SecretsGet, Resource{Kind: "secrets", Name: "db"}, true},
		// Names are case-insensitive: another spelling is the same
		// object, inside a scope and outside it alike.
		{"exact name, other spelling", Principal{Name: "db"}, SecretsGet, Resource{Kind: "secrets", Name: "DB"}, true},
		{"exact name, other spelling is not a prefix", Principal{Name: "db"}, SecretsGet, Resource{Kind: "secrets", Name: "DB2"}, false},
		{"prefix, other spelling", app, CertificatesWrite, Resource{Kind: "certificates", Name: "WEB-1"}, true},
		{"group: managed secret, other spelling", agent, SecretsGet, Resource{Kind: "secrets", Name: "WWW", Certificate: true}, true},
		{"group: other certificate, other spelling", agent, SecretsGet, Resource{Kind: "secrets", Name: "API", Certificate: true}, false},
		{"root", Principal{Name: "root"}, ClusterWrite, Resource{}, true},
		{"reader collection", Principal{Name: "auditor"}, CertificatesRead, Resource{Kind: "certificates"}, true},
		{"reader has no audit from a collection scope", Principal{Name: "auditor"}, AuditRead, Resource{}, false},
		{"unknown role grants nothing", Principal{Name: "x"}, CertificatesRead, Resource{Kind: "certificates"}, false},
		{"nobody", Principal{Name: "nobody"}, CertificatesRead, Resource{Kind: "certificates", Name: "www"}, false},
	} {
		if got := p.Allowed(tc.p, tc.a, tc.r); got != tc.want {
			t.Errorf("%s: Allowed = %v, want %v", tc.name, got, tc.want)
		}
	}
	if n := len(p.Assignments()); n != 5 {
		t.Errorf("Assignments = %d, want 5 (the unknown role skipped)", n)
	}
	if gs := p.Grants(Resource{Kind: "secrets", Name: "www", Certificate: true}); len(gs) != 3 {
		t.Errorf("Grants(/secrets/www) = %v, want root, group:nginx and the reader of /certificates", gs)
	}
	alive := func(string) bool { return true }
	if !p.HasAdministrator("x", alive) || p.HasAdministrator("root", alive) {
		t.Error("HasAdministrator: want only root")
	}
}

func TestLookupRole(t *testing.T) {
	for _, n := range []string{"Certificates Officer", "certificates-officer", "CERTIFICATESOFFICER"} {
		if r, err := LookupRole(n); err != nil || r.Name != CertificatesOfficer {
			t.Errorf("LookupRole(%q) = %v, %v", n, r.Name, err)
		}
	}
	if _, err := LookupRole("Owner"); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("LookupRole(Owner) err = %v", err)
	}
	if err := ValidPrincipalName("-x"); err == nil {
		t.Error("ValidPrincipalName(-x) accepted")
	}
	if _, err := ParseAssignee("agent:1"); err == nil {
		t.Error("ParseAssignee(agent:1) accepted")
	}
}
