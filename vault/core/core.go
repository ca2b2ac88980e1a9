package core

import (
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certvault/certvault/vault/barrier"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/hsm"
	"github.com/certvault/certvault/vault/notify"
)

// Core is the vault's domain: objects (secrets, keys, certificates'
// versions and policies), their names, versions and soft deletion,
// settings, contacts, events and the mail outbox, principals and the
// access policy. Its methods take typed requests and the caller and
// return typed results and *Error; it is the only code that builds raft
// batches for those objects. The node fills in its fields as it starts.
type Core struct {
	// Store is the replicated state; set once raft is open.
	Store *raftstore.Store
	// Log receives the core's logs.
	Log *slog.Logger
	// Barrier encrypts secret material before it enters a raft command;
	// set once the keyring is open, replaced when it changes.
	Barrier atomic.Pointer[barrier.Barrier]
	// CACert is the vault CA's certificate.
	CACert atomic.Pointer[x509.Certificate]
	// HSM is the PKCS#11 token for -HSM keys and certificates, or nil.
	HSM *hsm.HSM
	// Clock is the time of issuance and renewal (nil: time.Now).
	Clock func() time.Time
	// APIAddr is the URL clients reach the vault at (ids and links in
	// events and mail).
	APIAddr string
	// Mailer sends the outbox's mail, or nil.
	Mailer *notify.Mailer

	// nameLocks serialize writes to one object name (see lockObject).
	nameLocks [nameLockStripes]sync.Mutex
	// policyCache is the access policy of the current assignments.
	policyCache policyCache
}

// Storage keys of the vault's own records that the core reads.
const (
	KeyCAKey     = "sys/ca/key"
	PrefixTokens = "sys/tokens/"
)

// Now is the core's clock for renewal and issuance (Clock).
func (c *Core) Now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

// Caller is who made a request, as authentication found it.
type Caller struct {
	access.Principal
	// TokenID is the public ID of the bearer token used.
	TokenID string
	// AgentID is set for an agent's mutual-TLS identity.
	AgentID string
}

// policyCache holds the access policy built from the assignments record
// at a store index.
type policyCache struct {
	mu    sync.Mutex
	index uint64
	pol   atomic.Pointer[access.Policy]
}

// Policy returns the access policy of the local state, rebuilt when the
// assignments record changed.
func (c *Core) Policy() *access.Policy {
	e, ok := c.Store.Get(KeyAssignments)
	idx := uint64(0)
	if ok {
		idx = e.Index
	}
	pc := &c.policyCache
	if p := pc.pol.Load(); p != nil && pc.loadedIndex() == idx {
		return p
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var as []access.Assignment
	if ok {
		if err := json.Unmarshal(e.Value, &as); err != nil {
			c.Log.Error("role assignments do not decode; denying everything", "err", err)
			as = nil
		}
	}
	p := access.NewPolicy(as)
	pc.pol.Store(p)
	atomic.StoreUint64(&pc.index, idx)
	return p
}

func (pc *policyCache) loadedIndex() uint64 { return atomic.LoadUint64(&pc.index) }

// IsCertificate reports whether name is (or was, if deleted) a
// certificate, so that its managed key and secret fall under scopes on it.
func (c *Core) IsCertificate(name string) bool {
	if _, ok := c.Store.Get(MetaKey(KindCertificates, name)); ok {
		return true
	}
	_, ok := c.Store.Get(DeletedKey(KindCertificates, name))
	return ok
}
