// Package vault is the certvault node: start-up (bootstrap, join or
// restart), the seal and its keyring, raft wiring, the vault's own CA and
// the node certificates, TLS and the API listener, authentication and the
// gate every request passes (authorization, the audit record, passing
// writes to the leader), cluster membership, health and metrics.
//
// It builds the domain (vault/core, vault/issuance, vault/fleet,
// vault/identity) and mounts the fronts (vault/front/kvapi,
// vault/front/v1api) over it; see DESIGN.md for the layers. It never does
// I/O inside a raft Apply: randomness, key generation, signing and clocks
// run before a command is proposed. It does not contain the agent, which
// talks to it only over HTTPS.
package vault
