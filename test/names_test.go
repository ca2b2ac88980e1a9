package test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/test/testcluster"
)

// TestNamesCaseInsensitive is issue 14's first finding: "casey" and
// "CASEY" were two objects, and scopes compared exact names without case
// but prefixes with it, so a token scoped to /secrets/casey reached
// CASEY, someone else's secret. Names are one object in every spelling
// now, as in Key Vault: versions, lists, soft delete, recover, purge,
// backup/restore, scopes and the audit trail all agree, on a follower as
// on the leader, and ids keep the creator's spelling.
func TestNamesCaseInsensitive(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.Leader()
	fol := follower(t, c, leader)
	root, rootF := c.Client(leader), c.Client(fol)
	ctx := context.Background()

	type secret struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	}
	set := func(cl *client.Client, name, value string) secret {
		t.Helper()
		var s secret
		if err := cl.Do(ctx, http.MethodPut, "/secrets/"+name+"?api-version=7.6", map[string]any{"value": value}, &s); err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
		return s
	}
	get := func(cl *client.Client, name string) (secret, int) {
		t.Helper()
		var s secret
		resp, err := cl.DoResponse(ctx, http.MethodGet, "/secrets/"+name+"?api-version=7.6", nil, &s)
		if resp == nil {
			t.Fatalf("get %s: %v", name, err)
		}
		return s, resp.StatusCode
	}

	first := set(root, "casey", "value-one")
	// Another spelling, through a follower, is a new version of the same
	// object, and its id keeps the spelling the object was created with.
	second := set(rootF, "CASEY", "value-two")
	if !strings.Contains(second.ID, "/secrets/casey/") {
		t.Errorf("set CASEY: id %s, want the creator's spelling /secrets/casey/", second.ID)
	}
	if first.ID == second.ID {
		t.Fatalf("set CASEY made no new version: %s", second.ID)
	}
	for _, name := range []string{"casey", "CASEY", "CaSeY"} {
		s, code := get(root, name)
		if code != 200 || s.Value != "value-two" || idPath(s.ID) != idPath(second.ID) {
			t.Errorf("GET /secrets/%s: %d %q %s, want 200 value-two %s", name, code, s.Value, s.ID, second.ID)
		}
	}
	var versions struct {
		Value []secret `json:"value"`
	}
	if err := root.Do(ctx, http.MethodGet, "/secrets/Casey/versions?api-version=7.6", nil, &versions); err != nil {
		t.Fatal(err)
	}
	if len(versions.Value) != 2 {
		t.Errorf("versions of Casey: %d, want 2 (one object in every spelling)", len(versions.Value))
	}
	var list struct {
		Value []secret `json:"value"`
	}
	if err := root.Do(ctx, http.MethodGet, "/secrets?api-version=7.6", nil, &list); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, s := range list.Value {
		listed = append(listed, s.ID)
	}
	if len(listed) != 1 || !strings.HasSuffix(listed[0], "/secrets/casey") {
		t.Errorf("list: %v, want one secret with the id .../secrets/casey", listed)
	}

	// Scopes compare on the canonical form, exact and prefix alike; a
	// scope on another name reaches no spelling of this one.
	exact, _ := createToken(t, c, "--name", "casey-app", "--role", "Secrets User", "--scope", "/secrets/CASEY")
	prefix, _ := createToken(t, c, "--name", "cas-app", "--role", "Secrets Officer", "--scope", "/secrets/Cas-*")
	other, _ := createToken(t, c, "--name", "other-app", "--role", "Secrets Officer", "--scope", "/secrets/caseyx")
	set(root, "CAS-db", "value-three")
	for _, tc := range []struct {
		tok, method, path string
		want              int
	}{
		{exact, http.MethodGet, "/secrets/casey", 200},
		{exact, http.MethodGet, "/secrets/cAsEy", 200},
		{prefix, http.MethodGet, "/secrets/cas-DB", 200},
		{prefix, http.MethodGet, "/secrets/CAS-db", 200},
		{prefix, http.MethodGet, "/secrets/casey", 403},
		{other, http.MethodGet, "/secrets/CASEY", 403},
		{other, http.MethodPut, "/secrets/CASEY", 403},
		{other, http.MethodDelete, "/secrets/CASEY", 403},
	} {
		for _, n := range []*testcluster.Node{leader, fol} {
			var body any
			if tc.method == http.MethodPut {
				body = map[string]any{"value": "overwritten"}
			}
			if got := status(t, clientFor(t, c, n, tc.tok), tc.method, tc.path+"?api-version=7.6", body); got != tc.want {
				t.Errorf("%s %s with a token on node %s: %d, want %d", tc.method, tc.path, n.ID, got, tc.want)
			}
		}
	}
	if s, code := get(root, "casey"); code != 200 || s.Value != "value-two" {
		t.Errorf("after refused writes: %d %q, want 200 value-two", code, s.Value)
	}

	// Backup under one spelling, soft delete under another, recover,
	// delete and purge under a third, restore under the first.
	var backup struct {
		Value string `json:"value"`
	}
	if err := root.Do(ctx, http.MethodPost, "/secrets/CASEY/backup?api-version=7.6", nil, &backup); err != nil {
		t.Fatal(err)
	}
	if code := status(t, root, http.MethodDelete, "/secrets/Casey?api-version=7.6", nil); code != 200 {
		t.Fatalf("delete Casey: %d", code)
	}
	if _, code := get(root, "casey"); code != 404 {
		t.Errorf("GET casey after deleting Casey: %d, want 404", code)
	}
	if code := status(t, root, http.MethodPut, "/secrets/CASEY?api-version=7.6", map[string]any{"value": "x"}); code != 409 {
		t.Errorf("set CASEY while casey is deleted: %d, want 409 (the name is taken until purged)", code)
	}
	if code := status(t, rootF, http.MethodPost, "/deletedsecrets/cAsEy/recover?api-version=7.6", nil); code != 200 {
		t.Fatalf("recover cAsEy: %d", code)
	}
	waitFor(t, 30*time.Second, "casey readable after recover", func() bool {
		s, code := get(root, "CASEY")
		return code == 200 && s.Value == "value-two"
	})
	if code := status(t, root, http.MethodDelete, "/secrets/casey?api-version=7.6", nil); code != 200 {
		t.Fatalf("delete casey: %d", code)
	}
	waitFor(t, 30*time.Second, "casey in the deleted list", func() bool {
		return status(t, root, http.MethodGet, "/deletedsecrets/CASEY?api-version=7.6", nil) == 200
	})
	if code := status(t, root, http.MethodDelete, "/deletedsecrets/CaSey?api-version=7.6", nil); code != 204 {
		t.Fatalf("purge CaSey: %d", code)
	}
	var restored secret
	if err := root.Do(ctx, http.MethodPost, "/secrets/restore?api-version=7.6", map[string]any{"value": backup.Value}, &restored); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !strings.Contains(restored.ID, "/secrets/casey") {
		t.Errorf("restored id %s, want /secrets/casey", restored.ID)
	}
	if code := status(t, root, http.MethodPost, "/secrets/restore?api-version=7.6", map[string]any{"value": backup.Value}); code != 409 {
		t.Errorf("restore again over CASEY: %d, want 409", code)
	}

	// The audit trail names the object in one form, whatever the caller
	// wrote, so an auditor's filter finds every spelling's records.
	out := mustCLI(t, c, "audit", "list", "--object", "/secrets/CASEY", "-o", "json")
	var res struct {
		Value []struct{ Object string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("audit list -o json: %v: %s", err, out)
	}
	recs := res.Value
	if len(recs) < 10 {
		t.Errorf("audit list --object /secrets/CASEY: %d records, want every request on every spelling (at least 10)", len(recs))
	}
	for _, r := range recs {
		if r.Object != "/secrets/casey" {
			t.Errorf("audit record names %q, want /secrets/casey", r.Object)
		}
	}
}

