package history

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

// base is the zero of the tests' clock; at(ms) is a time on it.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

func w(key, value string, index uint64, start, end int) Op {
	return Op{Kind: Write, Key: key, Value: value, Index: index, Start: at(start), End: at(end), Outcome: OK}
}

func wUnknown(key, value string, start, end int) Op {
	return Op{Kind: Write, Key: key, Value: value, Start: at(start), End: at(end), Outcome: Unknown, Err: "timeout"}
}

func wFailed(key, value string, start, end int) Op {
	return Op{Kind: Write, Key: key, Value: value, Start: at(start), End: at(end), Outcome: Failed, Err: "409"}
}

func r(key, value string, index uint64, start, end int) Op {
	return Op{Kind: Read, Key: key, Value: value, Index: index, Start: at(start), End: at(end), Outcome: OK}
}

func final(key, value string, index uint64, start, end int) Op {
	op := r(key, value, index, start, end)
	op.Final = true
	return op
}

func rFailed(key string, start, end int) Op {
	return Op{Kind: Read, Key: key, Start: at(start), End: at(end), Outcome: Failed, Err: "503"}
}

func rules(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return out
}

func TestHistoryAcceptsValidHistories(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []Op
	}{
		{"sequential", []Op{
			r("x", "", 0, 0, 1),
			w("x", "a", 5, 2, 3),
			r("x", "a", 5, 4, 5),
			w("x", "b", 9, 6, 7),
			final("x", "b", 9, 8, 9),
		}},
		{"a read concurrent with a write sees the old value", []Op{
			w("x", "a", 5, 0, 1),
			w("x", "b", 9, 2, 10),
			r("x", "a", 5, 3, 4),
			final("x", "b", 9, 11, 12),
		}},
		{"a read concurrent with a write sees the new value", []Op{
			w("x", "a", 5, 0, 1),
			w("x", "b", 9, 2, 10),
			r("x", "b", 9, 3, 4),
			final("x", "b", 9, 11, 12),
		}},
		{"concurrent writes applied in either order", []Op{
			w("x", "a", 9, 0, 10),
			w("x", "b", 5, 1, 8),
			final("x", "a", 9, 11, 12),
		}},
		{"an unknown write that was applied", []Op{
			w("x", "a", 5, 0, 1),
			wUnknown("x", "b", 2, 3),
			r("x", "b", 7, 4, 5),
			final("x", "b", 7, 11, 12),
		}},
		{"an unknown write applied after the final read began", []Op{
			w("x", "a", 5, 0, 1),
			wUnknown("x", "b", 2, 3),
			final("x", "b", 7, 11, 12),
		}},
		{"an unknown write that was not applied", []Op{
			w("x", "a", 5, 0, 1),
			wUnknown("x", "b", 2, 3),
			r("x", "a", 5, 4, 5),
			final("x", "a", 5, 11, 12),
		}},
		{"failed operations carry no information", []Op{
			w("x", "a", 5, 0, 1),
			wFailed("x", "b", 2, 3),
			rFailed("x", 4, 5),
			final("x", "a", 5, 11, 12),
		}},
		{"indexes are global across keys", []Op{
			w("x", "a", 5, 0, 1),
			w("y", "b", 6, 0, 1),
			r("y", "b", 6, 2, 3),
			final("x", "a", 5, 11, 12),
			final("y", "b", 6, 11, 12),
		}},
		{"reads only", []Op{
			r("x", "", 0, 0, 1),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if vs := Check(tc.ops); len(vs) != 0 {
				t.Fatalf("got %d violations, want none:\n%v", len(vs), vs)
			}
		})
	}
}

func TestHistoryCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []Op
		want string
	}{
		{"lost write: the final read misses an acknowledged write", []Op{
			w("x", "a", 5, 0, 1),
			w("x", "b", 9, 2, 3),
			final("x", "a", 5, 11, 12),
		}, RuleLost},
		{"lost write: the final read misses a value a read observed", []Op{
			w("x", "a", 5, 0, 1),
			wUnknown("x", "b", 2, 3),
			r("x", "b", 9, 4, 5),
			final("x", "a", 5, 11, 12),
		}, RuleLost},
		{"stale read: older than a completed write", []Op{
			w("x", "a", 5, 0, 1),
			w("x", "b", 9, 2, 3),
			r("x", "a", 5, 4, 5),
			final("x", "b", 9, 11, 12),
		}, RuleStale},
		{"stale read: the key looked missing after a completed write", []Op{
			w("x", "a", 5, 0, 1),
			r("x", "", 0, 2, 3),
			final("x", "a", 5, 11, 12),
		}, RuleStale},
		{"stale read: older than a completed read", []Op{
			w("x", "a", 5, 0, 1),
			w("x", "b", 9, 2, 20),
			r("x", "b", 9, 3, 4),
			r("x", "a", 5, 5, 6),
			final("x", "b", 9, 21, 22),
		}, RuleStale},
		{"write order: acknowledged below a completed write", []Op{
			w("x", "a", 9, 0, 1),
			w("x", "b", 5, 2, 3),
			final("x", "a", 9, 11, 12),
		}, RuleWriteOrder},
		{"inconsistent: a read reports another index than the acknowledgement", []Op{
			w("x", "a", 5, 0, 1),
			r("x", "a", 6, 2, 3),
			final("x", "a", 5, 11, 12),
		}, RuleInconsistent},
		{"inconsistent: one value at two indexes", []Op{
			wUnknown("x", "a", 0, 1),
			r("x", "a", 5, 2, 3),
			final("x", "a", 6, 11, 12),
		}, RuleInconsistent},
		{"inconsistent: two values at one index", []Op{
			w("x", "a", 5, 0, 1),
			w("y", "b", 5, 0, 1),
			final("x", "a", 5, 11, 12),
			final("y", "b", 5, 11, 12),
		}, RuleInconsistent},
		{"inconsistent: an acknowledged write without an index", []Op{
			w("x", "a", 0, 0, 1),
			final("x", "a", 0, 11, 12),
		}, RuleInconsistent},
		{"phantom: a value nobody wrote", []Op{
			r("x", "zz", 5, 0, 1),
		}, RulePhantom},
		{"phantom: the value of a failed write", []Op{
			wFailed("x", "a", 0, 1),
			r("x", "a", 5, 2, 3),
		}, RulePhantom},
		{"phantom: the value of another key", []Op{
			w("y", "a", 5, 0, 1),
			r("x", "a", 5, 2, 3),
			final("y", "a", 5, 11, 12),
		}, RulePhantom},
		{"read from the future", []Op{
			r("x", "a", 5, 0, 1),
			w("x", "a", 5, 2, 3),
			final("x", "a", 5, 11, 12),
		}, RuleFuture},
		{"no final read", []Op{
			w("x", "a", 5, 0, 1),
		}, RuleNoFinal},
		{"duplicate values", []Op{
			w("x", "a", 5, 0, 1),
			w("x", "a", 6, 2, 3),
			final("x", "a", 5, 11, 12),
		}, RuleBadHistory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := Check(tc.ops)
			got := rules(vs)
			found := false
			for _, g := range got {
				found = found || g == tc.want
			}
			if !found {
				t.Fatalf("got violations %q, want one %q:\n%v", got, tc.want, vs)
			}
			for _, v := range vs {
				if !strings.Contains(v.String(), v.Rule) || v.Msg == "" {
					t.Errorf("violation %q does not explain itself: %s", v.Rule, v)
				}
			}
		})
	}
}

