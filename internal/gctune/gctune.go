// Package gctune sizes the garbage collector's headroom to the live heap.
//
// Go's GOGC is a ratio: with GOGC=200 a heap of L live bytes may grow to
// 3L before the next collection. certvaultd runs with 200 because its
// heap is usually small and collecting half as often buys throughput.
// A vault of a million certificate versions holds about 700 MB live,
// though, and then the same ratio lets the process grow past 2 GB.
// gctune keeps the ratio while the heap is small and bounds the headroom
// when it is large: after every collection it sets GOGC so that the next
// one is due at live + min(MaxPercent % of live, Fixed + live/2).
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Config is the rule Percent applies.
type Config struct {
	// MaxPercent is GOGC for a small heap (200 in certvaultd).
	MaxPercent int
	// Fixed is the headroom, beyond half the live heap, that a large heap
	// gets (128 MiB in certvaultd).
	Fixed uint64
}

// Percent returns the GOGC for a live heap of live bytes: MaxPercent
// while that headroom is at most Fixed + live/2, else the percentage
// that headroom is of live (never below 50).
func (c Config) Percent(live uint64) int {
	if live == 0 {
		return c.MaxPercent
	}
	headroom := float64(c.Fixed) + float64(live)/2
	if p := int(headroom * 100 / float64(live)); p < c.MaxPercent {
		return max(p, 50)
	}
	return c.MaxPercent
}

// sentinel is allocated for each collection's hook; it is large enough
// not to come from the tiny allocator, whose objects' finalizers may
// never run.
type sentinel [32]byte

// Tuner runs the rule after every collection until Stop.
type Tuner struct {
	cfg     Config
	stopped atomic.Bool
	sample  []metrics.Sample
}

// Start sets GOGC from the current live heap and again after every
// collection. The caller should not start it when the operator set GOGC.
func Start(cfg Config) *Tuner {
	t := &Tuner{cfg: cfg, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	t.arm()
	return t
}

// Stop ends the tuning; GOGC keeps its last value.
func (t *Tuner) Stop() { t.stopped.Store(true) }

// arm makes the next collection run tune and arm again: an unreachable
// object's finalizer runs after the collection that found it so.
func (t *Tuner) arm() {
	runtime.SetFinalizer(new(sentinel), func(*sentinel) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	})
}

// tune sets GOGC for the live heap the last collection measured.
func (t *Tuner) tune() {
	metrics.Read(t.sample) // only the finalizer goroutine, or Start before it, reads
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	debug.SetGCPercent(t.cfg.Percent(live))
}
