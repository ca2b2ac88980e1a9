package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is the line of the table for one nemesis: what it did to the
// clients over all the times it ran (from its start to the start of the
// next).
type Row struct {
	Nemesis string `json:"nemesis"`
	Runs    int    `json:"runs"`
	Skipped int    `json:"skipped,omitempty"`
	// NewLeaderMax is the longest time to a leader of a higher term, over
	// the runs that saw one (NewLeaderRuns of them).
	NewLeaderRuns int           `json:"new_leader_runs"`
	NewLeaderMax  time.Duration `json:"new_leader_max_ns"`
	NewLeaderAvg  time.Duration `json:"new_leader_avg_ns"`
	// RecoverMax is the longest wait, after the heal, for every node to
	// agree on a leader again.
	RecoverMax time.Duration `json:"recover_max_ns"`
	// Writes acknowledged, unknown (no answer, or an answer that says it
	// may have been applied) and refused (certainly not applied).
	Acked   int `json:"writes_acked"`
	Unknown int `json:"writes_unknown"`
	Refused int `json:"writes_refused"`
	// Reads that succeeded and that failed.
	ReadsOK     int `json:"reads_ok"`
	ReadsFailed int `json:"reads_failed"`
	// Longest is the longest request of any kind (long polls excepted).
	Longest time.Duration `json:"longest_request_ns"`
}

// Result is what a run reports, in the table and in the JSON.
type Result struct {
	Seed      uint64        `json:"seed"`
	Duration  time.Duration `json:"duration_ns"`
	Took      time.Duration `json:"took_ns"`
	Nemeses   []string      `json:"nemeses"`
	GoVersion string        `json:"go_version"`
	NetemNote string        `json:"netem_note,omitempty"`
	Table     []Row         `json:"table"`

	Secrets          string          `json:"secrets"`
	Linearizability  linearizability `json:"linearizability"`
	Convergence      convergence     `json:"convergence"`
	Audit            []string        `json:"audit"`
	AuditOK          bool            `json:"audit_ok"`
	RecoveryFailures []string        `json:"recovery_failures,omitempty"`
	LongestRequest   time.Duration   `json:"longest_request_ns"`
	// LongestHeld is the longest request held to the deadline (not sent
	// to a node while it was paused or killed), and LongestHeldReq says
	// which it was.
	LongestHeld    time.Duration `json:"longest_held_request_ns"`
	LongestHeldReq string        `json:"longest_held_request,omitempty"`
	TooLong        []string      `json:"too_long,omitempty"`
	BadShape       []string      `json:"bad_shape,omitempty"`
	Internal       []string      `json:"internal_errors,omitempty"`
	// NodeLogProblems are data races, panics and fatal errors the nodes
	// logged.
	NodeLogProblems []string `json:"node_log_problems,omitempty"`
	// Certificates and Agents are the verdict details of those checkers.
	Certificates []string `json:"certificates,omitempty"`
	CertProblems []string `json:"certificate_problems,omitempty"`
	Agents       []string `json:"agents,omitempty"`
	AgentProblem []string `json:"agent_problems,omitempty"`

	// Verdicts is each checker's verdict: "ok" or what failed.
	Verdicts map[string]string `json:"verdicts"`
}

