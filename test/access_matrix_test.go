package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
	"github.com/certvault/certvault/vault"
	"github.com/certvault/certvault/vault/access"
)

// matrixRoles are the roles of the access matrix, with the abbreviations
// accessMatrix uses.
var matrixRoles = []struct{ abbr, role string }{
	{"Adm", access.Administrator},
	{"CO", access.CertificatesOfficer},
	{"CU", access.CertificateUser},
	{"SO", access.SecretsOfficer},
	{"SU", access.SecretsUser},
	{"KO", access.CryptoOfficer},
	{"KU", access.CryptoUser},
	{"R", access.Reader},
	{"DAA", access.DataAccessAdministrator},
	{"IA", access.IssuersAdministrator},
}

// accessMatrix is the source of truth for who may call what: every
// endpoint of the API and the roles (assigned at the vault scope "/")
// that may call it. "public" endpoints take no token (they check their
// own credentials, such as join tokens); "node" endpoints take only a
// cluster node's certificate; "agent" endpoints need an agent's client
// certificate; "any" is every authenticated
// caller. TestAccessMatrix checks each cell against a running vault and
// writes docs/access.md from this table.
var accessMatrix = []struct{ method, pattern, who string }{
	{"GET", "/healthz", "public"},
	{"GET", "/readyz", "public"},
	{"GET", "/metrics", "public"},
	{"POST", "/v1/sys/raft/forward", "node"},
	{"POST", "/v1/sys/cluster/join/prepare", "public"},
	{"POST", "/v1/sys/cluster/join", "public"},
	{"POST", "/v1/sys/cluster/members", "node"},
	{"GET", "/v1/pki/{issuer}/crl", "public"},
	{"GET", "/{tenant}/v2.0/.well-known/openid-configuration", "public"},
	{"GET", "/{tenant}/discovery/instance", "public"},
	{"GET", "/{tenant}/discovery/v2.0/keys", "public"},
	{"POST", "/{tenant}/oauth2/v2.0/token", "public"},
	{"GET", "/v1/sys/cluster/status", "Adm R"},
	{"POST", "/v1/sys/cluster/join-tokens", "Adm"},
	{"DELETE", "/v1/sys/cluster/members/{id}", "Adm"},
	{"GET", "/v1/sys/cluster/snapshot", "Adm"},
	{"PUT", "/v1/sys/cluster/snapshot", "Adm"},
	{"POST", "/v1/events/subscriptions", "Adm CO"},
	{"GET", "/v1/events/subscriptions", "Adm CO R"},
	{"DELETE", "/v1/events/subscriptions/{id}", "Adm CO"},
	{"GET", "/v1/events/deliveries", "Adm CO R"},
	{"GET", "/v1/sys/settings", "Adm CO R"},
	{"PATCH", "/v1/sys/settings", "Adm"},
	{"GET", "/v1/retention/certificates/{name}", "Adm CO CU R"},
	{"PUT", "/v1/retention/certificates/{name}", "Adm CO"},
	{"GET", "/v1/retention/secrets/{name}", "Adm CO CU SO SU R"},
	{"PUT", "/v1/retention/secrets/{name}", "Adm SO"},
	{"GET", "/v1/retention/keys/{name}", "Adm CO CU KO KU R"},
	{"PUT", "/v1/retention/keys/{name}", "Adm KO"},
	{"POST", "/v1/certificates/{name}/revoke", "Adm CO"},
	{"POST", "/v1/tokens", "Adm DAA"},
	{"GET", "/v1/tokens", "Adm R DAA"},
	{"DELETE", "/v1/tokens/{id}", "Adm DAA"},
	{"POST", "/v1/service-principals", "Adm DAA"},
	{"GET", "/v1/service-principals", "Adm R DAA"},
	{"GET", "/v1/service-principals/{name}", "Adm R DAA"},
	{"DELETE", "/v1/service-principals/{name}", "Adm DAA"},
	{"PATCH", "/v1/service-principals/{name}", "Adm DAA"},
	{"POST", "/v1/service-principals/{name}/secret", "Adm DAA"},
	{"GET", "/v1/auth/self", "any"},
	{"GET", "/v1/roles", "any"},
	{"GET", "/v1/roles/assignments", "Adm R DAA"},
	{"POST", "/v1/roles/assignments", "Adm DAA"},
	{"DELETE", "/v1/roles/assignments/{id}", "Adm DAA"},
	{"POST", "/v1/agents/join-tokens", "Adm DAA"},
	{"GET", "/v1/agents", "Adm R DAA"},
	{"GET", "/v1/agents/{id}", "Adm R DAA"},
	{"DELETE", "/v1/agents/{id}", "Adm DAA"},
	{"POST", "/v1/agents/enroll", "public"},
	{"POST", "/v1/agents/renew", "agent"},
	{"POST", "/v1/agents/token", "agent"},
	{"GET", "/v1/agents/watch", "agent"},
	{"POST", "/v1/agents/report", "agent"},
	{"GET", "/v1/audit/records", "Adm R"},
	{"POST", "/v1/audit/verify", "Adm R"},
	{"GET", "/v1/report", "Adm R"},
	{"GET", "/v1/sys/audit/local/records", "node"},
	{"POST", "/v1/sys/audit/local/verify", "node"},
	{"GET", "/v1/rollouts/certificates/{name}", "Adm CO CU R"},
	{"PUT", "/v1/rollouts/certificates/{name}/plan", "Adm CO"},
	{"DELETE", "/v1/rollouts/certificates/{name}/plan", "Adm CO"},
	{"POST", "/v1/rollouts/certificates/{name}/pause", "Adm CO"},
	{"POST", "/v1/rollouts/certificates/{name}/resume", "Adm CO"},
	{"POST", "/v1/rollouts/certificates/{name}/abort", "Adm CO"},
	{"GET", "/v1/rollouts/secrets/{name}", "Adm CO CU SO SU R"},
	{"PUT", "/v1/rollouts/secrets/{name}/plan", "Adm SO"},
	{"DELETE", "/v1/rollouts/secrets/{name}/plan", "Adm SO"},
	{"POST", "/v1/rollouts/secrets/{name}/pause", "Adm SO"},
	{"POST", "/v1/rollouts/secrets/{name}/resume", "Adm SO"},
	{"POST", "/v1/rollouts/secrets/{name}/abort", "Adm SO"},
	{"PUT", "/secrets/{name}", "Adm SO"},
	{"GET", "/secrets", "Adm CO CU SO SU R"},
	{"GET", "/secrets/{name}", "Adm CU SO SU"},
	{"GET", "/secrets/{name}/{version}", "Adm CU SO SU"},
	{"PATCH", "/secrets/{name}/{version}", "Adm SO"},
	{"PATCH", "/secrets/{name}", "Adm SO"},
	{"GET", "/secrets/{name}/versions", "Adm CO CU SO SU R"},
	{"DELETE", "/secrets/{name}", "Adm SO"},
	{"GET", "/deletedsecrets", "Adm CO CU SO SU R"},
	{"GET", "/deletedsecrets/{name}", "Adm CO CU SO SU R"},
	{"POST", "/deletedsecrets/{name}/recover", "Adm SO"},
	{"DELETE", "/deletedsecrets/{name}", "Adm SO"},
	{"POST", "/secrets/{name}/backup", "Adm SO"},
	{"POST", "/secrets/restore", "Adm SO"},
	{"POST", "/certificates/{name}/create", "Adm CO"},
	{"POST", "/certificates/{name}/import", "Adm CO"},
	{"GET", "/certificates", "Adm CO CU R"},
	{"GET", "/certificates/{name}", "Adm CO CU R"},
	{"GET", "/certificates/{name}/{version}", "Adm CO CU R"},
	{"PATCH", "/certificates/{name}", "Adm CO"},
	{"PATCH", "/certificates/{name}/{version}", "Adm CO"},
	{"GET", "/certificates/{name}/versions", "Adm CO CU R"},
	{"GET", "/certificates/{name}/policy", "Adm CO CU R"},
	{"PATCH", "/certificates/{name}/policy", "Adm CO"},
	{"GET", "/certificates/{name}/pending", "Adm CO CU R"},
	{"PATCH", "/certificates/{name}/pending", "Adm CO"},
	{"DELETE", "/certificates/{name}/pending", "Adm CO"},
	{"POST", "/certificates/{name}/pending/merge", "Adm CO"},
	{"DELETE", "/certificates/{name}", "Adm CO"},
	{"GET", "/deletedcertificates", "Adm CO CU R"},
	{"GET", "/deletedcertificates/{name}", "Adm CO CU R"},
	{"POST", "/deletedcertificates/{name}/recover", "Adm CO"},
	{"DELETE", "/deletedcertificates/{name}", "Adm CO"},
	{"POST", "/certificates/{name}/backup", "Adm CO"},
	{"POST", "/certificates/restore", "Adm CO"},
	{"GET", "/certificates/contacts", "Adm CO CU R"},
	{"PUT", "/certificates/contacts", "Adm CO"},
	{"DELETE", "/certificates/contacts", "Adm CO"},
	{"GET", "/certificates/issuers", "Adm IA"},
	{"GET", "/certificates/issuers/{issuer}", "Adm IA"},
	{"PUT", "/certificates/issuers/{issuer}", "Adm IA"},
	{"PATCH", "/certificates/issuers/{issuer}", "Adm IA"},
	{"DELETE", "/certificates/issuers/{issuer}", "Adm IA"},
	{"POST", "/certificates/issuers/{issuer}/check", "Adm IA"},
	{"POST", "/keys/{name}/create", "Adm KO"},
	{"PUT", "/keys/{name}", "Adm KO"},
	{"GET", "/keys", "Adm CO CU KO KU R"},
	{"GET", "/keys/{name}", "Adm CO CU KO KU R"},
	{"GET", "/keys/{name}/{version}", "Adm CO CU KO KU R"},
	{"PATCH", "/keys/{name}/{version}", "Adm KO"},
	{"PATCH", "/keys/{name}", "Adm KO"},
	{"GET", "/keys/{name}/versions", "Adm CO CU KO KU R"},
	{"POST", "/keys/{name}/{version}/sign", "Adm KO KU"},
	{"POST", "/keys/{name}/sign", "Adm KO KU"},
	{"POST", "/keys/{name}/{version}/verify", "Adm KO KU"},
	{"POST", "/keys/{name}/verify", "Adm KO KU"},
	{"POST", "/keys/{name}/{version}/encrypt", "Adm KO KU"},
	{"POST", "/keys/{name}/encrypt", "Adm KO KU"},
	{"POST", "/keys/{name}/{version}/decrypt", "Adm KO KU"},
	{"POST", "/keys/{name}/decrypt", "Adm KO KU"},
	{"POST", "/keys/{name}/{version}/wrapkey", "Adm KO KU"},
	{"POST", "/keys/{name}/wrapkey", "Adm KO KU"},
	{"POST", "/keys/{name}/{version}/unwrapkey", "Adm KO KU"},
	{"POST", "/keys/{name}/unwrapkey", "Adm KO KU"},
	{"DELETE", "/keys/{name}", "Adm KO"},
	{"GET", "/deletedkeys", "Adm CO CU KO KU R"},
	{"GET", "/deletedkeys/{name}", "Adm CO CU KO KU R"},
	{"POST", "/deletedkeys/{name}/recover", "Adm KO"},
	{"DELETE", "/deletedkeys/{name}", "Adm KO"},
	{"POST", "/keys/{name}/backup", "Adm KO"},
	{"POST", "/keys/restore", "Adm KO"},
	{"POST", "/rng", "Adm KO KU"},
	{"POST", "/keys/{name}/rotate", "Adm KO"},
	{"GET", "/keys/{name}/rotationpolicy", "Adm CO CU KO KU R"},
	{"PUT", "/keys/{name}/rotationpolicy", "Adm KO"},
}

