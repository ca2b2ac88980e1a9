package vault

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/vault/audit"
)

// TestRecordWithheld: when the audit record of a held answer cannot be
// written, the caller hears what is true. A write that succeeded was
// carried out; a read changed nothing; a request that failed keeps its
// own answer. A full disk is a 507 that names the directory, and the
// withheld answer's headers (a proxied Content-Length) do not leak into
// the error.
func TestRecordWithheld(t *testing.T) {
	dir := t.TempDir()
	l, err := audit.OpenWith(dir, audit.Options{Room: func() error {
		return fmt.Errorf("disk below the reserve: %w", syscall.ENOSPC)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := &Node{opts: Options{NodeID: "n1", DataDir: dir}, auditLog: l, Core: &core.Core{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}

	for _, tc := range []struct {
		name, method string
		code         int
		body         string
		wantStatus   int
		want, not    string
	}{
		{"write carried out", http.MethodPut, http.StatusOK, `{"id":"x"}`, http.StatusInsufficientStorage, "carried out (200)", "may"},
		{"secret read", http.MethodGet, http.StatusOK, `{"value":"s3cret"}`, http.StatusInsufficientStorage, "a read changes nothing", "may"},
		{"write that failed", http.MethodPut, http.StatusConflict, `{"error":{"code":"Conflict","message":"the object was changed concurrently; retry"}}`, http.StatusConflict, "changed concurrently", "withheld"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			info := &front.ReqInfo{Hold: true}
			aw := &auditWriter{ResponseWriter: rec, info: info}
			// As a proxied answer comes: its own length and location.
			aw.Header().Set("Content-Length", fmt.Sprint(len(tc.body)))
			aw.Header().Set("Location", "https://vault/secrets/x")
			aw.WriteHeader(tc.code)
			if _, err := aw.Write([]byte(tc.body)); err != nil {
				t.Fatalf("write the body through the audit writer: %v", err)
			}
			r := httptest.NewRequest(tc.method, "/secrets/x", nil)
			n.record(aw, r, info, "/secrets/{name}", "req-1", time.Now())

			res := rec.Result()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.wantStatus, body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
				t.Fatalf("body is not the Key Vault error shape: %s", body)
			}
			if !strings.Contains(e.Error.Message, tc.want) || strings.Contains(e.Error.Message, tc.not) {
				t.Fatalf("message %q: want %q, not %q", e.Error.Message, tc.want, tc.not)
			}
			if strings.Contains(string(body), "s3cret") {
				t.Fatalf("the withheld secret reached the caller: %s", body)
			}
			if tc.wantStatus == http.StatusInsufficientStorage {
				if !strings.Contains(e.Error.Message, dir) {
					t.Fatalf("message %q does not name the directory %s", e.Error.Message, dir)
				}
				if cl := res.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(body)) {
					t.Fatalf("Content-Length %s for a body of %d bytes", cl, len(body))
				}
				if res.Header.Get("Location") != "" {
					t.Fatal("the withheld answer's Location was sent")
				}
			}
		})
	}
}
