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

// call sends one API request and returns the raw JSON answer.
func (g *globals) call(cmd *cobra.Command, method, path string, in any) (json.RawMessage, error) {
	cl, err := g.client()
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := cl.Do(cmd.Context(), method, path, in, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// show sends one API request and prints the answer: as JSON with -o json,
// else through human, which decodes what it needs.
func (g *globals) show(cmd *cobra.Command, out io.Writer, method, path string, in any, human func(json.RawMessage) error) error {
	raw, err := g.call(cmd, method, path, in)
	if err != nil {
		return err
	}
	if g.output == "json" {
		return printJSON(out, raw)
	}
	return human(raw)
}

// fmtTime prints a time for tables, "-" for none.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func tokenCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Bearer tokens for people and applications",
		Long: `Bearer tokens authenticate users and applications. A token belongs to a
principal (its --name); roles are assigned to principals ('certvault role').
The vault stores only a hash of each token: it is printed once, at creation.
Send it as "Authorization: Bearer TOKEN" or set CERTVAULT_TOKEN.`,
	}
	var name, ttl, role, scope string
	create := &cobra.Command{
		Use:   "create --name NAME [--ttl 30d] [--role ROLE --scope SCOPE]",
		Short: "Create a token (printed once)",
		Example: `  certvault token create --name app-team --ttl 90d --role "Certificates Officer" --scope /certificates/web-*
  certvault token create --name ci --role "Secrets User" --scope /secrets/ci- -o json | jq -r .token`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageError{errors.New("--name is required: the principal the token authenticates")}
			}
			if (role == "") != (scope == "") {
				return usageError{errors.New("--role and --scope go together (scope / is the whole vault)")}
			}
			return g.show(cmd, out, http.MethodPost, "/v1/tokens", map[string]string{"name": name, "ttl": ttl, "role": role, "scope": scope}, func(raw json.RawMessage) error {
				var t struct {
					ID, Name, Token string
					Expires         *time.Time
					Assignment      *struct{ Role, Scope string }
				}
				json.Unmarshal(raw, &t)
				fmt.Fprintf(out, "token for %s (id %s, expires %s):\n\n  %s\n\n", t.Name, t.ID, fmtTime(t.Expires), t.Token)
				if t.Assignment != nil {
					fmt.Fprintf(out, "assigned %s at %s\n", t.Assignment.Role, t.Assignment.Scope)
				}
				fmt.Fprintln(out, "It is not shown again; the vault keeps only its hash.")
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "principal name (letters, digits, . _ @ -)")
	create.Flags().StringVar(&ttl, "ttl", "", "lifetime such as 12h or 90d (default: no expiry)")
	create.Flags().StringVar(&role, "role", "", "also assign this role to the principal ('certvault role list')")
	create.Flags().StringVar(&scope, "scope", "", "scope of --role: /, /certificates, /certificates/www or /certificates/web-*")
	c.AddCommand(create)

	var listName string
	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/tokens"
			if listName != "" {
				path += "?name=" + url.QueryEscape(listName)
			}
			return g.show(cmd, out, http.MethodGet, path, nil, func(raw json.RawMessage) error {
				var res struct {
					Value []struct {
						ID, Name  string
						Created   time.Time
						Expires   *time.Time
						Expired   bool
						CreatedBy string `json:"created_by"`
					}
				}
				json.Unmarshal(raw, &res)
				tw := table(out)
				fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEXPIRES\tSTATE\tCREATED BY")
				for _, t := range res.Value {
					state := "valid"
					if t.Expired {
						state = "expired"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, fmtTime(&t.Created), fmtTime(t.Expires), state, t.CreatedBy)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listName, "name", "", "only this principal's tokens")
	c.AddCommand(list)

	c.AddCommand(&cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once, on every node",
		Long: `Revoke a token by its ID ('certvault token list'). The root token can be
revoked once another principal with a valid token holds Administrator at the
vault scope; the vault refuses to revoke the last administrator's token.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := g.call(cmd, http.MethodDelete, "/v1/tokens/"+url.PathEscape(a[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "revoked token %s\n", a[0])
			return nil
		},
	})
	c.AddCommand(&cobra.Command{
		Use: "whoami", Short: "Show the principal of the token in use and its role assignments", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.show(cmd, out, http.MethodGet, "/v1/auth/self", nil, func(raw json.RawMessage) error {
				var s struct {
					Principal   string
					TokenID     string `json:"token_id"`
					Assignments []assignment
				}
				json.Unmarshal(raw, &s)
				fmt.Fprintf(out, "principal %s (token %s)\n", s.Principal, s.TokenID)
				return printAssignments(out, s.Assignments)
			})
		},
	})
	return c
}

type assignment struct {
	ID, Role, Assignee, Scope string
	Created                   int64
	CreatedBy                 string `json:"created_by"`
}

func printAssignments(out io.Writer, as []assignment) error {
	tw := table(out)
	fmt.Fprintln(tw, "ID\tROLE\tASSIGNEE\tSCOPE\tCREATED\tBY")
	for _, a := range as {
		t := time.Unix(a.Created, 0)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Role, a.Assignee, a.Scope, fmtTime(&t), a.CreatedBy)
	}
	return tw.Flush()
}

func roleCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "role",
		Short: "Roles and role assignments (who may do what, where)",
		Long: `Access is denied unless a role assignment allows it. A role (Key Vault's
built-in names plus Issuers Administrator) is assigned to a principal (a
token's --name) or to an agent group (group:NAME) at a scope:

  /                       the whole vault (the only scope for vault-wide
                          permissions: settings, cluster, tokens, audit)
  /certificates           every certificate (also /secrets, /keys, /issuers)
  /certificates/www       one object; a certificate scope also covers its
                          managed key and secret of the same name
  /certificates/web-*     every name with that prefix (a trailing - works too)

Listing a collection needs a scope that covers the whole collection.
docs/access.md has the full endpoint × role matrix.`,
	}
	c.AddCommand(&cobra.Command{
		Use: "list", Short: "List the built-in roles", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.show(cmd, out, http.MethodGet, "/v1/roles", nil, func(raw json.RawMessage) error {
				var res struct {
					Value []struct {
						Name, Description string
						Actions           []string
					}
				}
				json.Unmarshal(raw, &res)
				for _, r := range res.Value {
					fmt.Fprintf(out, "%s\n  %s\n  actions: %s\n\n", r.Name, r.Description, strings.Join(r.Actions, ", "))
				}
				return nil
			})
		},
	})
	var to, scope string
	assign := &cobra.Command{
		Use:   "assign ROLE --to PRINCIPAL|group:NAME --scope SCOPE",
		Short: "Assign a role to a principal or an agent group at a scope",
		Example: `  certvault role assign "Certificates Officer" --to app-team --scope /certificates/web-
  certvault role assign "Certificate User" --to group:nginx --scope /certificates/www
  certvault role assign "Issuers Administrator" --to ca-team --scope /`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if to == "" || scope == "" {
				return usageError{errors.New("--to and --scope are required")}
			}
			return g.show(cmd, out, http.MethodPost, "/v1/roles/assignments", map[string]string{"role": a[0], "assignee": to, "scope": scope}, func(raw json.RawMessage) error {
				var as assignment
				json.Unmarshal(raw, &as)
				fmt.Fprintf(out, "assigned %s to %s at %s (assignment %s)\n", as.Role, as.Assignee, as.Scope, as.ID)
				return nil
			})
		},
	}
	assign.Flags().StringVar(&to, "to", "", "principal name, or group:NAME for an agent group")
	assign.Flags().StringVar(&scope, "scope", "", "/, /certificates, /certificates/www or /certificates/web-*")
	c.AddCommand(assign)

	var byAssignee string
	list := &cobra.Command{
		Use: "assignments", Short: "List role assignments", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/v1/roles/assignments"
			if byAssignee != "" {
				path += "?assignee=" + url.QueryEscape(byAssignee)
			}
			return g.show(cmd, out, http.MethodGet, path, nil, func(raw json.RawMessage) error {
				var res struct{ Value []assignment }
				json.Unmarshal(raw, &res)
				return printAssignments(out, res.Value)
			})
		},
	}
	list.Flags().StringVar(&byAssignee, "to", "", "only assignments of this principal or group:NAME")
	c.AddCommand(list)
	c.AddCommand(&cobra.Command{
		Use: "revoke ID", Short: "Remove a role assignment ('role assignments' shows IDs)", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := g.call(cmd, http.MethodDelete, "/v1/roles/assignments/"+url.PathEscape(a[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "removed assignment %s\n", a[0])
			return nil
		},
	})
	return c
}