// idPath is an object id without its host (ids name the node asked).
func idPath(id string) string {
	if i := strings.Index(id, "/secrets/"); i >= 0 {
		return id[i:]
	}
	return id
}

// TestNameCollisionRefusedAtStart: a data directory written before names
// were case-insensitive may hold two names that differ only by case. This
// version cannot tell which one a request means, so the node refuses to
// start and lists them. The state is made by writing a second spelling
// straight into the stopped node's raft log.
func TestNameCollisionRefusedAtStart(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	if code := status(t, c.Client(n), http.MethodPut, "/secrets/casey?api-version=7.6", map[string]any{"value": "v"}); code != 200 {
		t.Fatalf("set casey: %d", code)
	}
	n.Stop()

	_, tr := raft.NewInmemTransport(raft.ServerAddress(n.Raft))
	st, err := raftstore.Open(raftstore.Config{NodeID: n.ID, Dir: filepath.Join(n.Dir, "raft"), Transport: tr,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Linearize(ctx); err != nil {
		t.Fatal(err)
	}
	e, ok := st.Get("meta/secrets/casey")
	if !ok {
		t.Fatal("no meta/secrets/casey in the stopped node's state")
	}
	if _, err := st.Apply(ctx, (&raftstore.Batch{}).Put("meta/secrets/CASEY", e.Value)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	n.Restart()
	deadline := time.Now().Add(60 * time.Second)
	for n.Running() {
		if time.Now().After(deadline) {
			t.Fatalf("the node still runs 60s after a restart on a state with casey and CASEY; log:\n%s", n.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if log := n.Log(); !strings.Contains(log, "differ only by letter case") || !strings.Contains(log, "secrets: CASEY, casey") {
		t.Fatalf("the node stopped without naming the colliding names; log:\n%s", log)
	}
}
