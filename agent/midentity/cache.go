package midentity

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/certvault/certvault/agent/vaultclient"
	"github.com/certvault/certvault/internal/objname"
)

// maxLife caps the lifetime the agent believes a token has, so that the
// arithmetic on it never overflows (the vault's tokens live an hour).
const maxLife = 24 * time.Hour

// token is a cached access token and when to renew it.
type token struct {
	value, tokenType string
	// fetched is when the vault answered; expires is when the token
	// stops working, by the agent's clock.
	fetched, expires time.Time
	// refreshAt is when less than a third of its life is left: a request
	// after it starts a refresh and is answered with this token.
	refreshAt time.Time
	// usableUntil is the last moment it is handed out: a little before
	// expires, so that an application has time to use it.
	usableUntil time.Time
}

// Times returns, for a token the vault answered at fetched with
// expiresIn (seconds, preferred: it does not depend on the two clocks
// agreeing) and expiresOn (Unix seconds, used when expiresIn is 0), when
// it expires, when to refresh it and until when to hand it out. The life
// is capped at 24 hours, and fetched ≤ refreshAt ≤ usableUntil ≤ expires
// always holds; ok is false when the token is already expired.
func Times(fetched time.Time, expiresIn, expiresOn int64) (expires, refreshAt, usableUntil time.Time, ok bool) {
	var life time.Duration
	switch {
	case expiresIn > 0:
		life = time.Duration(min(expiresIn, int64(maxLife/time.Second))) * time.Second
	case expiresOn > 0:
		if d := expiresOn - fetched.Unix(); d > 0 {
			life = time.Duration(min(d, int64(maxLife/time.Second))) * time.Second
		}
	}
	if life <= 0 {
		return fetched, fetched, fetched, false
	}
	expires = fetched.Add(life)
	refreshAt = fetched.Add(life - life/3)
	// Hand it out until a minute before it expires, or a sixth of its
	// life for a short one.
	usableUntil = expires.Add(-min(time.Minute, life/6))
	return expires, refreshAt, usableUntil, true
}

// cacheKey is one token: an identity in the vault (a service principal's
// canonical name, "" for the agent's own) and a resource.
type cacheKey struct{ sp, resource string }

// call is a vault request in flight; waiters read tok and err after done
// is closed.
type call struct {
	done chan struct{}
	tok  *token
	err  error
}

// entry is what the cache holds for a key.
type entry struct {
	tok *token
	// call is the vault request in flight, nil when none.
	call *call
	// err and failedAt are the last failed request: for hold after it,
	// requests that would need the vault get err without asking again.
	err      error
	failedAt time.Time
	used     time.Time
}

// cache holds tokens per identity and resource. A key's first request
// waits for the vault; later ones are answered from the cache, and the
// first one after refreshAt starts a refresh in the background and is
// answered with the cached token, which is handed out until usableUntil
// even when the refresh fails. Concurrent requests for one key make one
// vault call, and each call is bounded by timeout. It is safe for
// concurrent use.
type cache struct {
	src     TokenSource
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration
	hold    time.Duration
	max     int
	// base is the context of vault calls: they outlive the request that
	// started them (others may wait on them), not the server.
	base context.Context

	mu      sync.Mutex
	entries map[cacheKey]*entry
	// calls counts vault calls in flight, for tests.
	calls sync.WaitGroup
}

// get returns a token for resource on behalf of sp.
func (c *cache) get(ctx context.Context, sp, resource string) (*token, error) {
	k := cacheKey{objname.Canonical(sp), resource}
	now := c.now()
	c.mu.Lock()
	e := c.entry(k, now)
	e.used = now
	held := e.err != nil && now.Sub(e.failedAt) < c.hold
	if t := e.tok; t != nil && now.Before(t.usableUntil) {
		if !now.Before(t.refreshAt) && e.call == nil && !held {
			c.start(k, e, sp)
		}
		c.mu.Unlock()
		return t, nil
	}
	if e.call == nil {
		if held {
			err := e.err
			c.mu.Unlock()
			return nil, err
		}
		c.start(k, e, sp)
	}
	cl := e.call
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.tok, cl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// entry returns k's entry, making it when there is none; an identity
// that has c.max resources already loses its least recently used one.
// c.mu is held.
func (c *cache) entry(k cacheKey, now time.Time) *entry {
	if e, ok := c.entries[k]; ok {
		return e
	}
	n := 0
	var lru cacheKey
	var lruUsed time.Time
	for ok, e := range c.entries {
		if ok.sp != k.sp {
			continue
		}
		if n == 0 || e.used.Before(lruUsed) {
			lru, lruUsed = ok, e.used
		}
		n++
	}
	if n >= c.max {
		delete(c.entries, lru)
	}
	e := &entry{used: now}
	c.entries[k] = e
	return e
}

// start begins a vault call for k (c.mu is held). sp is the name as
// configured, as the vault is asked.
func (c *cache) start(k cacheKey, e *entry, sp string) {
	cl := &call{done: make(chan struct{})}
	e.call = cl
	c.calls.Add(1)
	go func() {
		defer c.calls.Done()
		ctx, cancel := context.WithTimeout(c.base, c.timeout)
		at := c.now()
		vt, err := c.src.Token(ctx, sp, k.resource)
		cancel()
		var t *token
		if err == nil {
			t, err = newToken(vt, at)
		}
		c.mu.Lock()
		e.call = nil
		if err != nil {
			e.err, e.failedAt = err, c.now()
			if e.tok != nil && c.now().Before(e.tok.usableUntil) {
				c.log.Warn("managed identity: token refresh failed; the cached token is handed out until it expires",
					"service_principal", sp, "resource", k.resource, "expires", e.tok.expires, "err", err)
			}
		} else {
			e.tok, e.err = t, nil
		}
		c.mu.Unlock()
		cl.tok, cl.err = t, err
		close(cl.done)
	}()
}

// newToken makes a vault answer received at into a token.
func newToken(vt *vaultclient.AccessToken, at time.Time) (*token, error) {
	expires, refreshAt, usable, ok := Times(at, vt.ExpiresIn, vt.ExpiresOn)
	if !ok {
		return nil, errExpired
	}
	typ := vt.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return &token{value: vt.AccessToken, tokenType: typ, fetched: at, expires: expires, refreshAt: refreshAt, usableUntil: usable}, nil
}

// forget drops the tokens of identities not in keep (canonical service
// principal names, "" for the agent's own).
func (c *cache) forget(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k.sp] {
			delete(c.entries, k)
		}
	}
}
