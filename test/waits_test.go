package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
	"github.com/certvault/certvault/vault/audit"
)

// h1Client is an HTTP/1.1 client (no HTTP/2) that trusts the cluster CA;
// for a request with Expect: 100-continue it sends the body only after the
// server's 100 Continue.
func h1Client(t *testing.T, c *testcluster.Cluster, timeout time.Duration) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
		ExpectContinueTimeout: 30 * time.Second,
	}}
}

// auditRecord returns the record with request ID id from node n's trail.
func auditRecord(t *testing.T, n *testcluster.Node, id string) (audit.Record, bool) {
	t.Helper()
	var found audit.Record
	ok := false
	err := audit.ReadTrail(filepath.Join(n.Dir, "audit"), audit.Filter{}, func(r audit.Record) bool {
		if r.RequestID == id {
			found, ok = r, true
			return false
		}
		return true
	})
	if err != nil {
		t.Fatalf("read the audit trail of %s: %v", n.ID, err)
	}
	return found, ok
}

// follower returns a running node that is not the leader.
func follower(t *testing.T, c *testcluster.Cluster, leader *testcluster.Node) *testcluster.Node {
	t.Helper()
	for _, n := range c.Nodes {
		if n != leader && n.Running() {
			return n
		}
	}
	t.Fatal("no follower")
	return nil
}