// tabulate groups requests by the nemesis window they started in.
func tabulate(windows []window, reqs []Request) []Row {
	rows := map[string]*Row{}
	var order []string
	for _, w := range windows {
		r, ok := rows[w.Step.Nemesis]
		if !ok {
			r = &Row{Nemesis: w.Step.Nemesis}
			rows[w.Step.Nemesis] = r
			order = append(order, w.Step.Nemesis)
		}
		r.Runs++
		if w.Skipped != "" {
			r.Skipped++
		}
		if w.NewLeaderOK {
			r.NewLeaderAvg = (r.NewLeaderAvg*time.Duration(r.NewLeaderRuns) + w.NewLeader) / time.Duration(r.NewLeaderRuns+1)
			r.NewLeaderRuns++
			r.NewLeaderMax = max(r.NewLeaderMax, w.NewLeader)
		}
		r.RecoverMax = max(r.RecoverMax, w.RecoverTook)
	}
	for _, q := range reqs {
		var w *window
		for i := range windows {
			if !q.Start.Before(windows[i].Start) && q.Start.Before(windows[i].End) {
				w = &windows[i]
				break
			}
		}
		if w == nil {
			continue
		}
		r := rows[w.Step.Nemesis]
		switch q.What {
		case "secret-write", "cert-create":
			switch {
			case q.Status >= 200 && q.Status < 300:
				r.Acked++
			case q.Status >= 400 && q.Status < 500, q.Status == 507 && q.Code == "InsufficientStorage",
				q.Status == 503 && strings.Contains(q.Message, "was not applied"),
				q.Status == 0 && strings.Contains(q.Err, "connection refused"):
				r.Refused++
			default:
				r.Unknown++
			}
		case "secret-read":
			if q.Status == 200 || q.Status == 404 {
				r.ReadsOK++
			} else {
				r.ReadsFailed++
			}
		}
		if !strings.HasPrefix(q.What, "watch") {
			r.Longest = max(r.Longest, q.Took())
		}
	}
	out := make([]Row, 0, len(order))
	sort.Strings(order)
	for _, n := range order {
		out = append(out, *rows[n])
	}
	return out
}

// verdicts fills Verdicts from the checks.
func (r *Result) verdicts() {
	v := map[string]string{}
	switch {
	case r.Linearizability.Result != "ok":
		v["linearizability"] = fmt.Sprintf("%s over %d operations (see %s, %s)", r.Linearizability.Result, r.Linearizability.Operations, r.Linearizability.Around, r.Linearizability.Visualization)
	case len(r.Linearizability.IndexViolations) > 0:
		v["linearizability"] = fmt.Sprintf("%d index violations", len(r.Linearizability.IndexViolations))
	default:
		v["linearizability"] = fmt.Sprintf("ok (%d operations, checked in %s)", r.Linearizability.Operations, r.Linearizability.Took.Round(time.Millisecond))
	}
	if r.Convergence.OK {
		v["convergence"] = fmt.Sprintf("ok (every node at index %d, digest %.16s, after %s)", r.Convergence.Index, r.Convergence.Digest, r.Convergence.Took.Round(time.Millisecond))
	} else {
		v["convergence"] = "nodes differ: " + r.Convergence.Detail
	}
	if r.AuditOK {
		v["audit verify"] = "ok on every node"
	} else {
		v["audit verify"] = "failed: " + strings.Join(r.Audit, "; ")
	}
	if len(r.RecoveryFailures) == 0 {
		v["recovery"] = "ok (no node needed a manual step)"
	} else {
		v["recovery"] = fmt.Sprintf("%d times the cluster did not recover by itself", len(r.RecoveryFailures))
	}
	v["deadlines"] = okOr(len(r.TooLong), fmt.Sprintf("%d requests over %s", len(r.TooLong), RequestDeadline+DeadlineMargin),
		fmt.Sprintf("ok (longest request %s; held to the limit %s + %s: longest %s)", r.LongestRequest.Round(time.Millisecond), RequestDeadline, DeadlineMargin, r.LongestHeld.Round(time.Millisecond)))
	v["error shape"] = okOr(len(r.BadShape), fmt.Sprintf("%d refusals without the Key Vault error shape", len(r.BadShape)), "ok")
	v["node logs"] = okOr(len(r.NodeLogProblems), fmt.Sprintf("%d data races, panics or fatal errors", len(r.NodeLogProblems)), "ok (no data race, panic or fatal error)")
	v["no 500"] = okOr(len(r.Internal), fmt.Sprintf("%d answers 500", len(r.Internal)), "ok")
	if r.Certificates != nil || r.CertProblems != nil {
		v["certificates"] = okOr(len(r.CertProblems), fmt.Sprintf("%d problems", len(r.CertProblems)), "ok ("+strings.Join(r.Certificates, ", ")+")")
	}
	if r.Agents != nil || r.AgentProblem != nil {
		v["agents"] = okOr(len(r.AgentProblem), fmt.Sprintf("%d problems", len(r.AgentProblem)), "ok ("+strings.Join(r.Agents, ", ")+")")
	}
	r.Verdicts = v
}

