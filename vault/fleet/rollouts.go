package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
)

// Staged rollouts. A certificate (or secret) may carry a plan: waves such
// as 1,10%,50%,100%, a bake time and a failure budget. When a new version
// becomes current, the leader starts a rollout: it assigns the agents that
// hold the object to waves (by a hash of agent and object: the same on any
// leader), and the watch endpoint gives each agent its target: the new
// version for agents in the waves reached so far, the previous one for the
// others. The leader advances a wave when all its agents reported the
// version healthy (or the bake time passed with no failure), halts when
// the failures exceed the budget (event and mail), and an abort sends
// every agent back to the previous version. Plan and rollout are raft
// records, so a new leader carries on where the old one was.

const (
	// rolloutTick is how often the leader looks at running rollouts.
	rolloutTick = 500 * time.Millisecond
)

// RolloutPlan is how new versions of one object reach the agents.
type RolloutPlan struct {
	Waves []string `json:"waves"`
	// BakeSeconds: a wave whose agents have not all reported after this
	// long advances anyway when none failed.
	BakeSeconds int64 `json:"bake_seconds"`
	// MaxFailures is a count ("1") or a percentage of the agents ("5%").
	MaxFailures string `json:"max_failures"`
}

// Rollout is the state of the latest rollout of one object.
type Rollout struct {
	Object   string `json:"object"`
	Version  string `json:"version"`
	Previous string `json:"previous"`
	// Status: running, paused, halted, aborted, done.
	Status string `json:"status"`
	// Wave is the index of the last wave that has the version.
	Wave        int       `json:"wave"`
	WaveStarted time.Time `json:"wave_started"`
	Started     time.Time `json:"started"`
	Updated     time.Time `json:"updated"`
	// Agents maps each agent (at the start) to its wave.
	Agents map[string]int `json:"agents"`
	// WaveSizes is how many agents each wave has.
	WaveSizes []int  `json:"wave_sizes"`
	Budget    int    `json:"budget"`
	Reason    string `json:"reason,omitempty"`
}

func RolloutKey(kind, name string) string {
	return core.PrefixRollouts + kind + "/" + objname.Canonical(name)
}
func PlanKey(kind, name string) string {
	return core.PrefixRolloutPlans + kind + "/" + objname.Canonical(name)
}

// ParseWaves checks waves: counts or percentages, growing, ending at 100%.
func ParseWaves(ws []string) error {
	if len(ws) == 0 || len(ws) > 20 {
		return core.BadParameter("waves", "waves: give 1 to 20 waves such as 1,10%%,50%%,100%%")
	}
	for i, w := range ws {
		if _, err := WaveSize(w, 100); err != nil {
			return err
		}
		if i == len(ws)-1 && w != "100%" {
			return core.BadParameter("waves", "waves: the last wave must be 100%% so that every agent gets the version")
		}
	}
	return nil
}

// WaveSize is how many of n agents a wave ("3" or "10%") covers in total.
func WaveSize(w string, n int) (int, error) {
	if p, ok := strings.CutSuffix(w, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, core.BadParameter("waves", "wave %q: a percentage from 0 to 100, such as 10%%", w)
		}
		return min(n, max(1, int(math.Ceil(f*float64(n)/100)))), nil
	}
	c, err := strconv.Atoi(w)
	if err != nil || c <= 0 {
		return 0, core.BadParameter("waves", "wave %q: a number of agents (1) or a percentage (10%%)", w)
	}
	return min(n, c), nil
}

// budget is the failures a rollout of n agents tolerates.
func budget(maxFailures string, n int) int {
	if maxFailures == "" {
		return 0
	}
	if p, ok := strings.CutSuffix(maxFailures, "%"); ok {
		f, _ := strconv.ParseFloat(p, 64)
		return int(math.Floor(f * float64(n) / 100))
	}
	c, _ := strconv.Atoi(maxFailures)
	return c
}

