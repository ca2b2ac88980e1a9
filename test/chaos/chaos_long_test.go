//go:build chaos

package chaos

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaos is the long run (make chaos): CHAOS_SECONDS of nemeses
// (default 300) on the schedule of CHAOS_SEED (default: the time), with
// CHAOS_NEMESES (comma-separated) to limit the schedule to some nemeses.
// It prints the table, writes the JSON into bench-results/ and, on
// failure, the history around the violation and porcupine's
// visualisation into CHAOS_OUT (default bench-results/chaos-failures).
func TestChaos(t *testing.T) {
	requireRoot(t)
	cfg := Config{Duration: DefaultDuration, Seed: uint64(time.Now().UnixNano() % 1_000_000)}
	if s := os.Getenv("CHAOS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("CHAOS_SECONDS=%q: give a positive number of seconds", s)
		}
		cfg.Duration = time.Duration(n) * time.Second
	}
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: give a number, e.g. the seed a failed run printed", s)
		}
		cfg.Seed = n
	}
	if s := os.Getenv("CHAOS_NEMESES"); s != "" {
		for _, n := range strings.Split(s, ",") {
			n = strings.TrimSpace(n)
			known := false
			for _, k := range AllNemeses {
				known = known || k == n
			}
			if !known {
				t.Fatalf("CHAOS_NEMESES: %q is not a nemesis; use some of %s", n, strings.Join(AllNemeses, ","))
			}
			cfg.Nemeses = append(cfg.Nemeses, n)
		}
	}
	cfg.OutDir = os.Getenv("CHAOS_OUT")
	if cfg.OutDir == "" {
		cfg.OutDir = resultsDir("chaos-failures")
	}
	res := Run(t, cfg)
	path, err := res.WriteJSON()
	if err != nil {
		t.Errorf("write the results: %v", err)
		return
	}
	t.Logf("results: %s", path)
}
