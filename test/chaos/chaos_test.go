package chaos

import (
	"fmt"
	"testing"
	"time"
)

// shortSeeds are the fixed seeds of the short run in go test ./...: each
// runs the nemeses for shortDuration on a cluster of its own.
var shortSeeds = []uint64{1, 2}

const shortDuration = 25 * time.Second

// TestChaosShort is the short chaos run that make test includes: two
// fixed seeds, every nemesis the schedule draws, all the checkers. The
// long run is TestChaos (build tag chaos, make chaos).
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about a minute; -short skips it")
	}
	requireRoot(t)
	for _, seed := range shortSeeds {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			// On failure the history around the violation, porcupine's
			// visualisation and the node logs go to
			// bench-results/chaos-failures/seed-N.
			Run(t, Config{Seed: seed, Duration: shortDuration, OutDir: resultsDir("chaos-failures")})
		})
	}
}