// AssignWaves orders agents by a hash of agent and object and cuts the
// order into waves: deterministic, so any leader computes the same (and a
// test can predict it). It returns each agent's wave (0-based) and the
// size of each wave.
func AssignWaves(object string, agents []string, waves []string) (map[string]int, []int) {
	sorted := slices.Clone(agents)
	key := func(a string) uint64 {
		h := sha256.Sum256([]byte(object + "\x00" + a))
		return binary.BigEndian.Uint64(h[:8])
	}
	slices.SortFunc(sorted, func(a, b string) int {
		if ka, kb := key(a), key(b); ka != kb {
			if ka < kb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	out := map[string]int{}
	sizes := make([]int, len(waves))
	i := 0
	for w, spec := range waves {
		upto, _ := WaveSize(spec, len(sorted))
		for ; i < upto; i++ {
			out[sorted[i]] = w
			sizes[w]++
		}
	}
	return out, sizes
}

// rolloutCache keeps decoded rollouts by key and index: with thousands of
// agents waking on a new version, each would otherwise decode the record
// (which lists every agent) again.
type rolloutCache struct {
	mu sync.Mutex
	m  map[string]cachedRollout
}

type cachedRollout struct {
	index uint64
	r     *Rollout
}

// loadRollout reads an object's rollout. The result is shared: callers
// copy it before changing it.
func (f *Fleet) loadRollout(kind, name string) (*Rollout, uint64) {
	key := RolloutKey(kind, name)
	e, ok := f.Store.Get(key)
	if !ok {
		return nil, raftstore.NotExist
	}
	rc := &f.rolloutCache
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if c, ok := rc.m[key]; ok && c.index == e.Index {
		return c.r, e.Index
	}
	var r Rollout
	if json.Unmarshal(e.Value, &r) != nil {
		return nil, e.Index
	}
	if rc.m == nil {
		rc.m = map[string]cachedRollout{}
	}
	rc.m[key] = cachedRollout{e.Index, &r}
	return &r, e.Index
}

func (f *Fleet) loadPlan(kind, name string) *RolloutPlan {
	e, ok := f.Store.Get(PlanKey(kind, name))
	if !ok {
		return nil
	}
	var p RolloutPlan
	if json.Unmarshal(e.Value, &p) != nil {
		return nil
	}
	return &p
}

// targetFor is the version an agent should hold of an object: the
// current version when the object has no rollout plan, else what the
// rollout says.
func (f *Fleet) targetFor(agentID, kind, name, current string) string {
	r, _ := f.loadRollout(kind, name)
	if r == nil {
		return current
	}
	// A version newer than the rollout's waits until the leader starts
	// its rollout: until then the targets stay what they were.
	switch r.Status {
	case "done":
		return r.Version
	case "aborted":
		return r.Previous
	}
	w, ok := r.Agents[agentID]
	if !ok {
		// Not there when the rollout started: the known good version.
		if r.Previous != "" {
			return r.Previous
		}
		return current
	}
	if w <= r.Wave {
		return r.Version
	}
	return r.Previous
}

// RunRollouts is the leader's loop over running rollouts.
func (f *Fleet) RunRollouts(ctx context.Context) {
	t := time.NewTicker(rolloutTick)
	defer t.Stop()
	for {
		f.stepRollouts(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stepRollouts starts rollouts for new versions and advances or halts
// running ones.
func (f *Fleet) stepRollouts(ctx context.Context, now time.Time) {
	plans, _ := f.Store.List(core.PrefixRolloutPlans, "", 0)
	for _, e := range plans {
		kind, name, _ := strings.Cut(strings.TrimPrefix(e.Key, core.PrefixRolloutPlans), "/")
		var plan RolloutPlan
		if json.Unmarshal(e.Value, &plan) != nil {
			continue
		}
		m, _, found, err := f.LoadMeta(kind, name)
		if err != nil || !found || m.Current == "" {
			continue
		}
		r, idx := f.loadRollout(kind, name)
		var next *Rollout
		switch {
		case r == nil:
			// First sight: what is current now is the known good version.
			next = &Rollout{Object: kind + "/" + name, Version: m.Current, Status: "done", Started: now, Updated: now}
		case r.Version != m.Current:
			next = f.startRollout(kind, name, &plan, r, m.Current, now)
		case r.Status == "running":
			next = f.advance(kind, name, &plan, r, now)
		}
		if next == nil {
			continue
		}
		b := (&raftstore.Batch{}).PutIf(RolloutKey(kind, name), core.MustJSON(next), idx)
		if next.Status == "halted" && r != nil && r.Status != "halted" {
			f.rolloutHalted(b, kind, name, next)
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := f.Store.Apply(actx, b); err != nil && ctx.Err() == nil {
			f.Log.Debug("rollout step", "object", kind+"/"+name, "err", err)
		}
		cancel()
	}
}

// holders lists the agents that reported holding an object.
func (f *Fleet) holders(object string) []string {
	var out []string
	for _, a := range f.agents() {
		if a.Revoked {
			continue
		}
		if _, ok := f.Store.Get(prefixAgentBindings + a.ID + "/" + object); ok {
			out = append(out, a.ID)
		}
	}
	return out
}

func (f *Fleet) startRollout(kind, name string, plan *RolloutPlan, prev *Rollout, version string, now time.Time) *Rollout {
	object := kind + "/" + name
	previous := prev.Version
	if prev.Status != "done" && prev.Previous != "" {
		// A new version during a rollout starts from the last good one.
		previous = prev.Previous
	}
	agents := f.holders(object)
	assign, sizes := AssignWaves(object, agents, plan.Waves)
	r := &Rollout{Object: object, Version: version, Previous: previous, Status: "running", Wave: 0, WaveStarted: now,
		Started: now, Updated: now, Agents: assign, WaveSizes: sizes, Budget: budget(plan.MaxFailures, len(agents))}
	if len(agents) == 0 {
		r.Status, r.Wave = "done", len(plan.Waves)-1
	}
	f.Log.Info("rollout started", "object", object, "version", version, "agents", len(agents), "waves", sizes)
	return r
}

// agentOutcome is what an agent reported for a rollout's version:
// healthy, failed (not installed), rolled-back (installed, then switched
// back after its reload or check failed) or pending.
func (f *Fleet) agentOutcome(agentID, object, version string) string {
	e, ok := f.Store.Get(prefixAgentBindings + agentID + "/" + object)
	if !ok {
		return "pending"
	}
	var st BindingState
	if json.Unmarshal(e.Value, &st) != nil || st.Version != version {
		return "pending"
	}
	switch st.Result {
	case "installed", "unchanged", "repaired":
		return "healthy"
	case "failed", "rolled-back":
		return st.Result
	}
	return "pending"
}

// advance moves a running rollout: halt past the budget; next wave when
// every agent of the current one reported (healthy, or failed within the
// budget), or when the bake time passed with no failure; done after the
// last.
func (f *Fleet) advance(kind, name string, plan *RolloutPlan, r *Rollout, now time.Time) *Rollout {
	failed, settledInWave, inWave := 0, 0, 0
	for a, w := range r.Agents {
		if w > r.Wave {
			continue
		}
		o := f.agentOutcome(a, r.Object, r.Version)
		if o == "failed" || o == "rolled-back" {
			failed++
		}
		if w == r.Wave {
			inWave++
			if o != "pending" {
				settledInWave++ // healthy, or failed within the budget
			}
		}
	}
	next := *r
	next.Updated = now
	switch {
	case failed > r.Budget:
		next.Status = "halted"
		next.Reason = fmt.Sprintf("%d agent(s) failed, over the budget of %d, in wave %d of %d", failed, r.Budget, r.Wave+1, len(r.WaveSizes))
		f.Log.Warn("rollout halted", "object", r.Object, "version", r.Version, "reason", next.Reason)
	case settledInWave == inWave || (plan.BakeSeconds > 0 && now.Sub(r.WaveStarted) >= time.Duration(plan.BakeSeconds)*time.Second && failed == 0):
		if r.Wave+1 >= len(r.WaveSizes) {
			next.Status = "done"
			f.Log.Info("rollout done", "object", r.Object, "version", r.Version)
		} else {
			next.Wave, next.WaveStarted = r.Wave+1, now
			f.Log.Info("rollout wave", "object", r.Object, "version", r.Version, "wave", next.Wave+1)
		}
	default:
		return nil
	}
	return &next
}

// rolloutHalted tells webhooks and the contacts.
func (f *Fleet) rolloutHalted(b *raftstore.Batch, kind, name string, r *Rollout) {
	if err := f.EmitEvent(b, core.EventRolloutHalted, kind, name, r.Version, nil, nil, r.Reason); err != nil {
		f.Log.Error("rollout event", "err", err)
	}
	body := fmt.Sprintf(`The rollout of %s version %s was halted: %s.

Agents in later waves keep the previous version (%s). What to do: look at
'certvault rollout status %s' and 'certvault agent list --certificate %s'
for the failures; then 'certvault rollout abort %s' sends every agent back
to the previous version, or 'certvault rollout resume %s' goes on.
`, r.Object, r.Version, r.Reason, r.Previous, name, name, name, name)
	if err := f.EnqueueMail(b, "[certvault] rollout of "+r.Object+" halted", body); err != nil {
		f.Log.Error("rollout mail", "err", err)
	}
}

// RolloutStatus answers GET /v1/rollouts/KIND/NAME.
type RolloutStatus struct {
	Plan    *RolloutPlan `json:"plan"`
	Rollout *Rollout     `json:"rollout,omitempty"`
	// Waves counts, per wave, the agents pending, healthy and failed on
	// the rollout's version.
	Waves []WaveStatus `json:"waves,omitempty"`
}

// WaveStatus is one wave's progress on the rollout's version: agents that
// have not reported it yet are pending.
type WaveStatus struct {
	Wave       int      `json:"wave"`
	Spec       string   `json:"spec"`
	Agents     []string `json:"agents"`
	Target     string   `json:"target"`
	Pending    int      `json:"pending"`
	Healthy    int      `json:"healthy"`
	Failed     int      `json:"failed"`
	RolledBack int      `json:"rolled_back"`
}

// SetRolloutPlanRequest gives an object (a certificate or a secret) a
// rollout plan.
type SetRolloutPlanRequest struct {
	Kind string
	Name string
	Plan RolloutPlan
}

// SetRolloutPlanResult is the stored plan and the raft index of the write.
type SetRolloutPlanResult struct {
	Plan  RolloutPlan
	Index uint64
}

// SetRolloutPlan stores a rollout plan. The object must have a current
// version: it becomes the known good one, and the plan applies from the
// next version on.
func (f *Fleet) SetRolloutPlan(ctx context.Context, p core.Caller, req SetRolloutPlanRequest) (SetRolloutPlanResult, error) {
	kind, name, plan := req.Kind, req.Name, req.Plan
	if err := ParseWaves(plan.Waves); err != nil {
		return SetRolloutPlanResult{}, err
	}
	if plan.BakeSeconds < 0 || plan.BakeSeconds > 7*86400 {
		return SetRolloutPlanResult{}, core.BadParameter("bake_seconds", "bake: give a duration up to 7 days")
	}
	if plan.MaxFailures != "" {
		if _, err := WaveSize(plan.MaxFailures, 100); err != nil && plan.MaxFailures != "0" {
			return SetRolloutPlanResult{}, core.BadParameter("max_failures", "max_failures %q: a count (1) or a percentage (5%%)", plan.MaxFailures)
		}
	}
	m, _, found, _ := f.LoadMeta(kind, name)
	if !found || m.Current == "" {
		return SetRolloutPlanResult{}, core.NotFound(core.NotFoundCode(kind), "%s %s does not exist or has no version yet", core.Singular(kind), name)
	}
	b := (&raftstore.Batch{}).Put(PlanKey(kind, name), core.MustJSON(plan))
	if ro, idx := f.loadRollout(kind, name); ro == nil {
		// What is current now is the known good version: the plan
		// applies from the next one, however soon it comes.
		now := time.Now()
		b.PutIf(RolloutKey(kind, name), core.MustJSON(Rollout{Object: kind + "/" + name, Version: m.Current, Status: "done", Started: now, Updated: now}), idx)
	}
	idx, err := f.Commit(ctx, b)
	if err != nil {
		return SetRolloutPlanResult{}, err
	}
	return SetRolloutPlanResult{Plan: plan, Index: idx}, nil
}

// DeleteRolloutPlan deletes an object's plan and rollout: new versions
// then reach every agent at once. It returns the raft index of the write.
func (f *Fleet) DeleteRolloutPlan(ctx context.Context, p core.Caller, kind, name string) (uint64, error) {
	return f.Commit(ctx, (&raftstore.Batch{}).Delete(PlanKey(kind, name)).Delete(RolloutKey(kind, name)))
}

// The commands of a running rollout.
const (
	// RolloutPause stops a running rollout where it is.
	RolloutPause = "pause"
	// RolloutResume goes on with a paused or halted rollout; resuming a
	// halt accepts the failures so far.
	RolloutResume = "resume"
	// RolloutAbort sends every agent back to the previous version.
	RolloutAbort = "abort"
)

// ControlRolloutRequest pauses, resumes or aborts an object's rollout.
type ControlRolloutRequest struct {
	Kind string
	Name string
	// Command is RolloutPause, RolloutResume or RolloutAbort.
	Command string
}

// ControlRolloutResult is the rollout after the command and the raft
// index of the write.
type ControlRolloutResult struct {
	Rollout *Rollout
	Index   uint64
}

// ControlRollout applies a command to an object's rollout; a command that
// does not apply to the rollout's status is a conflict.
func (f *Fleet) ControlRollout(ctx context.Context, p core.Caller, req ControlRolloutRequest) (ControlRolloutResult, error) {
	kind, name, cmd := req.Kind, req.Name, req.Command
	var out *Rollout
	idx, err := f.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		ro, idx := f.loadRollout(kind, name)
		if ro == nil {
			return nil, core.NotFound("RolloutNotFound", "%s %s has no rollout ('certvault rollout set' makes a plan)", core.Singular(kind), name)
		}
		next := *ro
		next.Updated = time.Now()
		switch {
		case !ro.Applies(cmd):
			return nil, core.Conflict("Conflict", "the rollout of %s is %s: %s does not apply", ro.Object, ro.Status, cmd)
		case cmd == RolloutPause:
			next.Status = "paused"
		case cmd == RolloutResume:
			next.Status, next.WaveStarted = "running", time.Now()
			if ro.Status == "halted" {
				// Resuming a halt accepts the failures so far; new
				// ones count against the plan's budget again.
				failed := 0
				for a := range ro.Agents {
					if o := f.agentOutcome(a, ro.Object, ro.Version); o == "failed" || o == "rolled-back" {
						failed++
					}
				}
				next.Budget = failed + ro.Budget
			}
		case cmd == RolloutAbort:
			next.Status = "aborted"
		}
		out = &next
		return (&raftstore.Batch{}).PutIf(RolloutKey(kind, name), core.MustJSON(next), idx), nil
	})
	if err != nil {
		return ControlRolloutResult{}, err
	}
	return ControlRolloutResult{Rollout: out, Index: idx}, nil
}

// GetRolloutStatus is an object's plan, its latest rollout and each
// wave's progress on the rollout's version.
func (f *Fleet) GetRolloutStatus(ctx context.Context, p core.Caller, kind, name string) (RolloutStatus, error) {
	st := RolloutStatus{Plan: f.loadPlan(kind, name)}
	ro, _ := f.loadRollout(kind, name)
	if st.Plan == nil && ro == nil {
		return RolloutStatus{}, core.NotFound("RolloutNotFound", "%s %s has no rollout plan ('certvault rollout set %s --waves ...')", core.Singular(kind), name, name)
	}
	st.Rollout = ro
	if ro != nil && st.Plan != nil {
		for i, spec := range st.Plan.Waves {
			ws := WaveStatus{Wave: i + 1, Spec: spec, Agents: []string{}}
			for a, wv := range ro.Agents {
				if wv != i {
					continue
				}
				ws.Agents = append(ws.Agents, a)
				switch f.agentOutcome(a, ro.Object, ro.Version) {
				case "healthy":
					ws.Healthy++
				case "failed":
					ws.Failed++
				case "rolled-back":
					ws.RolledBack++
				default:
					ws.Pending++
				}
			}
			slices.Sort(ws.Agents)
			ws.Target = ro.Previous
			if ro.Status == "done" || (ro.Status != "aborted" && i <= ro.Wave) {
				ws.Target = ro.Version
			}
			st.Waves = append(st.Waves, ws)
		}
	}
	return st, nil
}
