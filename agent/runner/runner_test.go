package runner

import (
	"testing"
	"time"

	"github.com/certvault/certvault/agent/vaultclient"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		lo, hi   time.Duration
	}{
		{1, 500 * time.Millisecond, 1500 * time.Millisecond},
		{2, time.Second, 3 * time.Second},
		{7, 30 * time.Second, 90 * time.Second},
		{50, 30 * time.Second, 90 * time.Second}, // capped at a minute, jittered
	} {
		for range 100 {
			if d := backoff(tc.failures, nil); d < tc.lo || d > tc.hi {
				t.Fatalf("backoff(%d) = %v, want %v..%v", tc.failures, d, tc.lo, tc.hi)
			}
		}
	}
	if d := backoff(1, &vaultclient.Error{Status: 503, RetryAfter: 20 * time.Second}); d < 20*time.Second {
		t.Fatalf("backoff with Retry-After 20s = %v", d)
	}
}
