package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func rolloutCmd(g *globals, out io.Writer) *cobra.Command {
	var secret bool
	c := &cobra.Command{
		Use:   "rollout",
		Short: "Staged rollouts of new versions to the agents: waves, bake time, failure budget",
		Long: `A rollout plan makes a new version of a certificate (or, with --secret, a
secret) reach the agents in waves instead of all at once. When a new version
becomes current, the vault assigns the agents that hold the object to waves
(the same assignment on any node), gives the version to the first wave, and
moves on when every agent of the wave reported (healthy, or failed within
the budget), or when the bake time passed with no failure. When more agents fail than the budget allows, the
rollout halts: later waves keep the previous version, the contacts get a
mail and webhooks a RolloutHalted event. Abort sends every agent back to the
previous version. Without a plan, a new version goes to every agent at once.`,
	}
	c.PersistentFlags().BoolVar(&secret, "secret", false, "NAME is a secret, not a certificate")
	kind := func() string {
		if secret {
			return "secrets"
		}
		return "certificates"
	}
	path := func(name string) string { return "/v1/rollouts/" + kind() + "/" + url.PathEscape(name) }

	var waves, bake, maxFailures string
	set := &cobra.Command{
		Use:     "set NAME --waves 1,10%,50%,100% [--bake 5m] [--max-failures 1]",
		Short:   "Give an object a rollout plan (used from its next version on)",
		Example: "  certvault rollout set www --waves 1,10%,50%,100% --bake 5m --max-failures 1",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if waves == "" {
				return usageError{errors.New("--waves is required, such as 1,10%,50%,100%")}
			}
			var bakeSec int64
			if bake != "" {
				d, err := time.ParseDuration(bake)
				if err != nil || d < 0 {
					return usageError{fmt.Errorf("--bake %q: a duration such as 5m", bake)}
				}
				bakeSec = int64(d / time.Second)
			}
			return g.show(cmd, out, http.MethodPut, path(a[0])+"/plan", map[string]any{"waves": strings.Split(waves, ","), "bake_seconds": bakeSec, "max_failures": maxFailures}, func(raw json.RawMessage) error {
				fmt.Fprintf(out, "rollout plan for %s/%s: waves %s, bake %s, max failures %s\n", kind(), a[0], waves, dash(bake), dash(maxFailures))
				return nil
			})
		},
	}
	set.Flags().StringVar(&waves, "waves", "", "comma-separated waves: agent counts or percentages, the last 100%")
	set.Flags().StringVar(&bake, "bake", "", "advance a wave after this long when none of its agents failed, even if some have not reported")
	set.Flags().StringVar(&maxFailures, "max-failures", "0", "failures tolerated before the rollout halts: a count or a percentage")
	c.AddCommand(set)

	c.AddCommand(&cobra.Command{
		Use: "status NAME", Short: "Show the plan and the latest rollout, wave by wave", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.show(cmd, out, http.MethodGet, path(a[0]), nil, func(raw json.RawMessage) error {
				var st struct {
					Plan *struct {
						Waves       []string
						BakeSeconds int64  `json:"bake_seconds"`
						MaxFailures string `json:"max_failures"`
					}
					Rollout *struct {
						Version, Previous, Status, Reason string
						Wave                              int
						Budget                            int
						Started                           time.Time
					}
					Waves []struct {
						Wave                     int
						Spec, Target             string
						Agents                   []string
						Pending, Healthy, Failed int
						RolledBack               int `json:"rolled_back"`
					}
				}
				json.Unmarshal(raw, &st)
				if st.Plan != nil {
					fmt.Fprintf(out, "plan: waves %s, bake %ds, max failures %s\n", strings.Join(st.Plan.Waves, ","), st.Plan.BakeSeconds, dash(st.Plan.MaxFailures))
				}
				if r := st.Rollout; r != nil {
					fmt.Fprintf(out, "rollout of version %s (previous %s): %s, wave %d, budget %d, started %s\n", r.Version, dash(r.Previous), r.Status, r.Wave+1, r.Budget, fmtTime(&r.Started))
					if r.Reason != "" {
						fmt.Fprintf(out, "reason: %s\n", r.Reason)
					}
				}
				tw := table(out)
				fmt.Fprintln(tw, "WAVE\tSIZE\tAGENTS\tTARGET\tPENDING\tHEALTHY\tFAILED\tROLLED BACK")
				for _, w := range st.Waves {
					fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%d\t%d\t%d\n", w.Wave, w.Spec, len(w.Agents), w.Target, w.Pending, w.Healthy, w.Failed, w.RolledBack)
				}
				return tw.Flush()
			})
		},
	})
	for _, verb := range []struct{ use, short string }{
		{"pause", "Stop advancing (agents keep what they were given)"},
		{"resume", "Go on after a pause, or after a halt (accepting the failures so far)"},
		{"abort", "Send every agent back to the previous version"},
	} {
		c.AddCommand(&cobra.Command{
			Use: verb.use + " NAME", Short: verb.short, Args: args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, a []string) error {
				return g.show(cmd, out, http.MethodPost, path(a[0])+"/"+verb.use, nil, func(raw json.RawMessage) error {
					var r struct{ Status string }
					json.Unmarshal(raw, &r)
					fmt.Fprintf(out, "rollout of %s/%s: %s\n", kind(), a[0], r.Status)
					return nil
				})
			},
		})
	}
	c.AddCommand(&cobra.Command{
		Use: "unset NAME", Short: "Remove the plan: new versions go to every agent at once", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := g.call(cmd, http.MethodDelete, path(a[0])+"/plan", nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "removed the rollout plan of %s/%s\n", kind(), a[0])
			return nil
		},
	})
	return c
}
