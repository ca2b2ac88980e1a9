package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/barrier"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"

	"github.com/certvault/certvault/raftstore"
)

// The core of the cluster's administration: status, join tokens, removing
// and adding members, snapshots. The join protocol itself (join.go) and the
// node's start-up are the node's.

// ClusterStatus is the answer of GET /v1/sys/cluster/status.
type ClusterStatus struct {
	Leader       string `json:"leader"`
	NodeID       string `json:"node_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	// LastSnapshotIndex is the answering node's latest raft snapshot.
	LastSnapshotIndex uint64          `json:"last_snapshot_index"`
	Servers           []ClusterMember `json:"servers"`
	// DiskFull, when set, says why the answering node refuses writes for
	// lack of disk space.
	DiskFull string `json:"disk_full,omitempty"`
	// StateDigest is a SHA-256 (hex) of the answering node's replicated
	// state at DigestIndex, its applied index when it computed it; only
	// with ?digest=true. Nodes that report the same DigestIndex must
	// report the same StateDigest.
	StateDigest string `json:"state_digest,omitempty"`
	DigestIndex uint64 `json:"digest_index,omitempty"`
}

// ClusterMember is one server of the status.
type ClusterMember struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	APIAddr  string `json:"api_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	State    string `json:"state"`
}

// joinTokenRecord is a join token as stored (through the barrier).
type joinTokenRecord struct {
	Hash    []byte `json:"hash"`
	Expires int64  `json:"expires"`
	Uses    int    `json:"uses"`
	Created int64  `json:"created"`
}

// JoinTokenResponse is the answer of POST /v1/sys/cluster/join-tokens.
type JoinTokenResponse struct {
	Token         string    `json:"token"`
	Expires       time.Time `json:"expires"`
	Uses          int       `json:"uses"`
	CAFingerprint string    `json:"ca_fingerprint"`
}

// SnapshotSummary is the answer to a snapshot restore: what the snapshot
// held, so that an operator can tell it was the one meant.
type SnapshotSummary struct {
	Restored bool `json:"restored"`
	// AppliedIndex is this cluster's log index once the restore applied.
	AppliedIndex uint64 `json:"applied_index"`
	// SnapshotIndex is the applied index of the state in the snapshot, as
	// the cluster that saved it numbered its log.
	SnapshotIndex uint64 `json:"snapshot_index"`
	// SnapshotTime is when the snapshot was taken; absent for files saved
	// before snapshots recorded it.
	SnapshotTime *time.Time `json:"snapshot_time,omitempty"`
	// Objects counts what the snapshot holds.
	Objects SnapshotCounts `json:"objects"`
}

// SnapshotCounts counts the objects of a snapshot. Certificates, secrets
// and keys count names that have a version and are not deleted; the key
// and secret a certificate manages count with the certificate only;
// Deleted counts the soft-deleted ones; Agents counts agent identities,
// revoked ones too.
type SnapshotCounts struct {
	Certificates int `json:"certificates"`
	Secrets      int `json:"secrets"`
	Keys         int `json:"keys"`
	Deleted      int `json:"deleted"`
	Issuers      int `json:"issuers"`
	Agents       int `json:"agents"`
}

// summarizeSnapshot counts what v holds. It reads only plain (unsealed)
// records.
func summarizeSnapshot(v raftstore.SnapshotView) SnapshotSummary {
	sum := SnapshotSummary{SnapshotIndex: v.Index()}
	if t := v.Taken(); !t.IsZero() {
		t = t.UTC()
		sum.SnapshotTime = &t
	}
	c := &sum.Objects
	for kind, count := range map[string]*int{core.KindCertificates: &c.Certificates, core.KindSecrets: &c.Secrets, core.KindKeys: &c.Keys} {
		for _, k := range v.Keys("meta/" + kind + "/") {
			raw, _ := v.Get(k)
			var m core.ObjectMeta
			if json.Unmarshal(raw, &m) != nil || m.ManagedBy != "" || m.Current == "" {
				continue
			}
			if m.Deleted != nil {
				c.Deleted++
				continue
			}
			*count++
		}
	}
	c.Issuers = len(v.Keys("issuers/"))
	c.Agents = len(v.Keys(fleet.PrefixAgents))
	return sum
}

var errForeignSnapshot = errors.New("the snapshot belongs to a cluster with another CA")

// checkSnapshot refuses a snapshot whose keyring this node's seal cannot
// open or whose CA is not this cluster's (the nodes' certificates would no
// longer be trusted).
func (n *Node) checkSnapshot(v raftstore.SnapshotView) error {
	kr, ok := v.Get(keyKeyring)
	if !ok {
		return fmt.Errorf("no keyring in the snapshot: %w", raftstore.ErrBadSnapshot)
	}
	if _, err := barrier.OpenKeyring(kr, n.seal); err != nil {
		return fmt.Errorf("the snapshot's keyring: %w", err)
	}
	caPEM, ok := v.Get(keyCACert)
	if !ok {
		return fmt.Errorf("no CA in the snapshot: %w", raftstore.ErrBadSnapshot)
	}
	ca, err := core.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("the snapshot's CA: %v: %w", err, raftstore.ErrBadSnapshot)
	}
	if core.Fingerprint(ca) != core.Fingerprint(n.CACert.Load()) {
		return errForeignSnapshot
	}
	if groups := nameCollisions(snapshotKeys(v)); len(groups) > 0 {
		return fmt.Errorf("the snapshot holds names that differ only by letter case: %s: %w", strings.Join(groups, "; "), raftstore.ErrBadSnapshot)
	}
	return nil
}

