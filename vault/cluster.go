package vault

import (
	"fmt"
	"net/http"

	"github.com/certvault/certvault/vault/front"
)

// The /v1 front of the cluster's administration (membership.go
// decides): status, join tokens, members, snapshots.

func (n *Node) handleClusterStatus(w http.ResponseWriter, r *http.Request) {
	out, err := n.GetClusterStatus(r.Context(), front.CallerOf(r), ClusterStatusRequest{Digest: r.URL.Query().Get("digest") == "true"})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, out)
}

func (n *Node) handleCreateJoinToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TTL  string `json:"ttl"`
		Uses int    `json:"uses"`
	}
	if r.ContentLength != 0 {
		if err := front.DecodeBody(r, &req); err != nil {
			n.fail(w, r, err)
			return
		}
	}
	res, err := n.CreateJoinToken(r.Context(), front.CallerOf(r), CreateJoinTokenRequest{TTL: req.TTL, Uses: req.Uses})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	// This answer has never carried X-Certvault-Index.
	front.WriteJSON(w, http.StatusOK, res.Token)
}

func (n *Node) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := n.RemoveMember(r.Context(), front.CallerOf(r), id); err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]string{"removed": id})
}

// handleAddMember is the last step of a join: the new node, now running
// raft and authenticated by its node certificate, asks to become a voter.
func (n *Node) handleAddMember(w http.ResponseWriter, r *http.Request) {
	if !n.isNodeRequest(r) {
		front.WriteError(w, &front.APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "only cluster nodes may add themselves"})
		return
	}
	var req struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != req.ID {
		front.WriteError(w, &front.APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: fmt.Sprintf("certificate of node %q cannot add node %q", cn, req.ID)})
		return
	}
	if err := n.AddMember(r.Context(), front.CallerOf(r), AddMemberRequest{ID: req.ID, RaftAddr: req.RaftAddr}); err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]string{"added": req.ID})
}

func (n *Node) handleSnapshotSave(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := n.SaveSnapshot(r.Context(), front.CallerOf(r), w); err != nil {
		n.fail(w, r, err)
	}
}

// handleSnapshotRestore restores on the leader; a follower passes the
// upload to it.
func (n *Node) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) {
	if !n.Store.IsLeader() {
		n.proxyToLeader(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<30)
	sum, err := n.RestoreSnapshot(r.Context(), front.CallerOf(r), r.Body)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, sum)
}