func okOr(n int, bad, good string) string {
	if n > 0 {
		return bad
	}
	return good
}

// Failures lists every failed check with its details, for t.Errorf.
func (r *Result) Failures() []string {
	var out []string
	first := func(what string, items []string) {
		for i, s := range items {
			if i == 10 {
				out = append(out, fmt.Sprintf("%s: ... and %d more", what, len(items)-i))
				break
			}
			out = append(out, what+": "+s)
		}
	}
	if r.Linearizability.Result != "ok" {
		out = append(out, "linearizability: "+r.Verdicts["linearizability"])
	}
	first("history index rule", r.Linearizability.IndexViolations)
	if !r.Convergence.OK {
		out = append(out, "convergence: "+r.Verdicts["convergence"])
	}
	if !r.AuditOK {
		out = append(out, "audit verify: "+r.Verdicts["audit verify"])
	}
	first("recovery", r.RecoveryFailures)
	first(fmt.Sprintf("request longer than the deadline %s plus %s", RequestDeadline, DeadlineMargin), r.TooLong)
	first("error shape", r.BadShape)
	first("500 answer (kept for bugs)", r.Internal)
	first("node log", r.NodeLogProblems)
	first("certificates", r.CertProblems)
	first("agents", r.AgentProblem)
	return out
}

// Text renders the table and the verdicts.
func (r *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %s of nemeses (%s in all)\n", r.Seed, r.Duration, r.Took.Round(time.Second))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nemesis\truns\tnew leader (n, avg, max)\trecover max\twrites ok\tunknown\trefused\treads ok\tfailed\tlongest request\t")
	for _, row := range r.Table {
		nl := "-"
		if row.NewLeaderRuns > 0 {
			nl = fmt.Sprintf("%d, %s, %s", row.NewLeaderRuns, row.NewLeaderAvg.Round(10*time.Millisecond), row.NewLeaderMax.Round(10*time.Millisecond))
		}
		runs := fmt.Sprint(row.Runs)
		if row.Skipped > 0 {
			runs = fmt.Sprintf("%d (%d skipped)", row.Runs, row.Skipped)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", row.Nemesis, runs, nl, row.RecoverMax.Round(10*time.Millisecond),
			row.Acked, row.Unknown, row.Refused, row.ReadsOK, row.ReadsFailed, row.Longest.Round(time.Millisecond))
	}
	tw.Flush()
	if r.NetemNote != "" {
		fmt.Fprintf(&b, "note: %s\n", r.NetemNote)
	}
	fmt.Fprintf(&b, "secrets history: %s\n", r.Secrets)
	names := make([]string, 0, len(r.Verdicts))
	for k := range r.Verdicts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  %-16s %s\n", k+":", r.Verdicts[k])
	}
	return b.String()
}

// WriteJSON stores the result as bench-results/chaos-<UTC time>.json at
// the module root and returns the path.
func (r *Result) WriteJSON() (string, error) {
	dir := resultsDir("")
	if dir == "" {
		return "", errors.New("cannot locate the module root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode results: %w", err)
	}
	path := filepath.Join(dir, "chaos-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	return filepath.Clean(path), nil
}

// resultsDir is bench-results/sub at the module root ("" when the root
// cannot be found).
func resultsDir(sub string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "bench-results", sub))
}
