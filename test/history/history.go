// Package history checks a recorded history of concurrent operations on
// single-key registers against what a linearizable, durable register
// store promises. It owns the checker and a concurrency-safe recorder; it
// knows nothing of HTTP, certvault or how the operations were made, and it
// does not search for a linearization (it checks the properties below,
// which an index-ordered store makes cheap to check).
//
// # The model
//
// Each register (a Key) holds one value at a time. Every write stores a
// value unique in the whole history and, when acknowledged, reports the
// Index at which it was applied; indexes are a total order of all writes
// (a Raft log index). A read reports the value it saw and the Index of the
// write that stored it (0 with an empty value: the register was never
// written). Each operation has a Start (before the request was sent) and
// an End (after the answer was read), taken from one monotonic clock.
//
// An operation's Outcome is OK (acknowledged), Failed (certainly had no
// effect: a write the server refused outright; a read that returned
// nothing) or Unknown (may or may not have taken effect: a write that
// timed out, lost its connection or got a 5xx). A read's failure carries no
// information, so failed and unknown reads are ignored. An Unknown write
// may be observed by reads, and then it counts as having happened at the
// index the reads report; a Failed write must never be observed.
//
// # The checks
//
// Check reports a Violation for each of:
//
//   - Consistency. One index is one write: two different values are never
//     reported at the same index, one value is never reported at two
//     indexes, and a read of an acknowledged write reports the index the
//     write was acknowledged with. Acknowledged writes carry an index.
//   - Provenance. A read returns only a value that some write of the same
//     key attempted (OK or Unknown, never Failed), and that write began
//     before the read ended ("read from the future" otherwise).
//   - No stale read. For every OK read R and every completed operation A on
//     the same key (an acknowledged write, or an OK read) with A.End before
//     R.Start, R.Index >= A.Index. Against a write this is the stale-read
//     rule; against a read it says reads never go back in time, which
//     catches a read of a write that was later lost.
//   - Write order. An acknowledged write W is applied after everything that
//     completed before W began: W.Index > A.Index for every completed A as
//     above.
//   - No lost write. A read marked Final is made while no other operation
//     on its key runs (at the end of the history, or of a phase of it); its
//     index must be at least the highest index of any acknowledged write or
//     OK read of the key that ended before it began. With the consistency
//     checks this means the final value is the write with the highest
//     index among the acknowledged writes and the observed values (or an
//     Unknown write applied later still). Every key with an acknowledged
//     write needs a Final read, or the check would be vacuous.
//
// Operations that overlap in time are concurrent and may be ordered either
// way; only an End strictly before a Start orders two operations. All of
// it is O(n log n) in the number of operations.
package history

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind is what an operation did.
type Kind int

// Operation kinds.
const (
	Write Kind = iota + 1
	Read
)

func (k Kind) String() string {
	switch k {
	case Write:
		return "write"
	case Read:
		return "read"
	default:
		return fmt.Sprintf("kind(%d)", int(k))
	}
}

// Outcome is what the client learned of an operation.
type Outcome int

// Outcomes.
const (
	// OK means the operation was acknowledged.
	OK Outcome = iota + 1
	// Failed means the operation certainly had no effect.
	Failed
	// Unknown means the operation may or may not have taken effect.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	default:
		return fmt.Sprintf("outcome(%d)", int(o))
	}
}

// Op is one operation of the history.
type Op struct {
	// Client identifies who made the operation; informational.
	Client int
	// Node is the server the operation was sent to; informational.
	Node string
	Kind Kind
	Key  string
	// Value is the value written, or the value a read returned ("" when
	// the key did not exist).
	Value string
	// Index is the index an acknowledged write was applied at, or the
	// index of the write whose value an OK read returned (0 when the key
	// did not exist). Ignored unless Outcome is OK.
	Index uint64
	// Start is taken before the request is sent, End after the answer (or
	// the error) arrived.
	Start, End time.Time
	Outcome    Outcome
	// Final marks a read made while no other operation on its key runs:
	// it shows the state every earlier write must have reached.
	Final bool
	// Err says why a Failed or Unknown operation failed; informational.
	Err string
}