// TestInterimAnswersThroughFollower: a client that sends Expect:
// 100-continue over HTTP/1.1 to a follower, for a write the leader
// refuses (400, 403, 409), gets the leader's status, not 200 with an
// error body, and the follower's audit record holds that status and an
// outcome other than "allowed". Every proxied answer carries one
// x-ms-request-id, the one of the follower's audit record.
func TestInterimAnswersThroughFollower(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.Leader()
	f := follower(t, c, leader)
	root := c.Client(leader)
	ctx := context.Background()

	// A soft-deleted name (409 on set) and a certificate's managed secret
	// (403 on set).
	if err := root.Do(ctx, http.MethodPut, "/secrets/gone", map[string]string{"value": "v"}, nil); err != nil {
		t.Fatalf("set secret gone: %v", err)
	}
	if err := root.Do(ctx, http.MethodDelete, "/secrets/gone", nil, nil); err != nil {
		t.Fatalf("delete secret gone: %v", err)
	}
	policy := map[string]any{"policy": map[string]any{
		"key_props": map[string]any{"kty": "EC", "crv": "P-256", "exportable": true}, "x509_props": map[string]any{"subject": "CN=managed.example.com"},
		"issuer": map[string]any{"name": "Self"}, "secret_props": map[string]any{"contentType": "application/x-pem-file"},
	}}
	if err := root.Do(ctx, http.MethodPost, "/certificates/managed/create", policy, nil); err != nil {
		t.Fatalf("create certificate managed: %v", err)
	}
	waitFor(t, 30*time.Second, "the certificate's managed secret exists", func() bool {
		resp, err := root.DoResponse(ctx, http.MethodGet, "/secrets/managed", nil, nil)
		if resp != nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	hc := h1Client(t, c, 60*time.Second)
	for _, tc := range []struct {
		name    string
		path    string
		body    string
		expect  bool
		status  int
		outcome string
	}{
		{"400 malformed JSON", "/secrets/malformed", `{"value": "v"`, true, 400, "error"},
		{"409 deleted name", "/secrets/gone", `{"value":"v"}`, true, 409, "error"},
		{"403 managed secret", "/secrets/managed", `{"value":"v"}`, true, 403, "denied"},
		{"200 set", "/secrets/fine", `{"value":"v"}`, true, 200, "allowed"},
		{"200 set without Expect", "/secrets/plain", `{"value":"v"}`, false, 200, "allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPut, f.URL()+tc.path+"?api-version=7.6", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+c.Token)
			req.Header.Set("Content-Type", "application/json")
			if tc.expect {
				req.Header.Set("Expect", "100-continue")
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("PUT %s on follower %s: %v", tc.path, f.ID, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			if resp.ProtoMajor != 1 {
				t.Fatalf("answered over HTTP/%d, want HTTP/1.1", resp.ProtoMajor)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("PUT %s through follower %s: got status %d, want %d; body %s", tc.path, f.ID, resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
					t.Errorf("body is not the Key Vault error shape (%v): %s", err, body)
				}
			}
			ids := resp.Header.Values("x-ms-request-id")
			if len(ids) != 1 {
				t.Fatalf("x-ms-request-id: got %q, want exactly one value", ids)
			}
			// A write is answered only once its record is durable.
			rec, ok := auditRecord(t, f, ids[0])
			if !ok {
				t.Fatalf("no record with request_id %s in the trail of %s, the node that answered", ids[0], f.ID)
			}
			if rec.Status != tc.status || rec.Outcome != tc.outcome {
				t.Errorf("audit record on %s: got status %d outcome %q, want %d %q", f.ID, rec.Status, rec.Outcome, tc.status, tc.outcome)
			}
		})
	}
}

// deadlineAnswer is what a client got from a request sent while the
// leader was unreachable.
type deadlineAnswer struct {
	what    string
	status  int
	retry   string
	code    string
	message string
	took    time.Duration
	err     error
}

// timedRequest sends a request with the root token and measures how
// long the answer took.
func timedRequest(hc *http.Client, c *testcluster.Cluster, what, method, url, body string) deadlineAnswer {
	return timedRequestAs(hc, c.Token, what, method, url, body)
}

// timedRequestAs is timedRequest with the bearer token tok.
func timedRequestAs(hc *http.Client, tok, what, method, url, body string) deadlineAnswer {
	a := deadlineAnswer{what: what}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := hc.Do(req)
	a.took = time.Since(start)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		a.err = err
		return a
	}
	a.status, a.retry = resp.StatusCode, resp.Header.Get("Retry-After")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		a.code, a.message = e.Error.Code, e.Error.Message
	}
	return a
}

// check fails t unless a is 503 ServiceUnavailable with a Retry-After,
// answered within limit.
func (a deadlineAnswer) check(t *testing.T, limit time.Duration) {
	t.Helper()
	if a.err != nil {
		t.Errorf("%s: no answer after %v: %v; want 503 within %v", a.what, a.took.Round(time.Millisecond), a.err, limit)
		return
	}
	t.Logf("%s: %d %s %q after %v", a.what, a.status, a.code, a.message, a.took.Round(time.Millisecond))
	if a.status != http.StatusServiceUnavailable || a.code != "ServiceUnavailable" || a.message == "" {
		t.Errorf("%s: got %d %q %q, want 503 ServiceUnavailable with a message", a.what, a.status, a.code, a.message)
	}
	if s, err := strconv.Atoi(a.retry); err != nil || s <= 0 {
		t.Errorf("%s: Retry-After %q, want a number of seconds", a.what, a.retry)
	}
	if a.took > limit {
		t.Errorf("%s: answered after %v, want within %v (the deadline with generous slack)", a.what, a.took.Round(time.Millisecond), limit)
	}
}

// TestUnreachableLeaderDeadline: with the leader frozen (SIGSTOP: its
// sockets accept connections, nothing answers), a write and a
// linearizable read sent to a follower answer 503 with Retry-After within
// the request deadline, not when the leader comes back; and a leader cut
// off from both followers answers a GET with 503 within the deadline, not
// when the partition heals.
func TestUnreachableLeaderDeadline(t *testing.T) {
	t.Parallel()
	const deadline = 2 * time.Second
	// Generous: a loaded machine must not fail it, a hang must.
	const limit = 3*deadline + 10*time.Second
	c := testcluster.Start(t, 3, testcluster.Options{ExtraArgs: []string{"--request-deadline", deadline.String()}})
	leader := c.Leader()
	f := follower(t, c, leader)
	hc := h1Client(t, c, limit+15*time.Second)
	secret := f.URL() + "/secrets/warm?api-version=7.6"

	// Through the follower once, so that it holds connections to the
	// leader, as a busy cluster does.
	for _, a := range []deadlineAnswer{
		timedRequest(hc, c, "warm-up write", http.MethodPut, secret, `{"value":"v"}`),
		timedRequest(hc, c, "warm-up read", http.MethodGet, secret, ""),
	} {
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("%s through %s: %d %v %s", a.what, f.ID, a.status, a.err, a.message)
		}
	}

	leader.Pause()
	paused := true
	defer func() {
		if paused {
			leader.Resume()
		}
	}()
	// Sent at once, while the follower still takes the frozen node for
	// the leader.
	got := make(chan deadlineAnswer, 3)
	go func() {
		got <- timedRequest(hc, c, "write through the follower", http.MethodPut, f.URL()+"/secrets/during?api-version=7.6", `{"value":"v"}`)
	}()
	go func() {
		got <- timedRequest(hc, c, "linearizable GET on the follower", http.MethodGet, secret, "")
	}()
	go func() {
		// A token the follower does not know may have been made on the
		// leader a moment ago: unable to catch up, the follower cannot
		// tell, so it answers 503, not a 401 that would be a guess.
		got <- timedRequestAs(hc, "cvt.unknowntokenid.notasecret", "a token unknown to the follower", http.MethodGet, secret, "")
	}()
	for range 3 {
		(<-got).check(t, limit)
	}
	leader.Resume()
	paused = false
	waitFor(t, 60*time.Second, "a write through "+f.ID+" succeeds once the old leader is back", func() bool {
		a := timedRequest(hc, c, "write", http.MethodPut, f.URL()+"/secrets/after?api-version=7.6", `{"value":"v"}`)
		return a.err == nil && a.status == http.StatusOK
	})

	// The leader cut off from both followers.
	leader = c.Leader()
	var others []*testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	for _, n := range others {
		n.Pause()
	}
	defer func() {
		for _, n := range others {
			n.Resume()
		}
	}()
	timedRequest(hc, c, "GET on the isolated leader "+leader.ID, http.MethodGet, leader.URL()+"/secrets/warm?api-version=7.6", "").check(t, limit)
}

