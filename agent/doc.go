// Package agent is the certvault node agent, the static binary that runs
// on each machine. Its parts live in sub-packages: enroll (the agent's
// identity: join, renewal), config (the YAML configuration), vaultclient
// (long poll, fetch, report), install (atomic versioned installs), hook
// (reload commands), tlscheck (the served-certificate check), sdnotify
// (systemd) and runner (the main loop that ties them together).
package agent