func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s=%q", o.Kind, o.Key, o.Value)
	if o.Outcome == OK {
		fmt.Fprintf(&b, " @%d", o.Index)
	} else {
		fmt.Fprintf(&b, " (%s)", o.Outcome)
	}
	if o.Final {
		b.WriteString(" final")
	}
	fmt.Fprintf(&b, " by client %d via %s", o.Client, o.Node)
	if !o.Start.IsZero() {
		fmt.Fprintf(&b, " [%s .. %s]", o.Start.Format("15:04:05.000000"), o.End.Format("15:04:05.000000"))
	}
	if o.Err != "" {
		fmt.Fprintf(&b, ": %s", o.Err)
	}
	return b.String()
}

// Violation kinds, the Rule of a Violation.
const (
	RuleInconsistent = "inconsistent index"
	RulePhantom      = "phantom read"
	RuleFuture       = "read from the future"
	RuleStale        = "stale read"
	RuleWriteOrder   = "write order"
	RuleLost         = "lost write"
	RuleNoFinal      = "no final read"
	RuleBadHistory   = "bad history"
)

// Violation is one broken rule.
type Violation struct {
	Rule string
	Key  string
	// Op is the offending operation; Other, when set, the one it
	// contradicts.
	Op    Op
	Other *Op
	Msg   string
}

func (v Violation) String() string {
	s := fmt.Sprintf("%s on %q: %s\n\top:    %s", v.Rule, v.Key, v.Msg, v.Op)
	if v.Other != nil {
		s += "\n\tother: " + v.Other.String()
	}
	return s
}

