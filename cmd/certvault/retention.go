package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// objectRetention is an object's own retention as GET and PUT
// /v1/retention/KIND/NAME carry it: nil follows the vault's setting.
type objectRetention struct {
	RetainVersions    *int `json:"retain_versions,omitempty"`
	RetainExpiredDays *int `json:"retain_expired_days,omitempty"`
}

// retentionView is GET /v1/retention/KIND/NAME's answer.
type retentionView struct {
	Object    objectRetention `json:"object"`
	Effective struct {
		RetainVersions    int `json:"retain_versions"`
		RetainExpiredDays int `json:"retain_expired_days"`
	} `json:"effective"`
}

// retentionCmd shows or changes one object's own version retention
// (cert, secret and key retention).
func retentionCmd(g *globals, out io.Writer, kind, noun string) *cobra.Command {
	var versions, days int
	var inherit bool
	c := &cobra.Command{
		Use:   "retention NAME [--retain-versions N] [--retain-expired-days D] [--inherit]",
		Short: "Show or change how many old versions of this " + noun + " the vault keeps",
		Long: `Without flags, show the ` + noun + `'s version retention: its own settings and
what applies (its own over the vault's, 'certvault settings get').
--retain-versions N keeps the newest N versions (0 keeps every version);
older ones are purged once no agent holds them, no rollout or pending
operation refers to them, and they expired more than --retain-expired-days D
days ago (a version without an expiry goes by N alone). The current version
is never purged. --inherit drops the ` + noun + `'s own settings: it follows the
vault's again. Changing it needs the ` + noun + `'s write permission.`,
		Example: fmt.Sprintf("  certvault %s retention www\n  certvault %s retention www --retain-versions 5 --retain-expired-days 60\n  certvault %s retention www --inherit", noun, noun, noun),
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			path := "/v1/retention/" + kind + "/" + url.PathEscape(a[0])
			var cur retentionView
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, path, nil, &raw); err != nil {
				return err
			}
			changed := cmd.Flags().Changed("retain-versions") || cmd.Flags().Changed("retain-expired-days")
			if inherit && changed {
				return usageError{errors.New("--inherit drops the object's own settings: give it alone, or --retain-versions and --retain-expired-days without it")}
			}
			if inherit || changed {
				if err := json.Unmarshal(raw, &cur); err != nil {
					return fmt.Errorf("decode the retention of %s: %w", a[0], err)
				}
				body := cur.Object
				if inherit {
					body = objectRetention{}
				}
				if cmd.Flags().Changed("retain-versions") {
					body.RetainVersions = &versions
				}
				if cmd.Flags().Changed("retain-expired-days") {
					body.RetainExpiredDays = &days
				}
				if err := cl.Do(cmd.Context(), http.MethodPut, path, body, &raw); err != nil {
					return err
				}
			}
			if g.output == "json" {
				return printJSON(out, raw)
			}
			if err := json.Unmarshal(raw, &cur); err != nil {
				return fmt.Errorf("decode the retention of %s: %w", a[0], err)
			}
			own := func(v *int) string {
				if v == nil {
					return "(the vault's)"
				}
				return fmt.Sprint(*v)
			}
			tw := table(out)
			keep := fmt.Sprint(cur.Effective.RetainVersions)
			if cur.Effective.RetainVersions == 0 {
				keep = "0 (every version is kept)"
			}
			fmt.Fprintf(tw, "retain versions:\t%s\t%s\n", keep, own(cur.Object.RetainVersions))
			fmt.Fprintf(tw, "retain expired days:\t%d\t%s\n", cur.Effective.RetainExpiredDays, own(cur.Object.RetainExpiredDays))
			return tw.Flush()
		},
	}
	c.Flags().IntVar(&versions, "retain-versions", 0, "keep the newest N versions of this "+noun+" (0 keeps every version)")
	c.Flags().IntVar(&days, "retain-expired-days", 0, "days after a version's expiry before it may be purged")
	c.Flags().BoolVar(&inherit, "inherit", false, "drop this "+noun+"'s own settings and follow the vault's")
	return c
}
