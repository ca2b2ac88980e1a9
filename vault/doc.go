// Package vault is the certvault service: it starts a node (bootstrap,
// join or restart), owns the seal and the barrier that encrypts every
// secret before it reaches raft, the vault's own CA, authentication, and
// the HTTP API (the Key Vault data plane and the /v1 extension endpoints).
//
// It builds on raftstore for replicated state and never does I/O inside a
// raft Apply: randomness, key generation, signing and clocks run before a
// command is proposed. It does not contain the agent, which talks to it only
// over HTTPS.
package vault
