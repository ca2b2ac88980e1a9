// Package chaos breaks a real three-node certvault cluster on purpose and
// checks what its clients saw. It owns the harness: a private network of
// Linux network namespaces (one per node, a bridge between them, a veth
// pair to the harness's own namespace), the nemeses that partition, pause,
// kill, starve of disk and slow the nodes on a seeded schedule, the
// clients that record every request, and the checkers: the secrets
// history against a register model with porcupine, certificates, agents,
// the cluster's state after the final heal, deadlines and error shapes.
//
// It fakes nothing: the nodes are certvaultd processes started by
// test/testcluster, each in its own namespace. It needs root (namespaces,
// veth pairs, tmpfs mounts) and skips without it.
//
// A short run with fixed seeds is part of go test ./... (TestChaosShort);
// the long run is go test -tags chaos ./test/chaos (make chaos), with
// CHAOS_SECONDS (default 300) and CHAOS_SEED to replay a schedule. See
// docs/reliability.md.
//
// It does not test the HSM, ACME issuers or the web console; they have
// their own end-to-end tests in test/.
package chaos
