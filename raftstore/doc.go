// Package raftstore is certvault's replicated key/value state machine.
//
// It owns consensus and nothing else: a Store wraps hashicorp/raft with
// raft-boltdb/v2 as log and stable store and raft's file snapshot store, and
// keeps the applied state in memory as an ordered B-tree of keys. Writes are
// typed commands (a type byte first) carrying batches of operations whose
// preconditions (compare-and-set on a key's modify index) are checked inside
// Apply, so two racing writers cannot both win. Any node accepts writes and
// forwards them to the leader with a hop limit; reads can be local (stale) or
// linearizable (a read index obtained from the leader); a watch blocks until
// something under a key prefix changes after a given index.
//
// The package does not know what the keys mean and never sees a secret in
// plaintext: the vault encrypts values before it proposes them. It does not
// speak HTTP to clients; forwarding to the leader goes through the Forwarder
// interface, which the vault implements over its own TLS listener.
//
// See DESIGN.md in this directory for where state lives and what a write
// costs.
package raftstore
