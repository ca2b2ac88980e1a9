package chaos

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/history"
)

// at builds an operation from start and end offsets in milliseconds.
func at(kind history.Kind, key, value string, outcome history.Outcome, start, end int) history.Op {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return history.Op{Kind: kind, Key: key, Value: value, Outcome: outcome,
		Start: t0.Add(time.Duration(start) * time.Millisecond), End: t0.Add(time.Duration(end) * time.Millisecond), Index: 1}
}

// TestCheckLinearizable runs the secrets checker on small histories with
// a known verdict, so that a checker that accepts everything fails here.
func TestCheckLinearizable(t *testing.T) {
	W, R := history.Write, history.Read
	OK, Unknown, Failed := history.OK, history.Unknown, history.Failed
	tests := []struct {
		name string
		ops  []history.Op
		want string
	}{
		{"write then read", []history.Op{at(W, "a", "1", OK, 0, 10), at(R, "a", "1", OK, 20, 30)}, "ok"},
		{"concurrent read sees either", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "a", "2", OK, 20, 40), at(R, "a", "1", OK, 25, 30)}, "ok"},
		{"stale read", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "a", "2", OK, 20, 30), at(R, "a", "1", OK, 40, 50)}, "illegal"},
		{"read of a missing key after a write", []history.Op{at(W, "a", "1", OK, 0, 10), at(R, "a", "", OK, 20, 30)}, "illegal"},
		{"reads go back in time", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "a", "2", Unknown, 20, 1000),
			at(R, "a", "2", OK, 30, 40), at(R, "a", "1", OK, 50, 60)}, "illegal"},
		{"unknown write seen later", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "a", "2", Unknown, 20, 25), at(R, "a", "1", OK, 30, 40), at(R, "a", "2", OK, 50, 60)}, "ok"},
		{"unknown write never seen", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "a", "2", Unknown, 20, 25), at(R, "a", "1", OK, 30, 40)}, "ok"},
		{"refused write seen", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "a", "2", Failed, 20, 25), at(R, "a", "2", OK, 30, 40)}, "illegal"},
		{"keys are independent", []history.Op{at(W, "a", "1", OK, 0, 10), at(W, "b", "2", OK, 20, 30), at(R, "a", "1", OK, 40, 50), at(R, "b", "2", OK, 40, 50)}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			got := checkLinearizable(tt.ops, dir, time.Minute)
			if got.Result != tt.want {
				t.Fatalf("got %s, want %s", got.Result, tt.want)
			}
			if tt.want == "illegal" {
				for _, f := range []string{got.Visualization, got.Around} {
					if f == "" || !strings.HasPrefix(f, dir) {
						t.Fatalf("on a violation: got files %q and %q, want both in %s", got.Visualization, got.Around, dir)
					}
					if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
						t.Fatalf("%s: %v (want a non-empty file)", filepath.Base(f), err)
					}
				}
			}
		})
	}
}

// TestIndexRules: two values at one raft index are a violation porcupine
// cannot see (it knows nothing of indexes); test/history's rule catches it.
func TestIndexRules(t *testing.T) {
	a := at(history.Write, "a", "1", history.OK, 0, 10)
	b := at(history.Write, "a", "2", history.OK, 20, 30)
	a.Index, b.Index = 5, 5
	got := checkLinearizable([]history.Op{a, b}, t.TempDir(), time.Minute)
	if got.Result != "ok" || len(got.IndexViolations) == 0 {
		t.Fatalf("two writes at one index: got %s with %d index violations, want ok from porcupine and an index violation", got.Result, len(got.IndexViolations))
	}
}

// TestSchedule: a seed gives the same schedule every time, and different
// seeds different ones.
func TestSchedule(t *testing.T) {
	a, b := Schedule(7, 20, AllNemeses), Schedule(7, 20, AllNemeses)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 7 twice: schedules differ:\n%s\n%s", describeSteps(a), describeSteps(b))
	}
	if c := Schedule(8, 20, AllNemeses); reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 7 and 8 give the same schedule:\n%s", describeSteps(a))
	}
	seen := map[string]bool{}
	for _, s := range Schedule(1, 200, AllNemeses) {
		seen[s.Nemesis] = true
		if s.Hold <= 0 || s.Quiet <= 0 {
			t.Fatalf("step %s: want a positive hold and quiet time", s)
		}
	}
	for _, n := range AllNemeses {
		if !seen[n] {
			t.Errorf("200 steps of seed 1 never draw %s", n)
		}
	}
}

// TestRunPID: Sweep only touches names made by this harness, and reads
// the run's process ID from them.
func TestRunPID(t *testing.T) {
	for name, want := range map[string]int{"cvchaos-123-n1": 123, "cvchaos-45-sw": 45, "cvchaos-7": 7} {
		if got, ok := runPID(name); !ok || got != want {
			t.Errorf("runPID(%q): got %d, %v, want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{"other-123", "cvchaos-x-n1", ""} {
		if _, ok := runPID(name); ok {
			t.Errorf("runPID(%q): want no match", name)
		}
	}
}