// simulate builds a random history of a linearizable register store:
// clients make overlapping operations whose effects happen atomically at
// a random instant between their start and end; some writes time out
// (applied or not) or are refused. With loseLast, the store forgets the
// last acknowledged write of key "k0" before the final reads.
func simulate(rng *rand.Rand, loseLast bool) []Op {
	const clients, perClient = 6, 60
	keys := []string{"k0", "k1", "k2"}
	type event struct {
		op   *Op
		at   int // linearization point, µs
		skip bool
	}
	ops := make([]Op, 0, clients*perClient+len(keys))
	var events []event
	end := 0
	seq := 0
	for c := range clients {
		t := rng.IntN(50)
		for range perClient {
			d := 1 + rng.IntN(200)
			op := Op{Client: c, Key: keys[rng.IntN(len(keys))], Start: base.Add(time.Duration(t) * time.Microsecond),
				End: base.Add(time.Duration(t+d) * time.Microsecond), Outcome: OK}
			ev := event{at: t + rng.IntN(d+1)}
			if rng.IntN(2) == 0 {
				seq++
				op.Kind, op.Value = Write, fmt.Sprintf("c%d-%d", c, seq)
				switch p := rng.IntN(20); {
				case p == 0:
					op.Outcome, ev.skip = Failed, true
				case p <= 2:
					op.Outcome, ev.skip = Unknown, rng.IntN(2) == 0
				}
			} else {
				op.Kind = Read
				if rng.IntN(10) == 0 {
					op.Outcome, ev.skip = Failed, true
				}
			}
			ops = append(ops, op)
			events = append(events, ev)
			t += d + rng.IntN(30)
		}
		end = max(end, t)
	}
	for i := range events {
		events[i].op = &ops[i]
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })
	type version struct {
		value string
		index uint64
	}
	state := map[string][]version{}
	var index uint64
	for _, ev := range events {
		op := ev.op
		if ev.skip {
			continue
		}
		if op.Kind == Write {
			index++
			state[op.Key] = append(state[op.Key], version{op.Value, index})
			if op.Outcome == OK {
				op.Index = index
			}
			continue
		}
		if vs := state[op.Key]; len(vs) > 0 {
			op.Value, op.Index = vs[len(vs)-1].value, vs[len(vs)-1].index
		}
	}
	if loseLast {
		vs := state["k0"]
		for i := len(vs) - 1; i >= 0; i-- {
			if w := findWrite(ops, vs[i].value); w.Outcome == OK {
				state["k0"] = vs[:i]
				break
			}
		}
	}
	for _, k := range keys {
		op := Op{Kind: Read, Key: k, Start: base.Add(time.Duration(end+10) * time.Microsecond),
			End: base.Add(time.Duration(end+20) * time.Microsecond), Outcome: OK, Final: true}
		if vs := state[k]; len(vs) > 0 {
			op.Value, op.Index = vs[len(vs)-1].value, vs[len(vs)-1].index
		}
		ops = append(ops, op)
	}
	return ops
}

func findWrite(ops []Op, value string) Op {
	for _, op := range ops {
		if op.Kind == Write && op.Value == value {
			return op
		}
	}
	return Op{}
}

// TestHistoryRandomHistories shows the checker is not stricter than the
// model: simulated linearizable histories with heavy overlap, timeouts and
// refusals pass; and that it still catches a store that forgets the last
// acknowledged write.
func TestHistoryRandomHistories(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		ops := simulate(rng, false)
		if vs := Check(ops); len(vs) != 0 {
			t.Fatalf("seed %d: got %d violations of a linearizable history, want none; first:\n%v", seed, len(vs), vs[0])
		}
		rng = rand.New(rand.NewPCG(seed, 1))
		ops = simulate(rng, true)
		got := rules(Check(ops))
		found := false
		for _, g := range got {
			found = found || g == RuleLost
		}
		if !found {
			t.Fatalf("seed %d: the store forgot an acknowledged write: got violations %q, want %q", seed, got, RuleLost)
		}
	}
}

func TestHistoryRecorderAndSummary(t *testing.T) {
	var rec Recorder
	done := make(chan struct{})
	for c := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				rec.Add(w("x", fmt.Sprintf("%d-%d", c, i), uint64(c*100+i+1), 0, 1))
			}
		}()
	}
	for range 4 {
		<-done
	}
	s := Summarize(rec.Ops())
	if s.Writes[OK] != 400 || s.Keys != 1 {
		t.Fatalf("got %s, want 400 ok writes of 1 key", s)
	}
}
