package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
)

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

func (n *Node) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := n.store.Status()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	out := ClusterStatus{Leader: st.Leader, NodeID: st.NodeID, Term: st.Term, AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex, LastSnapshotIndex: st.LastSnapshotIndex, DiskFull: st.DiskFull}
	for _, s := range st.Servers {
		m := ClusterMember{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage, State: s.State}
		m.APIAddr, _ = n.resolveNode(s.ID)
		out.Servers = append(out.Servers, m)
	}
	if r.URL.Query().Get("digest") == "true" {
		out.DigestIndex, out.StateDigest = n.store.Digest()
	}
	writeJSON(w, http.StatusOK, out)
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

func (n *Node) handleCreateJoinToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TTL  string `json:"ttl"`
		Uses int    `json:"uses"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			n.fail(w, r, err)
			return
		}
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > 7*24*time.Hour {
			n.fail(w, r, badParameter("ttl %q: give a duration between 1s and 168h, such as 30m", req.TTL))
			return
		}
		ttl = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Uses < 0 || req.Uses > 1000 {
		n.fail(w, r, badParameter("uses %d: give a number from 1 to 1000", req.Uses))
		return
	}
	ca := n.caCert.Load()
	id, err := randomID(8)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	now := time.Now()
	tok, rec, err := newJoinToken(id, ca, ttl, req.Uses, now)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	b := &raftstore.Batch{}
	if err := putSealedJSON(b, n.barrier.Load(), prefixJoinTokens+id, rec); err != nil {
		n.fail(w, r, err)
		return
	}
	if _, err := n.store.Apply(r.Context(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, JoinTokenResponse{Token: tok, Expires: time.Unix(rec.Expires, 0).UTC(), Uses: rec.Uses, CAFingerprint: fingerprint(ca)})
}

func (n *Node) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := n.store.RemoveServer(r.Context(), id); err != nil {
		if errors.Is(err, raftstore.ErrUnknownServer) {
			n.fail(w, r, notFound("NodeNotFound", "node %q is not a member of the cluster", id))
			return
		}
		n.fail(w, r, err)
		return
	}
	if _, err := n.store.Apply(r.Context(), (&raftstore.Batch{}).Delete(prefixNodes+id)); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": id})
}

// handleAddMember is the last step of a join: the new node, now running
// raft and authenticated by its node certificate, asks to become a voter.
func (n *Node) handleAddMember(w http.ResponseWriter, r *http.Request) {
	if !n.isNodeRequest(r) {
		writeError(w, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "only cluster nodes may add themselves"})
		return
	}
	var req struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != req.ID {
		writeError(w, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: fmt.Sprintf("certificate of node %q cannot add node %q", cn, req.ID)})
		return
	}
	if _, err := n.resolveNode(req.ID); err != nil {
		writeError(w, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: fmt.Sprintf("node %q has not joined with a token", req.ID)})
		return
	}
	if err := n.store.AddVoter(r.Context(), req.ID, req.RaftAddr); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"added": req.ID})
}

func (n *Node) handleSnapshotSave(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := n.store.SaveSnapshot(r.Context(), w); err != nil {
		n.fail(w, r, err)
	}
}

// handleSnapshotRestore restores on the leader; a follower passes the
// upload to it.
func (n *Node) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) {
	if !n.store.IsLeader() {
		n.proxyToLeader(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<30)
	var sum snapshotSummary
	err := n.store.RestoreSnapshot(r.Context(), r.Body, func(v raftstore.SnapshotView) error {
		if err := n.checkSnapshot(v); err != nil {
			return err
		}
		sum = summarizeSnapshot(v)
		return nil
	})
	if err != nil {
		if errors.Is(err, raftstore.ErrBadSnapshot) || errors.Is(err, ErrSealMismatch) || errors.Is(err, errForeignSnapshot) {
			n.fail(w, r, badParameter("snapshot refused, nothing was changed: %v", err))
			return
		}
		n.fail(w, r, err)
		return
	}
	sum.Restored, sum.AppliedIndex = true, n.store.AppliedIndex()
	writeJSON(w, http.StatusOK, sum)
}

// snapshotSummary is the answer to a snapshot restore: what the snapshot
// held, so that an operator can tell it was the one meant.
type snapshotSummary struct {
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
	Objects snapshotCounts `json:"objects"`
}

// snapshotCounts counts the objects of a snapshot. Certificates, secrets
// and keys count names that have a version and are not deleted; the key
// and secret a certificate manages count with the certificate only;
// Deleted counts the soft-deleted ones; Agents counts agent identities,
// revoked ones too.
type snapshotCounts struct {
	Certificates int `json:"certificates"`
	Secrets      int `json:"secrets"`
	Keys         int `json:"keys"`
	Deleted      int `json:"deleted"`
	Issuers      int `json:"issuers"`
	Agents       int `json:"agents"`
}

// summarizeSnapshot counts what v holds. It reads only plain (unsealed)
// records.
func summarizeSnapshot(v raftstore.SnapshotView) snapshotSummary {
	sum := snapshotSummary{SnapshotIndex: v.Index()}
	if t := v.Taken(); !t.IsZero() {
		t = t.UTC()
		sum.SnapshotTime = &t
	}
	c := &sum.Objects
	for kind, count := range map[string]*int{kindCertificates: &c.Certificates, kindSecrets: &c.Secrets, kindKeys: &c.Keys} {
		for _, k := range v.Keys("meta/" + kind + "/") {
			raw, _ := v.Get(k)
			var m objectMeta
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
	c.Agents = len(v.Keys(prefixAgents))
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
	if _, err := openKeyring(kr, n.seal); err != nil {
		return fmt.Errorf("the snapshot's keyring: %w", err)
	}
	caPEM, ok := v.Get(keyCACert)
	if !ok {
		return fmt.Errorf("no CA in the snapshot: %w", raftstore.ErrBadSnapshot)
	}
	ca, err := parseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("the snapshot's CA: %v: %w", err, raftstore.ErrBadSnapshot)
	}
	if fingerprint(ca) != fingerprint(n.caCert.Load()) {
		return errForeignSnapshot
	}
	if groups := nameCollisions(snapshotKeys(v)); len(groups) > 0 {
		return fmt.Errorf("the snapshot holds names that differ only by letter case: %s: %w", strings.Join(groups, "; "), raftstore.ErrBadSnapshot)
	}
	return nil
}