// matrixPath fills a pattern's wildcards with names no object has, so
// that an allowed request fails after authorization (404 or 400) instead
// of changing anything.
func matrixPath(pattern string) string {
	p := strings.NewReplacer("{name}", "mx-none", "{version}", "0123456789abcdef", "{issuer}", "mx-none", "{id}", "mx-none", "{tenant}", "mx-none").Replace(pattern)
	if !strings.HasPrefix(p, "/v1/") && !strings.HasPrefix(p, "/healthz") && !strings.HasPrefix(p, "/readyz") && !strings.HasPrefix(p, "/metrics") {
		p += "?api-version=7.6"
	}
	return p
}

func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	node := c.Nodes[0]

	// The table covers exactly the API's endpoints.
	var want, got []string
	for _, e := range vault.Endpoints() {
		got = append(got, e.Method+" "+e.Pattern)
	}
	for _, row := range accessMatrix {
		want = append(want, row.method+" "+row.pattern)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Fatalf("accessMatrix and vault.Endpoints() differ:\n  only in the table: %v\n  only in the API: %v", minus(want, got), minus(got, want))
	}

	// One token per role, assigned at the vault scope, and one with none.
	clients := map[string]*client.Client{}
	for _, r := range matrixRoles {
		clients[r.abbr] = tokenClient(t, c, node, "mx-"+strings.ToLower(r.abbr), r.role, "/")
	}
	clients["none"] = tokenClient(t, c, node, "mx-norole", "", "")
	anon := c.HTTPClient()

	ctx := context.Background()
	for _, row := range accessMatrix {
		path := matrixPath(row.pattern)
		callers := append([]string{"none"}, abbrs()...)
		for _, who := range callers {
			status := call(t, ctx, clients[who], row.method, path)
			allowed := row.who == "public" || row.who == "any" || slices.Contains(strings.Fields(row.who), who)
			if row.who == "agent" || row.who == "node" {
				allowed = false // no token opens them
			}
			switch {
			case allowed && (status == http.StatusForbidden || status == http.StatusUnauthorized || status >= 500):
				t.Errorf("%s %s as %s: got %d, want allowed", row.method, path, who, status)
			case !allowed && status != http.StatusForbidden:
				t.Errorf("%s %s as %s: got %d, want 403", row.method, path, who, status)
			}
		}
		// Without a token: 401 with Key Vault's challenge, except for
		// public endpoints.
		status := anonCall(t, ctx, anon, row.method, node.URL()+path)
		switch row.who {
		case "public":
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				t.Errorf("%s %s without a token: got %d, want it public", row.method, path, status)
			}
		case "node":
			if status != http.StatusForbidden {
				t.Errorf("%s %s without a node certificate: got %d, want 403", row.method, path, status)
			}
		default:
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s without a token: got %d, want 401", row.method, path, status)
			}
		}
	}
	checkGenerated(t, "docs/access.md", accessDoc())
}

