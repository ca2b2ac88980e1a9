package vault

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/vault/audit"
)

// The core of the audit trail's queries: records from every node's
// trail, merged by time, and each trail's verification against its raft
// anchors. How the other nodes are asked (node certificates, HTTPS) is
// the node's (auditlog.go: auditRecordsByNode, auditVerifyByNode).

// incidents returns a node's recorded audit incidents.
func (n *Node) incidents(node string) []auditIncident {
	return core.ListJSON[auditIncident](n.Core, prefixAuditIncidents+node+"/", "")
}

// localRecords reads the last q.Limit matching records of this node.
func (n *Node) localRecords(q core.AuditQuery) ([]audit.Record, error) {
	var out []audit.Record
	err := audit.ReadTrail(n.auditLog.Dir(), q.Filter, func(r audit.Record) bool {
		out = append(out, r)
		if len(out) > 2*q.Limit {
			out = append(out[:0], out[len(out)-q.Limit:]...)
		}
		return true
	})
	if len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, err
}

// QueryAudit returns the matching records of every node's trail, oldest
// first, the newest q.Limit of them; nodes that could not be asked are
// named in the answer.
func (n *Node) QueryAudit(ctx context.Context, p core.Caller, q core.AuditQuery) (core.AuditRecords, error) {
	return n.clusterRecords(ctx, q)
}

// clusterRecords gathers matching records from every node, oldest first,
// the newest q.Limit of them.
func (n *Node) clusterRecords(ctx context.Context, q core.AuditQuery) (core.AuditRecords, error) {
	got, failed := n.auditRecordsByNode(ctx, q)
	res := core.AuditRecords{Value: []audit.Record{}, Unreachable: failed}
	for _, v := range got {
		res.Value = append(res.Value, v.Value...)
	}
	slices.SortStableFunc(res.Value, func(a, b audit.Record) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	if len(res.Value) > q.Limit {
		res.Value = res.Value[len(res.Value)-q.Limit:]
	}
	return res, nil
}

// NodeVerification is one node's trail check.
type NodeVerification struct {
	Node string `json:"node"`
	audit.Result
	// Anchors is how many raft anchors the trail was checked against.
	Anchors int    `json:"anchors"`
	Error   string `json:"error,omitempty"`
	// Incidents are earlier failed checks of this trail, kept in raft.
	Incidents []auditIncident `json:"incidents,omitempty"`
}

// AuditVerification answers POST /v1/audit/verify.
type AuditVerification struct {
	OK    bool               `json:"ok"`
	Nodes []NodeVerification `json:"nodes"`
}

// anchorHeads returns this node's anchors in raft, oldest first.
func (n *Node) anchorHeads() []audit.Head {
	var heads []audit.Head
	if e, ok := n.Store.Get(prefixAuditAnchors + n.opts.NodeID); ok {
		var rec anchorRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			n.Log.Error("audit anchors do not decode", "err", err)
			return nil
		}
		for _, a := range rec.Anchors {
			heads = append(heads, a.Head)
		}
	}
	return heads
}

// localVerify checks this node's trail against its anchors.
func (n *Node) localVerify() (NodeVerification, error) {
	heads := n.anchorHeads()
	res, err := audit.VerifyTrail(n.auditLog.Dir(), heads...)
	if err != nil {
		return NodeVerification{}, err
	}
	return NodeVerification{Node: n.opts.NodeID, Result: res, Anchors: len(heads)}, nil
}

// VerifyAudit has every node check its trail (lines, sequence, chain,
// hashes, anchors) and adds the incidents recorded in raft; the trail is
// OK when every node was reached and passed with no incident. It reads
// the anchors from the local state: the front makes it current first.
func (n *Node) VerifyAudit(ctx context.Context, p core.Caller) (AuditVerification, error) {
	got, failed := n.auditVerifyByNode(ctx)
	res := AuditVerification{OK: len(failed) == 0}
	for _, v := range got {
		v.Incidents = n.incidents(v.Node)
		res.OK = res.OK && v.OK && len(v.Incidents) == 0
		res.Nodes = append(res.Nodes, v)
	}
	for _, id := range failed {
		res.Nodes = append(res.Nodes, NodeVerification{Node: id, Error: "the node could not be reached; its trail was not verified"})
	}
	slices.SortFunc(res.Nodes, func(a, b NodeVerification) int { return strings.Compare(a.Node, b.Node) })
	return res, nil
}
