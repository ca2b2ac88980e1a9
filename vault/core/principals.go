package core

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// The core of principals: bearer tokens (sys/tokens/ID, sealed) and role
// assignments (one record, keyAssignments). Every change that could take
// the vault's last administrator away is refused (adminRemains), checked
// with a compare-and-set on the assignments record so that two changes
// cannot both pass.

// KeyAssignments holds every role assignment in one record, so that a
// check ("an administrator remains") and a change commit together with a
// compare-and-set on one index.
const KeyAssignments = "access/assignments"

// RootPrincipal is the bootstrap token's principal; the name is reserved.
const RootPrincipal = "root"

// ParseTTL reads a duration such as 90m, 12h or 30d. Its error is a
// KindBadParameter about "ttl".
func ParseTTL(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil || days <= 0 {
			return 0, BadParameter("ttl", "ttl %q: give a duration such as 90m, 12h or 30d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil || ttl <= 0 {
		return 0, BadParameter("ttl", "ttl %q: give a duration such as 90m, 12h or 30d", s)
	}
	return ttl, nil
}

// Assignments returns the role assignments and the index of their record
// (raftstore.NotExist when there is none).
func (c *Core) Assignments() ([]access.Assignment, uint64) {
	e, ok := c.Store.Get(KeyAssignments)
	if !ok {
		return nil, raftstore.NotExist
	}
	var as []access.Assignment
	if err := json.Unmarshal(e.Value, &as); err != nil {
		c.Log.Error("role assignments do not decode", "err", err)
	}
	return as, e.Index
}

// BootstrapAssignments is the first assignment: the root token's
// principal is an Administrator of the whole vault.
func BootstrapAssignments(now time.Time) []byte {
	return MustJSON([]access.Assignment{{ID: "1", Role: access.Administrator, Assignee: RootPrincipal, Scope: "/", Created: now.Unix(), CreatedBy: "bootstrap"}})
}

// TokenRecord is a bearer token as stored (through the barrier): only the
// SHA-256 of its secret part.
type TokenRecord struct {
	// Name is the principal the token authenticates.
	Name    string `json:"name"`
	Hash    []byte `json:"hash"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires,omitempty"`
	// CreatedBy is the principal that created the token.
	CreatedBy string `json:"created_by,omitempty"`
}

func (t TokenRecord) Expired(now time.Time) bool {
	return t.Expires != 0 && now.Unix() >= t.Expires
}

// TokenPrefix starts every bearer token: "cvt.<id>.<secret>".
const TokenPrefix = "cvt."

// NewToken makes a token with the given ID; ttl 0 means no expiry.
func NewToken(id, name string, ttl time.Duration, now time.Time) (string, TokenRecord, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", TokenRecord{}, fmt.Errorf("generate token: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	rec := TokenRecord{Name: name, Hash: sum[:], Created: now.Unix()}
	if ttl > 0 {
		rec.Expires = now.Add(ttl).Unix()
	}
	return TokenPrefix + id + "." + s, rec, nil
}

// RandomID returns n random bytes as hex.
func RandomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
