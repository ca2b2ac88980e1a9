//go:build bench

package bench

// fleetResult is one run of the fleet group: n simulated agents
// long-polling one vault (or cluster), then a new version committed
// without waves.
type fleetResult struct {
	Nodes  int `json:"nodes"`
	Agents int `json:"agents"`
	// ConnectSeconds is how long the agents took to enroll and connect.
	ConnectSeconds float64 `json:"connect_seconds"`
	// VaultRSSBaseKB is the vault's resident memory (summed over nodes)
	// before the agents connected; VaultRSSConnectedKB with all of them
	// waiting; PerAgentRSSKB the difference per agent. PerAgentKB is the
	// same difference of what the Go runtime holds for live objects and
	// stacks right after a forced garbage collection (HeapInuse +
	// StackInuse), which does not move with the collector's timing as
	// the resident memory does.
	VaultRSSBaseKB      int64   `json:"vault_rss_base_kb"`
	VaultRSSConnectedKB int64   `json:"vault_rss_connected_kb"`
	PerAgentRSSKB       float64 `json:"per_agent_rss_kb"`
	PerAgentKB          float64 `json:"per_agent_kb"`
	// PropagationMS holds, sorted, each agent's time from the commit of
	// the new version (the moment the create request was sent) to its
	// long poll answering with it.
	PropagationMS []float64 `json:"propagation_ms"`
	P50ms         float64   `json:"p50_ms"`
	P99ms         float64   `json:"p99_ms"`
	MaxMS         float64   `json:"max_ms"`
	// Within1s and Within3s are the fractions of agents reached in 1 s
	// and 3 s.
	Within1s float64 `json:"within_1s"`
	Within3s float64 `json:"within_3s"`
	// VaultCPUPct is the vault's CPU (100 = one core) over the
	// propagation window.
	VaultCPUPct float64 `json:"vault_cpu_pct"`
}

// fleetNotReachedMS is what a fleet run records for an agent that was not
// told of the new version within the run's minute.
const fleetNotReachedMS = 60000