func abbrs() []string {
	var out []string
	for _, r := range matrixRoles {
		out = append(out, r.abbr)
	}
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// tokenClient creates a token for principal name with role at scope (no
// role when role is "") and returns a client using it.
func tokenClient(t *testing.T, c *testcluster.Cluster, node *testcluster.Node, name, role, scope string) *client.Client {
	t.Helper()
	var res struct{ Token string }
	body := map[string]string{"name": name, "role": role, "scope": scope}
	if err := c.Client(node).Do(context.Background(), http.MethodPost, "/v1/tokens", body, &res); err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	testcluster.KnownSecret(res.Token)
	cl, err := client.New(client.Config{Addr: node.URL(), Token: res.Token, CACert: c.CACert, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// call sends a bodiless request and returns the status.
func call(t *testing.T, ctx context.Context, cl *client.Client, method, path string) int {
	t.Helper()
	resp, err := cl.Raw(ctx, method, path, nil, http.Header{})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// anonCall sends a request without any credential.
func anonCall(t *testing.T, ctx context.Context, hc *http.Client, method, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkGenerated compares a generated file of the repository with its
// content; with UPDATE_DOCS=1 it writes it instead.
func checkGenerated(t *testing.T, rel, content string) {
	t.Helper()
	path := filepath.Join("..", rel)
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(have, []byte(content)) {
		t.Errorf("%s is out of date with the access matrix; regenerate it: UPDATE_DOCS=1 go test ./test -run TestAccessMatrix", rel)
	}
}

// accessDoc renders docs/access.md from the roles and the matrix.
func accessDoc() string {
	var b strings.Builder
	b.WriteString(`# Access control

<!-- Generated by TestAccessMatrix (test/access_matrix_test.go) from its
table, which the test checks cell by cell against a running vault.
Regenerate: UPDATE_DOCS=1 go test ./test -run TestAccessMatrix -->

Every request is denied unless a **role assignment** allows it. A role is
assigned to a **principal** (the ` + "`--name`" + ` of a token, or
` + "`sp:NAME`" + ` for a service principal made with ` + "`certvault sp create`" + `) or to an
**agent group** (` + "`group:NAME`" + `) at a **scope**:

| scope | covers |
| --- | --- |
| ` + "`/`" + ` | the whole vault; the only scope that grants vault-wide permissions (settings, cluster, events, tokens, roles, agents, audit, report) |
| ` + "`/certificates`" + ` (also ` + "`/secrets`, `/keys`, `/issuers`" + `) | every object of that kind |
| ` + "`/certificates/www`" + ` | one object; a certificate scope also covers the certificate's managed key and secret of the same name |
| ` + "`/certificates/web-*`" + ` (or ` + "`/certificates/web-`" + `) | every object whose name starts with the prefix |

Listing a collection (` + "`GET /certificates`" + `) needs a scope that covers the
whole collection, as in Key Vault. Names are case-insensitive, as in Key
Vault, and scopes compare on the same canonical form: ` + "`/secrets/casey`" + `
covers ` + "`CASEY`" + ` (it is the same secret) and ` + "`/certificates/web-*`" + `
covers ` + "`WEB-1`" + `; a scope is stored and shown in lower case. The
bootstrap token's principal, ` + "`root`" + `,
holds Administrator at ` + "`/`" + `; it can be revoked once another principal with a
valid token does. The vault refuses to remove the last such administrator.

    certvault token create --name app-team --ttl 90d --role "Certificates Officer" --scope /certificates/web-*
    certvault role assign "Certificate User" --to group:nginx --scope /certificates/www
    certvault role assignments

## Roles

| role | abbreviation | what it is for | actions |
| --- | --- | --- | --- |
`)
	roles := access.Roles()
	for _, r := range matrixRoles {
		for _, ro := range roles {
			if ro.Name == r.role {
				acts := make([]string, len(ro.Actions))
				for i, a := range ro.Actions {
					acts[i] = "`" + string(a) + "`"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", ro.Name, r.abbr, ro.Description, strings.Join(acts, " "))
			}
		}
	}
	b.WriteString(`
Separation of duty: issuer and DNS credentials are write-only for everyone.
A Certificates Officer writes policies that name an issuer but can neither
read nor change issuers (Issuers Administrator) and cannot read private keys
(the managed secret: Certificate User, Secrets User). Agents get access through
their group, typically Certificate User on the certificates they install.

## Endpoint × role

✓ allowed, · denied (403). Without a token every endpoint but the public ones
answers 401 with Key Vault's challenge. *public*: no token; the endpoint checks
its own credential (a join token) or serves health, metrics or a CRL.
*node*: node-to-node traffic, only with a cluster node's certificate (403
otherwise). *agent*: only an enrolled agent, with its client certificate.
*any*: every authenticated caller.

| method | path |`)
	for _, r := range matrixRoles {
		b.WriteString(" " + r.abbr + " |")
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" :-: |", len(matrixRoles)) + "\n")
	for _, row := range accessMatrix {
		fmt.Fprintf(&b, "| %s | `%s` |", row.method, row.pattern)
		switch row.who {
		case "public", "node", "agent", "any":
			fmt.Fprintf(&b, " *%s* |%s\n", row.who, strings.Repeat(" |", len(matrixRoles)-1))
			continue
		}
		for _, r := range matrixRoles {
			if slices.Contains(strings.Fields(row.who), r.abbr) {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString(" · |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
