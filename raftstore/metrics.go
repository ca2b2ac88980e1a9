package raftstore

import "github.com/prometheus/client_golang/prometheus"

// storeMetrics are the store's Prometheus collectors.
type storeMetrics struct {
	commit    prometheus.Histogram
	conflicts prometheus.Counter
	forwards  prometheus.Counter
	watchers  prometheus.Gauge
	leader    prometheus.Gauge
}

func newStoreMetrics() *storeMetrics {
	return &storeMetrics{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "certvault_raft_commit_seconds",
			Help:    "Time from proposing a write on the leader to its being committed and applied.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certvault_raft_conflicts_total",
			Help: "Writes refused because a precondition did not hold.",
		}),
		forwards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certvault_raft_forwards_total",
			Help: "Requests this node forwarded to the leader.",
		}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certvault_raft_watchers",
			Help: "Watch calls currently blocked on this node.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certvault_raft_is_leader",
			Help: "1 when this node is the raft leader.",
		}),
	}
}

// Collectors returns the store's Prometheus collectors, including gauges of
// the raft indexes read at scrape time.
func (s *Store) Collectors() []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		s.metrics.commit, s.metrics.conflicts, s.metrics.forwards, s.metrics.watchers, s.metrics.leader,
		gauge("certvault_raft_applied_index", "Index of the last command applied to the local state.",
			func() float64 { return float64(s.AppliedIndex()) }),
		gauge("certvault_raft_commit_index", "Raft commit index known to this node.",
			func() float64 { return float64(s.raft.CommitIndex()) }),
		gauge("certvault_raft_last_index", "Last index in this node's raft log.",
			func() float64 { return float64(s.raft.LastIndex()) }),
		gauge("certvault_raft_disk_full", "1 while this node refuses writes because its disk is full (see --disk-reserve-mb).",
			func() float64 { return boolFloat(s.disk.isFull()) }),
		gauge("certvault_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
			func() float64 { return float64(s.raft.State()) }),
	}
}
