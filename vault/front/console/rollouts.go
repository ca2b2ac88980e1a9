package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
)

// The rollouts page (issue 19): every object with a rollout plan that the
// caller may read (the action of the API's GET /v1/rollouts/KIND/NAME),
// each rollout's waves with their agents pending, healthy, failed and
// rolled back, and pause, resume and abort for those allowed the API's
// write action on the object (authorized again when posted). The counts
// follow the fleet live through /ui/rollouts/events.

const (
	rolloutEventsPath = "/ui/rollouts/events"
	// rolloutRows bounds the rollouts on a page (and in its events).
	rolloutRows = 50
)

// rolloutActions are the API's actions on an object's rollout: read for
// its status, write for its plan and commands.
func rolloutActions(kind string) (read, write access.Action) {
	if kind == core.KindSecrets {
		return access.SecretsMetadata, access.SecretsWrite
	}
	return access.CertificatesRead, access.CertificatesWrite
}

// rolloutID is the element id of an object's rollout on the page:
// rollout-KIND-NAME (the name canonical, so letters, digits and dashes).
func rolloutID(kind, name string) string { return "rollout-" + kind + "-" + name }

// waveView is one wave as the page and its events show it.
type waveView struct {
	// ID is the prefix of the wave's element ids: ROLLOUT-wave-N.
	ID         string `json:"id"`
	N          int    `json:"n"`
	Spec       string `json:"spec"`
	Size       int    `json:"size"`
	Target     string `json:"target"`
	Pending    int    `json:"pending"`
	Healthy    int    `json:"healthy"`
	Failed     int    `json:"failed"`
	RolledBack int    `json:"rolled_back"`
	// Reached: the wave has been given the version.
	Reached bool `json:"reached"`
}

// rolloutView is one rollout as the page and its events show it.
type rolloutView struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	Version  string `json:"version"`
	Previous string `json:"previous"`
	// Wave is the last wave (from 1) given the version.
	Wave    int    `json:"wave"`
	Reason  string `json:"reason"`
	Started string `json:"started"`
	Updated string `json:"updated"`
	// Plan says the waves, bake time and failure budget.
	Plan  string     `json:"-"`
	Waves []waveView `json:"waves"`
	// Commands are those that apply now and the caller may give.
	Commands []string `json:"commands"`
	// CanControl: the caller may give commands (the forms are there,
	// hidden while they do not apply).
	CanControl bool `json:"-"`
}

// Can reports whether the form of cmd is shown.
func (v rolloutView) Can(cmd string) bool { return slices.Contains(v.Commands, cmd) }

// rolloutsPage is the rollouts page's data.
type rolloutsPage struct {
	page
	Rollouts []rolloutView
	// Events is the page's event stream; Self the page again; Next the
	// next page ("" on the last).
	Events, Self, Next string
}

// rolloutsEvent is the data of an event of /ui/rollouts/events.
type rolloutsEvent struct {
	Rollouts []rolloutView `json:"rollouts"`
}

// handleRollouts shows the rollouts the caller may read, a page at a time.
func (f *Front) handleRollouts(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	after := r.URL.Query().Get("after")
	index := f.ChangeIndex()
	views, next, err := f.rolloutViews(r.Context(), s.caller, after)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	data := rolloutsPage{page: f.pageFor(s, "Rollouts", "rollouts"), Rollouts: views, Self: r.URL.RequestURI(),
		Next: nextPage("/ui/rollouts", r.URL.Query(), next)}
	ev := url.Values{"index": {strconv.FormatUint(index, 10)}}
	if after != "" {
		ev.Set("after", after)
	}
	data.Events = rolloutEventsPath + "?" + ev.Encode()
	f.render(w, http.StatusOK, "rollouts", data)
}