// Check returns every violation of the rules in the package doc, in a
// deterministic order (consistency and provenance in the order of ops,
// then the real-time rules key by key); none means the history is
// consistent with a linearizable register store that lost no acknowledged
// write. Check does not modify ops.
func Check(ops []Op) []Violation {
	var out []Violation
	bad := func(rule string, op Op, other *Op, format string, args ...any) {
		out = append(out, Violation{Rule: rule, Key: op.Key, Op: op, Other: other, Msg: fmt.Sprintf(format, args...)})
	}

	// Writes by value, and the history's basic sanity.
	writes := map[string]*Op{}
	for i := range ops {
		op := &ops[i]
		switch {
		case op.Kind != Write && op.Kind != Read:
			bad(RuleBadHistory, *op, nil, "unknown kind")
			continue
		case op.Outcome != OK && op.Outcome != Failed && op.Outcome != Unknown:
			bad(RuleBadHistory, *op, nil, "unknown outcome")
			continue
		case op.End.Before(op.Start):
			bad(RuleBadHistory, *op, nil, "ends before it starts")
		}
		if op.Kind != Write {
			continue
		}
		if op.Value == "" {
			bad(RuleBadHistory, *op, nil, "a write must store a non-empty value")
			continue
		}
		if prev, dup := writes[op.Value]; dup {
			bad(RuleBadHistory, *op, prev, "the value was written twice; values must be unique")
			continue
		}
		writes[op.Value] = op
		if op.Outcome == OK && op.Index == 0 {
			bad(RuleInconsistent, *op, nil, "an acknowledged write carries no index")
		}
	}

	// Consistency and provenance: one index is one value and vice versa.
	byIndex := map[uint64]*Op{} // index -> first op that reported it
	valueAt := map[string]*Op{} // value -> first op that reported its index
	claim := func(op *Op, value string) {
		if first, ok := byIndex[op.Index]; ok && first.Value != value {
			bad(RuleInconsistent, *op, first, "index %d reported for value %q, but also for value %q", op.Index, value, first.Value)
		} else if !ok {
			byIndex[op.Index] = op
		}
		if first, ok := valueAt[value]; ok && first.Index != op.Index {
			bad(RuleInconsistent, *op, first, "value %q reported at index %d, but also at index %d", value, op.Index, first.Index)
		} else if !ok {
			valueAt[value] = op
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Kind == Write && op.Outcome == OK && op.Index != 0 && writes[op.Value] == op {
			claim(op, op.Value)
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.Kind != Read || op.Outcome != OK {
			continue
		}
		if op.Value == "" {
			if op.Index != 0 {
				bad(RuleInconsistent, *op, nil, "a read of a missing key reports index %d, want 0", op.Index)
			}
			continue
		}
		if op.Index == 0 {
			bad(RuleInconsistent, *op, nil, "a read of a value reports no index")
			continue
		}
		w, ok := writes[op.Value]
		switch {
		case !ok:
			bad(RulePhantom, *op, nil, "no write ever stored this value")
			continue
		case w.Key != op.Key:
			bad(RulePhantom, *op, w, "the value was written to key %q", w.Key)
			continue
		case w.Outcome == Failed:
			bad(RulePhantom, *op, w, "the write of this value failed, yet the read saw it")
		case w.Outcome == OK && w.Index != op.Index:
			bad(RuleInconsistent, *op, w, "read at index %d, but the write was acknowledged at index %d", op.Index, w.Index)
		}
		if op.End.Before(w.Start) {
			bad(RuleFuture, *op, w, "the read ended before the write of its value began")
		}
		claim(op, op.Value)
	}

	// Real-time order, key by key.
	byKey := map[string][]*Op{}
	for i := range ops {
		op := &ops[i]
		if op.Outcome == OK && (op.Kind == Read || writes[op.Value] == op) {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		out = append(out, checkKey(byKey[key])...)
	}
	return out
}

// checkKey applies the real-time rules to the completed operations of one
// key: OK reads and acknowledged writes.
func checkKey(done []*Op) []Violation {
	var out []Violation
	// Sorted by End, with a running maximum of the index, so that "the
	// highest index among the ops that ended before t" is a binary search.
	byEnd := append([]*Op(nil), done...)
	sort.SliceStable(byEnd, func(i, j int) bool { return byEnd[i].End.Before(byEnd[j].End) })
	maxOp := make([]*Op, len(byEnd)) // maxOp[i]: highest index among byEnd[:i+1]
	for i, op := range byEnd {
		maxOp[i] = op
		if i > 0 && maxOp[i-1].Index > op.Index {
			maxOp[i] = maxOp[i-1]
		}
	}
	highestBefore := func(t time.Time) *Op {
		n := sort.Search(len(byEnd), func(i int) bool { return !byEnd[i].End.Before(t) })
		if n == 0 {
			return nil
		}
		return maxOp[n-1]
	}

	hasFinal, needsFinal := false, (*Op)(nil)
	for _, op := range done {
		if op.Kind == Write && needsFinal == nil {
			needsFinal = op
		}
		if op.Kind == Read && op.Final {
			hasFinal = true
		}
		prior := highestBefore(op.Start)
		if prior == nil {
			continue
		}
		switch {
		case op.Kind == Write && op.Index <= prior.Index:
			out = append(out, Violation{Rule: RuleWriteOrder, Key: op.Key, Op: *op, Other: prior,
				Msg: fmt.Sprintf("acknowledged at index %d, not after index %d of an operation that completed before it began", op.Index, prior.Index)})
		case op.Kind == Read && op.Index < prior.Index && op.Final:
			what := "an acknowledged write"
			if prior.Kind == Read {
				what = "a value an earlier read observed"
			}
			out = append(out, Violation{Rule: RuleLost, Key: op.Key, Op: *op, Other: prior,
				Msg: fmt.Sprintf("the final read returned index %d, older than %s at index %d", op.Index, what, prior.Index)})
		case op.Kind == Read && op.Index < prior.Index:
			what := "a write that had completed"
			if prior.Kind == Read {
				what = "a read that had completed"
			}
			out = append(out, Violation{Rule: RuleStale, Key: op.Key, Op: *op, Other: prior,
				Msg: fmt.Sprintf("returned index %d, older than index %d of %s before the read began", op.Index, prior.Index, what)})
		}
	}
	if needsFinal != nil && !hasFinal {
		out = append(out, Violation{Rule: RuleNoFinal, Key: needsFinal.Key, Op: *needsFinal,
			Msg: "the key has acknowledged writes but no final read, so lost writes cannot be detected"})
	}
	return out
}

// Recorder collects operations from concurrent clients. The zero value is
// ready; it is safe for concurrent use.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
}

// Add records op.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

// Ops returns a copy of the operations recorded so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Summary counts a history's operations by kind and outcome.
type Summary struct {
	Writes, Reads map[Outcome]int
	Keys          int
}

// Summarize counts ops.
func Summarize(ops []Op) Summary {
	s := Summary{Writes: map[Outcome]int{}, Reads: map[Outcome]int{}}
	keys := map[string]bool{}
	for _, op := range ops {
		keys[op.Key] = true
		if op.Kind == Write {
			s.Writes[op.Outcome]++
		} else {
			s.Reads[op.Outcome]++
		}
	}
	s.Keys = len(keys)
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("%d keys; writes: %d ok, %d failed, %d unknown; reads: %d ok, %d failed, %d unknown",
		s.Keys, s.Writes[OK], s.Writes[Failed], s.Writes[Unknown], s.Reads[OK], s.Reads[Failed], s.Reads[Unknown])
}
