package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
)

// Console sessions (issue 19): signing in to the web console with a
// certvault token makes a session, stored in raft so that every node
// knows it and a sign-out ends it everywhere. The session names the token
// it was made from, and is valid only while that token is: revoking the
// token ends its sessions. The browser holds the session's secret in a
// cookie; the vault keeps only its SHA-256, as the storage key.

// PrefixSessions holds the sessions by the hash of their secret.
const PrefixSessions = "sys/ui-sessions/"

// SessionLifetime bounds a session however active it is; the console's
// idle timeout is shorter (it lives in the signed cookie).
const SessionLifetime = 8 * time.Hour

// Session is a console session as stored.
type Session struct {
	Principal string `json:"principal"`
	// TokenID is the certvault token signed in with, or ClientID the
	// service principal's client id: the session is valid while it is.
	TokenID  string `json:"token_id,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Created  int64  `json:"created"`
	Expires  int64  `json:"expires"`
}

// sessionKey is the storage key of the session with secret.
func sessionKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return PrefixSessions + hex.EncodeToString(sum[:])
}

// CreateSession makes a session for p, who signed in with a certvault
// token (p.TokenID) or as a service principal (clientID, see
// SignInServicePrincipal), and returns its secret (for the cookie) and
// record.
func (c *Identity) CreateSession(ctx context.Context, p core.Caller, clientID string, now time.Time) (string, Session, error) {
	if (p.TokenID == "" && clientID == "") || p.AgentID != "" {
		return "", Session{}, core.BadParameter("token", "sign in with a certvault token (cvt.…) or a service principal's client id and secret")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Session{}, fmt.Errorf("session secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	s := Session{Principal: p.Name, TokenID: p.TokenID, ClientID: clientID, Created: now.Unix(), Expires: now.Add(SessionLifetime).Unix()}
	if clientID != "" {
		s.TokenID = ""
	}
	_, err := c.Commit(ctx, (&raftstore.Batch{}).PutIf(sessionKey(secret), core.MustJSON(s), raftstore.NotExist))
	if err != nil {
		return "", Session{}, err
	}
	return secret, s, nil
}

// SessionCaller returns the caller of the session with secret, and
// whether it is valid: it exists, has not expired, and the token it was
// made from still exists and has not expired.
func (c *Identity) SessionCaller(secret string, now time.Time) (core.Caller, Session, bool, error) {
	e, ok := c.Store.Get(sessionKey(secret))
	if !ok {
		return core.Caller{}, Session{}, false, nil
	}
	var s Session
	if err := json.Unmarshal(e.Value, &s); err != nil {
		return core.Caller{}, Session{}, false, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	if now.Unix() >= s.Expires {
		return core.Caller{}, s, false, nil
	}
	if s.ClientID != "" {
		// A service principal's session lasts while the principal does.
		name, ok := c.SPPrincipalByClientID(s.ClientID)
		if !ok || name != s.Principal {
			return core.Caller{}, s, false, nil
		}
		return core.Caller{Principal: access.Principal{Name: s.Principal}}, s, true, nil
	}
	te, ok := c.Store.Get(core.PrefixTokens + s.TokenID)
	if !ok {
		return core.Caller{}, s, false, nil // the token was revoked
	}
	var rec core.TokenRecord
	if err := c.GetSealedJSON(te, &rec); err != nil {
		return core.Caller{}, s, false, err
	}
	if rec.Expired(now) || rec.Name != s.Principal {
		return core.Caller{}, s, false, nil
	}
	return core.Caller{Principal: access.Principal{Name: s.Principal}, TokenID: s.TokenID}, s, true, nil
}

// DeleteSession ends the session with secret (signing out); ending one
// that is not there is not an error.
func (c *Identity) DeleteSession(ctx context.Context, secret string) error {
	_, err := c.Commit(ctx, (&raftstore.Batch{}).Delete(sessionKey(secret)))
	return err
}

// maxSessionPurge bounds the sessions one purge removes (one raft write).
const maxSessionPurge = 500

// PurgeExpiredSessions removes sessions past their lifetime (the leader's
// janitor calls it), at most maxSessionPurge at a time, each only if it
// is unchanged.
func (c *Identity) PurgeExpiredSessions(ctx context.Context, now time.Time) error {
	es, _ := c.Store.List(PrefixSessions, "", 0)
	b := &raftstore.Batch{}
	n := 0
	for _, e := range es {
		var s Session
		if json.Unmarshal(e.Value, &s) == nil && now.Unix() < s.Expires {
			continue
		}
		b.DeleteIf(e.Key, e.Index)
		if n++; n == maxSessionPurge {
			break
		}
	}
	if n == 0 {
		return nil
	}
	_, err := c.Commit(ctx, b)
	return err
}

// SignInServicePrincipal checks a service principal's client id and
// secret (as the token endpoint does) for a console sign-in, and returns
// its caller; ErrUnknownClient or an *OAuthError when they do not match.
func (c *Identity) SignInServicePrincipal(clientID, secret string) (core.Caller, error) {
	name, ok := c.spNameByClientID(clientID)
	if !ok {
		return core.Caller{}, unknownClient{oauthErr("unauthorized_client", 700016, "no service principal has client id %s", clientID)}
	}
	rec, _, err := c.loadServicePrincipal(name)
	if err != nil {
		return core.Caller{}, err
	}
	if !secretMatches(rec, secret) {
		return core.Caller{}, oauthErr("invalid_client", 7000215, "the client secret does not match")
	}
	return core.Caller{Principal: access.Principal{Name: SPPrincipal(rec.Name)}}, nil
}
