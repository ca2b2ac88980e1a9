package version

import (
	"runtime"
	"testing"
)

// TestString: the line names the program, the version, the commit (the
// Makefile's when the build recorded none, as in a test binary) and Go.
func TestString(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
	Version, Commit = "v1.2.3", "abc123"
	got := String("certvault")
	want := "certvault v1.2.3 (commit abc123, " + runtime.Version() + ")"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	Commit = ""
	if got, want := Get().Commit, "unknown"; got != want {
		t.Fatalf("no commit recorded: got %q, want %q", got, want)
	}
}
