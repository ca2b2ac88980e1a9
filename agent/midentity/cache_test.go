package midentity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/agent/vaultclient"
)

// clock is a clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// asked is one call of the fake source.
type asked struct{ sp, resource string }

// fakeSource is a TokenSource that answers tokens "tok-N" living an hour,
// or what fail says; with gate set, each call first waits for a value
// on it (or its context).
type fakeSource struct {
	mu    sync.Mutex
	calls []asked
	fail  error
	life  int64
	gate  chan struct{}
}

func (f *fakeSource) Token(ctx context.Context, sp, resource string) (*vaultclient.AccessToken, error) {
	f.mu.Lock()
	f.calls = append(f.calls, asked{sp, resource})
	n, fail, gate, life := len(f.calls), f.fail, f.gate, f.life
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	if life == 0 {
		life = 3600
	}
	return &vaultclient.AccessToken{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer", ExpiresIn: life, Resource: resource}, nil
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeSource) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// waitCalls waits until the source has been called n times.
func (f *fakeSource) waitCalls(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the source was called %d times, want %d", f.count(), n)
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// quiet is a logger that drops everything.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newCache(src TokenSource, clk *clock, max int) *cache {
	return &cache{src: src, now: clk.Now, log: quiet(), timeout: 5 * time.Second, hold: DefaultFailureHold,
		max: max, base: context.Background(), entries: map[cacheKey]*entry{}}
}

// get is cache.get that fails the test on an error.
func get(t *testing.T, c *cache, sp, resource string) string {
	t.Helper()
	tok, err := c.get(context.Background(), sp, resource)
	if err != nil {
		t.Fatalf("get %s %s: %v", sp, resource, err)
	}
	return tok.value
}

const vaultURL = "https://vault.example:8443"

func TestCacheRefresh(t *testing.T) {
	src, clk := &fakeSource{}, newClock()
	c := newCache(src, clk, 8)
	if got := get(t, c, "billing", vaultURL); got != "tok-1" {
		t.Fatalf("first request: got %s, want tok-1", got)
	}
	// Service principal names are case-insensitive, as in the vault.
	clk.Add(30 * time.Minute)
	if got := get(t, c, "Billing", vaultURL); got != "tok-1" || src.count() != 1 {
		t.Fatalf("within two thirds of the life: got %s after %d calls, want tok-1 from the cache", got, src.count())
	}
	// Less than a third left: answered from the cache, refreshed behind.
	clk.Add(11 * time.Minute)
	if got := get(t, c, "billing", vaultURL); got != "tok-1" {
		t.Fatalf("due for refresh: got %s, want tok-1 while the refresh runs", got)
	}
	c.calls.Wait()
	if got := get(t, c, "billing", vaultURL); got != "tok-2" || src.count() != 2 {
		t.Fatalf("after the refresh: got %s after %d calls, want tok-2 after 2", got, src.count())
	}
	// Another resource and the agent's own identity are other tokens.
	if get(t, c, "", vaultURL) != "tok-3" || get(t, c, "billing", "https://other.example") != "tok-4" {
		t.Fatal("another identity or resource was answered from the cache")
	}
	if src.calls[2] != (asked{"", vaultURL}) || src.calls[3] != (asked{"billing", "https://other.example"}) {
		t.Fatalf("the source was asked %v", src.calls)
	}
}

func TestCacheRefreshFails(t *testing.T) {
	src, clk := &fakeSource{}, newClock()
	c := newCache(src, clk, 8)
	get(t, c, "billing", vaultURL)
	src.setFail(&vaultclient.Error{Status: 503, Message: "no leader"})
	clk.Add(41 * time.Minute)
	if got := get(t, c, "billing", vaultURL); got != "tok-1" {
		t.Fatalf("due for refresh: got %s, want tok-1", got)
	}
	c.calls.Wait()
	// The refresh failed: the cached token is still handed out, and the
	// vault is not asked again within the hold.
	clk.Add(time.Second)
	if got := get(t, c, "billing", vaultURL); got != "tok-1" || src.count() != 2 {
		t.Fatalf("after a failed refresh: got %s after %d calls, want tok-1 after 2", got, src.count())
	}
	// After the hold, the next request tries again (and still gets tok-1).
	clk.Add(DefaultFailureHold)
	if got := get(t, c, "billing", vaultURL); got != "tok-1" {
		t.Fatalf("retrying the refresh: got %s, want tok-1", got)
	}
	c.calls.Wait()
	if src.count() != 3 {
		t.Fatalf("the refresh was tried %d times, want 2", src.count()-1)
	}
	// Once the token is near its end, the failure is the answer.
	clk.Add(18 * time.Minute) // 59m 6s: less than a minute left
	_, err := c.get(context.Background(), "billing", vaultURL)
	var ve *vaultclient.Error
	if !errors.As(err, &ve) || ve.Status != 503 {
		t.Fatalf("with the token at its end and the vault down: got %v, want the vault's 503", err)
	}
	// The vault back: a new token.
	src.setFail(nil)
	clk.Add(DefaultFailureHold)
	if got := get(t, c, "billing", vaultURL); got != "tok-5" {
		t.Fatalf("vault back: got %s, want tok-5", got)
	}
}

func TestCacheFailureHold(t *testing.T) {
	src, clk := &fakeSource{fail: &vaultclient.Error{Status: 403, Message: "no"}}, newClock()
	c := newCache(src, clk, 8)
	for i := range 3 {
		if _, err := c.get(context.Background(), "billing", vaultURL); err == nil {
			t.Fatalf("request %d: no error", i)
		}
	}
	if src.count() != 1 {
		t.Fatalf("three requests within the hold made %d vault calls, want 1", src.count())
	}
	clk.Add(DefaultFailureHold)
	if _, err := c.get(context.Background(), "billing", vaultURL); err == nil || src.count() != 2 {
		t.Fatalf("after the hold: %v after %d calls, want an error after 2", err, src.count())
	}
}

func TestCacheOneCallForConcurrentRequests(t *testing.T) {
	src, clk := &fakeSource{gate: make(chan struct{})}, newClock()
	c := newCache(src, clk, 8)
	const n = 20
	got := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			tok, err := c.get(context.Background(), "billing", vaultURL)
			if err != nil {
				errs <- err
				return
			}
			got <- tok.value
		}()
	}
	src.waitCalls(t, 1)
	close(src.gate)
	for range n {
		select {
		case v := <-got:
			if v != "tok-1" {
				t.Fatalf("got %s, want tok-1", v)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("requests did not get their answer")
		}
	}
	if src.count() != 1 {
		t.Fatalf("%d concurrent requests made %d vault calls, want 1", n, src.count())
	}
}

