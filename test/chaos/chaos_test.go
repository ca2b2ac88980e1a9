package chaos

import (
	"fmt"
	"testing"
	"time"
)

// shortRuns are the fixed runs of the short chaos test in go test ./...:
// each on a cluster of its own, for shortDuration. Their seeds were
// chosen so that the first four steps draw four different nemeses, and
// together every one but slow-link (which needs netem).
var shortRuns = []struct {
	seed    uint64
	nemeses []string
}{
	{4, []string{NemIsolateLeader, NemPauseLeader, NemKillTwo, NemDiskFull}},
	{32, []string{NemSplit, NemOneWay, NemKillOne, NemDiskFull}},
}

const shortDuration = 25 * time.Second

// TestChaosShort is the short chaos run, part of make test (and alone:
// make chaos-short): two fixed schedules that between them break the
// cluster in every way but slow-link, with all the checkers, so that a
// change that breaks consistency breaks CI. The long run is TestChaos
// (make chaos). It needs root; without it, it skips.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes about a minute and a half; -short skips it")
	}
	requireRoot(t)
	for _, r := range shortRuns {
		t.Run(fmt.Sprintf("seed-%d", r.seed), func(t *testing.T) {
			// On failure the history around the violation, porcupine's
			// visualisation and the node logs go to
			// bench-results/chaos-failures/seed-N.
			Run(t, Config{Seed: r.seed, Duration: shortDuration, Nemeses: r.nemeses, OutDir: resultsDir("chaos-failures")})
		})
	}
}
