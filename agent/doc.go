// Package agent is the certvault node agent, the static binary that runs
// on each machine. Its parts live in sub-packages: enroll (the agent's
// identity: join, renewal), config (the YAML configuration), vaultclient
// (long poll, fetch, report, access tokens), install (atomic versioned
// installs), hook (reload commands), tlscheck (the served-certificate
// check), sdnotify (systemd), midentity (the managed-identity endpoint
// for local applications) and runner (the main loop that ties them
// together).
package agent
