package vault

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certvault/certvault/vault/front"
)

// TestAuditWriterInterim: an interim answer (100 Continue, as a proxied
// answer may carry) goes to the client and is never the final status,
// held or not; the final answer carries one x-ms-request-id, the
// request's, even when a proxied answer brought another.
func TestAuditWriterInterim(t *testing.T) {
	for _, hold := range []bool{false, true} {
		codes := make(chan int, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-ms-request-id", "follower-id")
			aw := &auditWriter{ResponseWriter: w, info: &front.ReqInfo{Hold: hold}, reqID: "follower-id"}
			aw.WriteHeader(http.StatusContinue)
			w.Header().Add("x-ms-request-id", "leader-id") // as a proxy copies the leader's headers
			aw.WriteHeader(http.StatusConflict)
			if _, err := aw.Write([]byte(`{"error":{"code":"Conflict","message":"m"}}`)); err != nil {
				t.Errorf("hold %v: write the body through the audit writer: %v", hold, err)
			}
			if hold {
				aw.release()
			}
			codes <- aw.code
		}))
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatalf("hold %v: %v", hold, err)
		}
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("hold %v: client got %d, want 409", hold, resp.StatusCode)
		}
		if code := <-codes; code != http.StatusConflict {
			t.Errorf("hold %v: the audit record would say %d, want 409", hold, code)
		}
		if ids := resp.Header.Values("x-ms-request-id"); len(ids) != 1 || ids[0] != "follower-id" {
			t.Errorf("hold %v: x-ms-request-id %q, want just follower-id", hold, ids)
		}
	}
}
