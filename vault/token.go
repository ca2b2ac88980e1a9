package vault

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/identity"
)

// splitToken parses "cvt.<id>.<secret>".
func splitToken(tok string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(tok, core.TokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	return id, secret, ok && id != "" && secret != ""
}

var errBadToken = errors.New("vault: token is not valid")

// tokenCache keeps decrypted token records keyed by ID and the modify
// index they were read at, so that a request costs a map lookup and a
// hash, not a decryption.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]cachedToken
}

type cachedToken struct {
	index uint64
	rec   core.TokenRecord
}

// authenticate checks a bearer token and returns its caller.
func (n *Node) authenticate(tok string) (core.Caller, error) {
	if identity.IsAccessToken(tok) {
		return n.authenticateAccessToken(tok)
	}
	id, secret, ok := splitToken(tok)
	if !ok {
		return core.Caller{}, errBadToken
	}
	e, found := n.Store.Get(core.PrefixTokens + id)
	if !found {
		// A token created a moment ago on the leader may not have been
		// applied here yet: catch up once before refusing it.
		if again, err := n.catchUp(); err != nil {
			return core.Caller{}, err
		} else if again {
			e, found = n.Store.Get(core.PrefixTokens + id)
		}
	}
	if !found {
		return core.Caller{}, errBadToken
	}
	n.tokens.mu.RLock()
	c, hit := n.tokens.m[id]
	n.tokens.mu.RUnlock()
	if !hit || c.index != e.Index {
		var rec core.TokenRecord
		if err := n.GetSealedJSON(e, &rec); err != nil {
			return core.Caller{}, err
		}
		c = cachedToken{index: e.Index, rec: rec}
		n.tokens.mu.Lock()
		if n.tokens.m == nil {
			n.tokens.m = map[string]cachedToken{}
		}
		n.tokens.m[id] = c
		n.tokens.mu.Unlock()
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], c.rec.Hash) != 1 {
		return core.Caller{}, errBadToken
	}
	if c.rec.Expired(time.Now()) {
		return core.Caller{}, errBadToken
	}
	return core.Caller{Principal: access.Principal{Name: c.rec.Name}, TokenID: id}, nil
}

// errNotCaughtUp means a follower could not catch up with the leader
// within the request deadline, so it cannot tell whether a credential or
// an assignment it does not know exists: the client gets 503 and retries,
// never a 401 or 403 that would be a lie.
var errNotCaughtUp = errors.New("vault: this node could not catch up with the leader in time")

// catchUp waits, at most the request deadline, until this follower has
// applied everything the leader committed, so that a credential or an
// assignment created a moment ago elsewhere is seen. It reports whether
// there may be something new to see (false on the leader, which is always
// caught up); it fails with errNotCaughtUp when it could not catch up.
func (n *Node) catchUp() (bool, error) {
	if n.Store.IsLeader() {
		return false, nil
	}
	d := n.opts.RequestDeadline
	if d <= 0 {
		d = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := n.Store.Linearize(ctx); err != nil {
		return false, fmt.Errorf("%w: %w", errNotCaughtUp, err)
	}
	return true, nil
}

// authenticateToken is authenticate for the fronts: a token that is not
// valid is front.ErrUnauthenticated.
func (n *Node) authenticateToken(tok string) (core.Caller, error) {
	c, err := n.authenticate(tok)
	if errors.Is(err, errBadToken) {
		return core.Caller{}, fmt.Errorf("%w: %w", front.ErrUnauthenticated, err)
	}
	return c, err
}
