package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/certvault/certvault/test/history"
)

// regInput is a secrets operation as porcupine sees it.
type regInput struct {
	Key   string
	Write bool
	Value string // the value written
}

// regOutput is what a read returned ("" for a missing secret).
type regOutput struct {
	Value string
}

// registerModel is a map of registers, one per secret name, each holding
// the value last written ("" before the first write). Operations on
// different names are independent, so the history is split by name.
var registerModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Input.(regInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(regOutput).Value == state.(string), state
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		if in.Write {
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, output.(regOutput).Value)
	},
	DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state) },
}

// porcupineOps turns a recorded history into porcupine operations:
//   - acknowledged writes and successful reads as they happened;
//   - failed reads are dropped (they say nothing), and so are writes that
//     were certainly refused (a read that sees one fails the check, as it
//     should: that value was never stored);
//   - a write with an unknown outcome may have happened at any time after
//     it began. If no read ever saw its value, leaving it out is exactly
//     as good as keeping it (it would be linearized after everything), so
//     it is dropped; if some read saw it, it must have happened before the
//     first such read ended, which becomes its return time. This is the
//     "patched history" of etcd's robustness tests: it keeps the search
//     small without hiding a violation.
func porcupineOps(ops []history.Op) []porcupine.Operation {
	firstSeen := map[string]time.Time{} // value -> earliest End of a read returning it
	for _, op := range ops {
		if op.Kind == history.Read && op.Outcome == history.OK && op.Value != "" {
			if t, ok := firstSeen[op.Value]; !ok || op.End.Before(t) {
				firstSeen[op.Value] = op.End
			}
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		var ret time.Time
		switch {
		case op.Kind == history.Write && op.Outcome == history.OK:
			ret = op.End
		case op.Kind == history.Write && op.Outcome == history.Unknown:
			t, ok := firstSeen[op.Value]
			if !ok {
				continue
			}
			ret = t
			if ret.Before(op.Start) { // a read from the future; let the check see it
				ret = op.Start
			}
		case op.Kind == history.Read && op.Outcome == history.OK:
			ret = op.End
		default:
			continue
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    regInput{Key: op.Key, Write: op.Kind == history.Write, Value: op.Value},
			Call:     op.Start.UnixNano(),
			Output:   regOutput{Value: op.Value},
			Return:   ret.UnixNano(),
			Metadata: fmt.Sprintf("%s via %s", op.Outcome, op.Node),
		})
	}
	// porcupine's visualisation wants client IDs from 0; final reads
	// (client -1) get their own.
	for i := range out {
		if out[i].ClientId < 0 {
			out[i].ClientId = 1000 - out[i].ClientId
		}
	}
	return out
}

// linearizability is the verdict of the secrets checker.
type linearizability struct {
	Result     string // "ok", "illegal", "unknown" (the checker timed out)
	Operations int
	Took       time.Duration
	// Visualization is the HTML file porcupine drew (on failure).
	Visualization string
	// Around is the file with the recorded operations around the
	// violation (on failure).
	Around string
	// IndexViolations are the index rules of test/history that porcupine
	// does not cover (one raft index per value and vice versa, an index on
	// every acknowledged write).
	IndexViolations []string
}

// checkLinearizable checks ops with porcupine and the index rules; on a
// violation it writes the visualisation and the history around it into
// dir.
func checkLinearizable(ops []history.Op, dir string, timeout time.Duration) linearizability {
	pops := porcupineOps(ops)
	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, pops, timeout)
	v := linearizability{Operations: len(pops), Took: time.Since(began)}
	switch res {
	case porcupine.Ok:
		v.Result = "ok"
	case porcupine.Illegal:
		v.Result = "illegal"
	default:
		v.Result = "unknown"
	}
	for _, viol := range history.Check(ops) {
		switch viol.Rule {
		case history.RuleInconsistent, history.RuleBadHistory:
			v.IndexViolations = append(v.IndexViolations, viol.String())
		}
	}
	if res != porcupine.Ok && dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			html := filepath.Join(dir, "linearizability.html")
			if err := porcupine.VisualizePath(registerModel, info, html); err == nil {
				v.Visualization = html
			}
			around := filepath.Join(dir, "history-around-violation.txt")
			if err := os.WriteFile(around, []byte(historyAround(ops)), 0o644); err == nil {
				v.Around = around
			}
		}
	}
	return v
}

// historyAround renders every operation on the keys that porcupine could
// not linearize (each key checked alone), ordered by start time.
func historyAround(ops []history.Op) string {
	var b strings.Builder
	keys := map[string]bool{}
	for _, op := range ops {
		keys[op.Key] = true
	}
	bad := map[string]bool{}
	for k := range keys {
		if !partitionLinearizable(ops, k) {
			bad[k] = true
		}
	}
	fmt.Fprintf(&b, "keys that porcupine could not linearize: %v\n", keysOf(bad))
	fmt.Fprintf(&b, "every operation on them, by start time (failed reads and never-observed unknown writes are left out of the check):\n\n")
	var sel []history.Op
	for _, op := range ops {
		if bad[op.Key] {
			sel = append(sel, op)
		}
	}
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].Start.Before(sel[j].Start) })
	for _, op := range sel {
		fmt.Fprintln(&b, op.String())
	}
	return b.String()
}

// partitionLinearizable checks the operations on one key alone.
func partitionLinearizable(ops []history.Op, key string) bool {
	var sel []history.Op
	for _, op := range ops {
		if op.Key == key {
			sel = append(sel, op)
		}
	}
	return porcupine.CheckOperationsTimeout(registerModel, porcupineOps(sel), time.Minute) != porcupine.Illegal
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