// ClusterStatusRequest asks for the cluster's status.
type ClusterStatusRequest struct {
	// Digest adds a digest of this node's replicated state.
	Digest bool
}

// GetClusterStatus is the cluster as this node sees it.
func (n *Node) GetClusterStatus(ctx context.Context, p core.Caller, req ClusterStatusRequest) (ClusterStatus, error) {
	st, err := n.Store.Status()
	if err != nil {
		return ClusterStatus{}, err
	}
	out := ClusterStatus{Leader: st.Leader, NodeID: st.NodeID, Term: st.Term, AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex, LastSnapshotIndex: st.LastSnapshotIndex, DiskFull: st.DiskFull}
	for _, s := range st.Servers {
		m := ClusterMember{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage, State: s.State}
		m.APIAddr, _ = n.resolveNode(s.ID)
		out.Servers = append(out.Servers, m)
	}
	if req.Digest {
		out.DigestIndex, out.StateDigest = n.Store.Digest()
	}
	return out, nil
}

// CreateJoinTokenRequest asks for a token that admits new nodes.
type CreateJoinTokenRequest struct {
	// TTL is a Go duration from 1s to 168h; "" is an hour.
	TTL string
	// Uses is how many nodes it admits, 1 to 1000; 0 is one.
	Uses int
}

// CreateJoinTokenResult is the new join token (shown this once) and the
// raft index that stored it.
type CreateJoinTokenResult struct {
	Token JoinTokenResponse
	Index uint64
}

// CreateJoinToken makes a node join token.
func (n *Node) CreateJoinToken(ctx context.Context, p core.Caller, req CreateJoinTokenRequest) (CreateJoinTokenResult, error) {
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > 7*24*time.Hour {
			return CreateJoinTokenResult{}, core.BadParameter("ttl", "ttl %q: give a duration between 1s and 168h, such as 30m", req.TTL)
		}
		ttl = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Uses < 0 || req.Uses > 1000 {
		return CreateJoinTokenResult{}, core.BadParameter("uses", "uses %d: give a number from 1 to 1000", req.Uses)
	}
	ca := n.CACert.Load()
	id, err := core.RandomID(8)
	if err != nil {
		return CreateJoinTokenResult{}, err
	}
	now := time.Now()
	tok, rec, err := newJoinToken(id, ca, ttl, req.Uses, now)
	if err != nil {
		return CreateJoinTokenResult{}, err
	}
	b := &raftstore.Batch{}
	if err := core.PutSealedJSON(b, n.Barrier.Load(), prefixJoinTokens+id, rec); err != nil {
		return CreateJoinTokenResult{}, err
	}
	idx, err := n.Commit(ctx, b)
	if err != nil {
		return CreateJoinTokenResult{}, err
	}
	return CreateJoinTokenResult{Token: JoinTokenResponse{Token: tok, Expires: time.Unix(rec.Expires, 0).UTC(), Uses: rec.Uses, CAFingerprint: core.Fingerprint(ca)}, Index: idx}, nil
}

// RemoveMember takes node id out of the raft configuration, then deletes
// its node record; it returns the raft index of the deletion.
func (n *Node) RemoveMember(ctx context.Context, p core.Caller, id string) (uint64, error) {
	if err := n.Store.RemoveServer(ctx, id); err != nil {
		if errors.Is(err, raftstore.ErrUnknownServer) {
			return 0, core.NotFound("NodeNotFound", "node %q is not a member of the cluster", id)
		}
		return 0, err
	}
	return n.Commit(ctx, (&raftstore.Batch{}).Delete(prefixNodes+id))
}

// AddMemberRequest makes a node that joined with a token (and now runs
// raft) a voter.
type AddMemberRequest struct {
	ID       string
	RaftAddr string
}

// AddMember is the last step of a join: the node, which the front has
// authenticated as req.ID by its node certificate, becomes a voter.
func (n *Node) AddMember(ctx context.Context, p core.Caller, req AddMemberRequest) error {
	if _, err := n.resolveNode(req.ID); err != nil {
		return core.Forbidden("node %q has not joined with a token", req.ID)
	}
	return n.Store.AddVoter(ctx, req.ID, req.RaftAddr)
}

// SaveSnapshot writes a snapshot of the replicated state to w.
func (n *Node) SaveSnapshot(ctx context.Context, p core.Caller, w io.Writer) error {
	return n.Store.SaveSnapshot(ctx, w)
}

// RestoreSnapshot replaces the replicated state by the snapshot read from
// body, on the leader, after checking that this cluster's seal opens its
// keyring and that it has this cluster's CA; a refused snapshot changes
// nothing.
func (n *Node) RestoreSnapshot(ctx context.Context, p core.Caller, body io.Reader) (SnapshotSummary, error) {
	var sum SnapshotSummary
	err := n.Store.RestoreSnapshot(ctx, body, func(v raftstore.SnapshotView) error {
		if err := n.checkSnapshot(v); err != nil {
			return err
		}
		sum = summarizeSnapshot(v)
		return nil
	})
	if err != nil {
		if errors.Is(err, raftstore.ErrBadSnapshot) || errors.Is(err, barrier.ErrSealMismatch) || errors.Is(err, errForeignSnapshot) {
			return SnapshotSummary{}, core.BadParameter("", "snapshot refused, nothing was changed: %v", err)
		}
		return SnapshotSummary{}, err
	}
	sum.Restored, sum.AppliedIndex = true, n.Store.AppliedIndex()
	return sum, nil
}
