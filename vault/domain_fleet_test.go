package vault

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/identity"

	"github.com/certvault/certvault/vault/access"
)

// TestFleetCoreErrors: the /v1 extensions' core refuses with typed errors
// (issue 17): the kind, the code, and for a bad parameter the request
// member's wire name, with the messages the fronts have always sent.
func TestFleetCoreErrors(t *testing.T) {
	ttlErr := func() error { _, err := core.ParseTTL("soon"); return err }
	assignErr := func(role, assignee, scope string) func() error {
		return func() error { _, err := identity.NewAssignment(role, assignee, scope, "root"); return err }
	}
	csr := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "web 01"}}
	for _, tc := range []struct {
		name  string
		err   func() error
		kind  core.ErrorKind
		code  string
		field string
		msg   string
	}{
		{"ttl", ttlErr, core.KindBadParameter, "BadParameter", "ttl", `ttl "soon": give a duration such as 90m, 12h or 30d`},
		{"role", assignErr("Nobody", "alice", "/"), core.KindBadParameter, "BadParameter", "role", ""},
		{"assignee", assignErr(access.Administrator, "", "/"), core.KindBadParameter, "BadParameter", "assignee", ""},
		{"scope missing", assignErr(access.Administrator, "alice", ""), core.KindBadParameter, "BadParameter", "scope", ""},
		{"waves", func() error { return fleet.ParseWaves([]string{"1", "50%"}) }, core.KindBadParameter, "BadParameter", "waves",
			"waves: the last wave must be 100% so that every agent gets the version"},
		{"wave size", func() error { _, err := fleet.WaveSize("x%", 10); return err }, core.KindBadParameter, "BadParameter", "waves", ""},
		{"last administrator", func() error { return identity.AdminRemains(nil, nil) }, core.KindConflict, "LastAdministrator", "", ""},
		{"enroll name", func() error { _, err := fleet.AgentEnrollName("", csr); return err }, core.KindBadParameter, "BadParameter", "name",
			`name "web 01": use a host name (letters, digits, . _ @ -)`},
		{"agent token", func() error { return fleet.BadAgentToken() }, core.KindForbidden, "Forbidden", "",
			"agent join token is not valid (wrong, expired or used up; ask for a new one: certvault agent join-token create)"},
		{"agent not found", func() error { return fleet.ErrAgentNotFound("a1") }, core.KindNotFound, "AgentNotFound", "",
			`no agent has ID "a1" ('certvault agent list' shows them)`},
		{"watch unavailable", func() error { return core.Unavailable(errors.New("no leader")) }, core.KindUnavailable, "ServiceUnavailable", "",
			"the cluster has no leader or is not ready; retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *core.Error
			err := tc.err()
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want a core *Error", err, err)
			}
			if ce.Kind != tc.kind || ce.Code != tc.code || ce.Field != tc.field {
				t.Errorf("got kind %d code %s field %q, want kind %d code %s field %q", ce.Kind, ce.Code, ce.Field, tc.kind, tc.code, tc.field)
			}
			if tc.msg != "" && ce.Message != tc.msg {
				t.Errorf("got message %q, want %q", ce.Message, tc.msg)
			}
		})
	}
}

// TestAgentEnrollName: an agent enrolls under the name it asks for, else
// its CSR's common name.
func TestAgentEnrollName(t *testing.T) {
	csr := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "web-01"}}
	for _, tc := range []struct{ requested, want string }{
		{"", "web-01"},
		{"edge-7", "edge-7"},
	} {
		got, err := fleet.AgentEnrollName(tc.requested, csr)
		if err != nil || got != tc.want {
			t.Errorf("AgentEnrollName(%q): got %q %v, want %q", tc.requested, got, err, tc.want)
		}
	}
}
