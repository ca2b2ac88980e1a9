package testcluster

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Main runs a test package that starts clusters: call it from the
// package's TestMain as os.Exit(testcluster.Main(m)). Around m.Run it
//
//   - tells the race runtime of every process the tests start not to sleep
//     a second when it exits (GORACE atexit_sleep_ms=0): with binaries
//     built with -race, every CLI call, hook and graceful stop paid that
//     second, minutes over the suite, while race reports are still written
//     in full;
//   - removes the directory Binaries built the binaries into.
func Main(m *testing.M) int {
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		if err := os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0")); err != nil {
			fmt.Fprintf(os.Stderr, "testcluster: set GORACE: %v\n", err)
			return 2
		}
	}
	code := m.Run()
	if binDir != "" {
		if err := os.RemoveAll(binDir); err != nil {
			fmt.Fprintf(os.Stderr, "testcluster: remove the built binaries: %v\n", err)
		}
	}
	return code
}