func TestCacheBounds(t *testing.T) {
	src, clk := &fakeSource{}, newClock()
	c := newCache(src, clk, 2)
	get(t, c, "billing", "https://a")
	clk.Add(time.Second)
	get(t, c, "billing", "https://b")
	clk.Add(time.Second)
	get(t, c, "billing", "https://a") // a is now the most recently used
	clk.Add(time.Second)
	get(t, c, "billing", "https://c") // b goes
	get(t, c, "", "https://d")        // another identity has its own bound
	n := 0
	for k := range c.entries {
		if k.sp == "billing" {
			n++
		}
	}
	if _, ok := c.entries[cacheKey{"billing", "https://b"}]; ok || n != 2 || len(c.entries) != 3 {
		t.Fatalf("entries %v: want billing's a and c, and d", c.entries)
	}
	if get(t, c, "billing", "https://a") != "tok-1" {
		t.Fatal("the most recently used token was dropped")
	}
	c.forget(map[string]bool{"": true})
	if len(c.entries) != 1 {
		t.Fatalf("after forget: %v, want only the agent's own", c.entries)
	}
}

func TestCacheVaultTimeout(t *testing.T) {
	src, clk := &fakeSource{gate: make(chan struct{})}, newClock()
	c := newCache(src, clk, 8)
	c.timeout = 20 * time.Millisecond
	if _, err := c.get(context.Background(), "billing", vaultURL); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a vault that does not answer: got %v, want the call's deadline", err)
	}
	// A request that gives up does not cancel the call others wait on.
	src.gate = nil
	clk.Add(DefaultFailureHold)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The call may finish before the canceled request looks (a source
	// that answers at once): then it has the token; else it gives up.
	if tok, err := c.get(ctx, "billing", vaultURL); err != nil && !errors.Is(err, context.Canceled) || err == nil && tok == nil {
		t.Fatalf("a canceled request: got %v, %v; want the token or context.Canceled", tok, err)
	}
	c.calls.Wait()
	if got := get(t, c, "billing", vaultURL); got != "tok-2" || src.count() != 2 {
		t.Fatalf("got %s after %d calls, want tok-2 from the call the canceled request started", got, src.count())
	}
}

func TestTimes(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name                 string
		in, on               int64
		life, refresh, usage time.Duration
		ok                   bool
	}{
		{"an hour", 3600, 0, time.Hour, 40 * time.Minute, 59 * time.Minute, true},
		{"expires_in wins", 3600, at.Unix() + 60, time.Hour, 40 * time.Minute, 59 * time.Minute, true},
		{"expires_on alone", 0, at.Unix() + 3600, time.Hour, 40 * time.Minute, 59 * time.Minute, true},
		{"short", 60, 0, time.Minute, 40 * time.Second, 50 * time.Second, true},
		{"capped", 1 << 62, 0, maxLife, 16 * time.Hour, maxLife - time.Minute, true},
		{"expired", 0, at.Unix() - 1, 0, 0, 0, false},
		{"nothing", 0, 0, 0, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp, ref, use, ok := Times(at, tc.in, tc.on)
			if ok != tc.ok || exp.Sub(at) != tc.life || ref.Sub(at) != tc.refresh || use.Sub(at) != tc.usage {
				t.Fatalf("got life %v refresh %v usable %v ok %v; want %v %v %v %v",
					exp.Sub(at), ref.Sub(at), use.Sub(at), ok, tc.life, tc.refresh, tc.usage, tc.ok)
			}
		})
	}
}