// rolloutViews returns the page of rollouts from after that c may read,
// and the next page's after.
func (f *Front) rolloutViews(ctx context.Context, c core.Caller, after string) ([]rolloutView, string, error) {
	pol := f.Policy()
	may := func(kind, name string, write bool) bool {
		read, wr := rolloutActions(kind)
		a := read
		if write {
			a = wr
		}
		return pol.Allowed(c.Principal, a, access.Resource{Kind: kind, Name: name})
	}
	res, err := f.ListRollouts(ctx, c, fleet.RolloutPageRequest{After: after, Limit: rolloutRows,
		Keep: func(ref fleet.RolloutRef) bool { return may(ref.Kind, ref.Name, false) }})
	if err != nil {
		return nil, "", err
	}
	views := []rolloutView{}
	for _, ref := range res.Items {
		st, err := f.GetRolloutStatus(ctx, c, ref.Kind, ref.Name)
		if core.IsKind(err, core.KindNotFound) {
			continue // unset since it was listed
		}
		if err != nil {
			return nil, "", err
		}
		views = append(views, viewRollout(ref, st, may(ref.Kind, ref.Name, true)))
	}
	return views, res.Next, nil
}

// viewRollout is what the page shows of st; control says whether the
// caller may give commands.
func viewRollout(ref fleet.RolloutRef, st fleet.RolloutStatus, control bool) rolloutView {
	v := rolloutView{ID: rolloutID(ref.Kind, ref.Name), Kind: ref.Kind, Name: ref.Name, Status: "no rollout yet",
		Waves: []waveView{}, Commands: []string{}, CanControl: control}
	if p := st.Plan; p != nil {
		budget := p.MaxFailures
		if budget == "" {
			budget = "0"
		}
		v.Plan = fmt.Sprintf("waves %s, bake %v, max failures %s", strings.Join(p.Waves, ","), time.Duration(p.BakeSeconds)*time.Second, budget)
	}
	if ro := st.Rollout; ro != nil {
		v.Status, v.Version, v.Previous, v.Reason = ro.Status, ro.Version, ro.Previous, ro.Reason
		v.Wave = ro.Wave + 1
		v.Started, v.Updated = stamp(ro.Started), stamp(ro.Updated)
		if control {
			v.Commands = append(v.Commands, fleet.RolloutCommands(ro)...)
		}
	}
	for _, ws := range st.Waves {
		v.Waves = append(v.Waves, waveView{ID: fmt.Sprintf("%s-wave-%d", v.ID, ws.Wave), N: ws.Wave, Spec: ws.Spec, Size: len(ws.Agents),
			Target: ws.Target, Pending: ws.Pending, Healthy: ws.Healthy, Failed: ws.Failed, RolledBack: ws.RolledBack,
			Reached: st.Rollout != nil && ws.Target == st.Rollout.Version && st.Rollout.Version != ""})
	}
	return v
}

// stamp shows a time to the second, in UTC ("" for none).
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// handleRolloutCommand pauses, resumes or aborts a rollout from the
// page's form: the API's write action on the object, decided again here.
func (f *Front) handleRolloutCommand(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	kind, name, cmd := r.PathValue("kind"), r.PathValue("name"), r.PathValue("command")
	if (kind != core.KindCertificates && kind != core.KindSecrets) || !slices.Contains([]string{fleet.RolloutPause, fleet.RolloutResume, fleet.RolloutAbort}, cmd) {
		f.renderError(w, r, http.StatusNotFound, "Not found", "There is no such rollout command in the console.")
		return
	}
	_, write := rolloutActions(kind)
	res := access.Resource{Kind: kind, Name: name}
	if !f.permit(w, r, s.caller, res, write) {
		return
	}
	_, err := f.ControlRollout(r.Context(), s.caller, fleet.ControlRolloutRequest{Kind: kind, Name: name, Command: cmd})
	var ce *core.Error
	switch {
	case err == nil:
	case errors.As(err, &ce) && ce.Kind == core.KindNotFound:
		f.renderError(w, r, http.StatusNotFound, "Not found", ce.Message+".")
		return
	case errors.As(err, &ce) && ce.Kind == core.KindConflict:
		f.renderError(w, r, http.StatusConflict, "Not applied", "The rollout was not changed: "+ce.Message+". Reload the page to see where it is now.")
		return
	default:
		f.Fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/rollouts#"+rolloutID(kind, name), http.StatusSeeOther)
}

// handleRolloutEvents streams the counts of the rollouts page (the same
// page: ?after=) whenever a plan, a rollout or an agent's report changes.
func (f *Front) handleRolloutEvents(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	after := r.URL.Query().Get("after")
	f.stream(w, r, f.changeSource("rollouts", fleet.RolloutChanges, s, nil, func(c core.Caller) (any, error) {
		views, _, err := f.rolloutViews(r.Context(), c, after)
		return rolloutsEvent{Rollouts: views}, err
	}))
}
