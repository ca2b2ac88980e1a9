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

func agentCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "agent",
		Short: "Agent identities: join tokens, enrolled agents, revocation",
		Long: `Agents (certvault-agent on each VM) authenticate with a client certificate
from the vault's agent CA. An agent joins once with a join token, making its
key locally; it renews its certificate over mutual TLS at two thirds of its
life. Give an agent group access with a role assignment to group:NAME.`,
	}
	jt := &cobra.Command{Use: "join-token", Short: "Join tokens for enrolling agents"}
	var group, ttl, certTTL string
	var uses int
	create := &cobra.Command{
		Use:   "create --group G [--ttl 1h] [--uses N] [--cert-ttl 30d]",
		Short: "Create a join token for agents of a group (printed once)",
		Example: `  certvault agent join-token create --group nginx --ttl 1h --uses 20
  TOKEN=$(certvault agent join-token create --group nginx -o json | jq -r .token)`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if group == "" {
				return usageError{errors.New("--group is required: the agents' group, to which roles are assigned as group:NAME")}
			}
			return g.show(cmd, out, http.MethodPost, "/v1/agents/join-tokens", map[string]any{"group": group, "ttl": ttl, "uses": uses, "cert_ttl": certTTL}, func(raw json.RawMessage) error {
				var t struct {
					Token, Group  string
					Expires       time.Time
					Uses          int
					CAFingerprint string `json:"ca_fingerprint"`
				}
				if err := json.Unmarshal(raw, &t); err != nil {
					return fmt.Errorf("decode join token: %w", err)
				}
				fmt.Fprintf(out, "join token for group %s (%d use(s), expires %s):\n\n  %s\n\nvault CA fingerprint: %s\n\n", t.Group, t.Uses, fmtTime(&t.Expires), t.Token, t.CAFingerprint)
				fmt.Fprintf(out, "On the VM, as root:\n  %s\n", joinCommand(g.addrOrEnv(), t.Token, t.CAFingerprint))
				return nil
			})
		},
	}
	create.Flags().StringVar(&group, "group", "", "agent group")
	create.Flags().StringVar(&ttl, "ttl", "1h", "how long the token can be used (up to 30d)")
	create.Flags().IntVar(&uses, "uses", 1, "how many agents may join with it")
	create.Flags().StringVar(&certTTL, "cert-ttl", "30d", "lifetime of each agent certificate")
	jt.AddCommand(create)
	c.AddCommand(jt)

	var byGroup, byCert string
	list := &cobra.Command{
		Use: "list", Short: "List enrolled agents", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if byGroup != "" {
				q.Set("group", byGroup)
			}
			if byCert != "" {
				q.Set("certificate", byCert)
			}
			path := "/v1/agents?" + q.Encode()
			return g.show(cmd, out, http.MethodGet, path, nil, func(raw json.RawMessage) error {
				var res struct {
					Value []struct {
						agentRecord
						Bindings []struct{ Object, Version, Result string }
					}
				}
				json.Unmarshal(raw, &res)
				tw := table(out)
				fmt.Fprintln(tw, "ID\tNAME\tGROUP\tSTATE\tIDENTITY EXPIRES\tHOLDS (OBJECT VERSION RESULT)")
				for _, a := range res.Value {
					var holds []string
					for _, b := range a.Bindings {
						if byCert != "" && b.Object != "certificates/"+byCert {
							continue
						}
						holds = append(holds, b.Object+" "+b.Version+" "+b.Result)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.Group, a.state(), fmtTime(&a.NotAfter), dash(strings.Join(holds, "; ")))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&byGroup, "group", "", "only agents of this group")
	list.Flags().StringVar(&byCert, "certificate", "", "only agents that install this certificate (and show which version each holds)")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{
		Use: "status ID", Short: "Show one agent", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.show(cmd, out, http.MethodGet, "/v1/agents/"+url.PathEscape(a[0]), nil, func(raw json.RawMessage) error {
				var r struct {
					agentRecord
					Bindings []struct {
						Time                                      time.Time
						Object, Version, Result, Detail, Previous string
						Drift                                     []string
						Timings                                   map[string]int64
					}
				}
				json.Unmarshal(raw, &r)
				tw := table(out)
				for _, kv := range [][2]string{{"ID", r.ID}, {"Name", r.Name}, {"Group", r.Group}, {"State", r.state()},
					{"Identity serial", r.Serial}, {"Identity expires", fmtTime(&r.NotAfter)},
					{"Enrolled", fmtTime(&r.Enrolled) + " from " + r.Source}, {"Renewed", fmtTime(&r.Renewed)}} {
					fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(out)
				tw = table(out)
				fmt.Fprintln(tw, "OBJECT\tVERSION\tRESULT\tREPORTED\tSWAP MS\tDETAIL")
				for _, b := range r.Bindings {
					detail := b.Detail
					if len(b.Drift) > 0 {
						detail = strings.TrimSpace(detail + " drift: " + strings.Join(b.Drift, ","))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Object, b.Version, b.Result, fmtTime(&b.Time), b.Timings["swap"], dash(detail))
				}
				return tw.Flush()
			})
		},
	})
	c.AddCommand(&cobra.Command{
		Use: "revoke ID", Short: "Revoke an agent's identity, at once on every node", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := g.call(cmd, http.MethodDelete, "/v1/agents/"+url.PathEscape(a[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "revoked agent %s\n", a[0])
			return nil
		},
	})
	return c
}

type agentRecord struct {
	ID, Name, Group, Serial, Source string
	NotAfter                        time.Time `json:"not_after"`
	Enrolled, Renewed               time.Time
	Revoked                         bool
	RevokedAt                       time.Time `json:"revoked_at"`
	RevokedBy                       string    `json:"revoked_by"`
}

func (a agentRecord) state() string {
	switch {
	case a.Revoked:
		return "revoked " + fmtTime(&a.RevokedAt) + " by " + a.RevokedBy
	case time.Now().After(a.NotAfter):
		return "expired"
	}
	return "active"
}

// joinCommand is the certvault-agent join command line a VM runs to enroll
// with token, ready to paste into a shell.
func joinCommand(vaultURL, token, fingerprint string) string {
	words := []string{"certvault-agent", "join", "--vault", vaultURL, "--token", token,
		"--ca-fingerprint", fingerprint, "--state-dir", "/var/lib/certvault-agent"}
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

// shellQuote returns s as one POSIX shell word: as is when it holds only
// characters no shell treats specially, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