// bigJSON is a secret-set body just over the 1 MiB request limit.
func bigJSON() []byte {
	return []byte(`{"value":"` + strings.Repeat("x", 1<<20+1024) + `"}`)
}

// TestOversizedBodyAtFollower: a body over the limit sent to a follower
// is answered 413 by the follower itself, whether its length is announced
// or not; the leader sees none of it (no half request, no "unexpected
// EOF" in its log).
func TestOversizedBodyAtFollower(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.Leader()
	f := follower(t, c, leader)
	hc := h1Client(t, c, 60*time.Second)
	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"Content-Length", false}, {"chunked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(bigJSON())
			if tc.chunked {
				body = io.MultiReader(body) // no length known: sent chunked
			}
			req, err := http.NewRequest(http.MethodPut, f.URL()+"/secrets/too-big?api-version=7.6", body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunked {
				req.ContentLength = -1
			}
			req.Header.Set("Authorization", "Bearer "+c.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("PUT a 1 MiB+ body on follower %s: %v", f.ID, err)
			}
			code, msg := biAPIError(t, resp, http.StatusRequestEntityTooLarge)
			if code != "RequestTooLarge" || !strings.Contains(msg, "larger than") {
				t.Errorf("got %s %q, want RequestTooLarge saying the body is larger than the limit", code, msg)
			}
			rec, ok := auditRecord(t, f, resp.Header.Get("x-ms-request-id"))
			if !ok || rec.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("audit record on %s: got %+v (found %v), want status 413", f.ID, rec, ok)
			}
		})
	}
	if strings.Contains(leader.Log(), "unexpected EOF") {
		t.Errorf("the leader's log mentions unexpected EOF: the follower passed on part of an oversized body:\n%s", leader.Log())
	}
	var s struct{ Value string }
	if resp, err := c.Client(leader).DoResponse(context.Background(), http.MethodGet, "/secrets/too-big", nil, &s); err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("the oversized secret was stored (or the read failed otherwise): %v", err)
	}
}
