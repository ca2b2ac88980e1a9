package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// servicePrincipal is what the vault shows of a service principal.
type servicePrincipal struct {
	Name         string
	Principal    string
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Secrets      []struct {
		ID      string
		Created time.Time
	}
	Certificates []struct {
		X5t      string
		X5tS256  string `json:"x5t#S256"`
		Subject  string
		NotAfter time.Time `json:"not_after"`
	}
	AgentGroups []string `json:"agent_groups"`
	Created     time.Time
	CreatedBy   string `json:"created_by"`
	Assignments []assignment
}

// decodeServicePrincipal decodes the vault's answer and prints it.
func decodeServicePrincipal(out io.Writer) func(json.RawMessage) error {
	return func(raw json.RawMessage) error {
		var sp servicePrincipal
		if err := json.Unmarshal(raw, &sp); err != nil {
			return fmt.Errorf("decode the vault's answer: %w", err)
		}
		return printServicePrincipal(out, sp)
	}
}

// printServicePrincipal prints sp for people, with its secret when it
// carries one (create and rotate, once).
func printServicePrincipal(out io.Writer, sp servicePrincipal) error {
	tw := table(out)
	fmt.Fprintf(tw, "name:\t%s\n", sp.Name)
	fmt.Fprintf(tw, "principal:\t%s\n", sp.Principal)
	fmt.Fprintf(tw, "tenant_id:\t%s\n", sp.TenantID)
	fmt.Fprintf(tw, "client_id:\t%s\n", sp.ClientID)
	if sp.ClientSecret != "" {
		fmt.Fprintf(tw, "client_secret:\t%s\n", sp.ClientSecret)
	}
	for _, s := range sp.Secrets {
		fmt.Fprintf(tw, "secret:\t%s (created %s)\n", s.ID, fmtTime(&s.Created))
	}
	for _, c := range sp.Certificates {
		fmt.Fprintf(tw, "certificate:\t%s, x5t#S256 %s, expires %s\n", c.Subject, c.X5tS256, fmtTime(&c.NotAfter))
	}
	for _, a := range sp.Assignments {
		fmt.Fprintf(tw, "role:\t%s at %s (assignment %s)\n", a.Role, a.Scope, a.ID)
	}
	if len(sp.AgentGroups) > 0 {
		fmt.Fprintf(tw, "agent groups:\t%s (their agents may get its tokens for local applications)\n", strings.Join(sp.AgentGroups, ", "))
	}
	fmt.Fprintf(tw, "created:\t%s by %s\n", fmtTime(&sp.Created), sp.CreatedBy)
	if err := tw.Flush(); err != nil {
		return err
	}
	if sp.ClientSecret != "" {
		fmt.Fprintln(out, "\nThe client secret is not shown again; the vault keeps only its hash.")
	}
	return nil
}

func spCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "sp",
		Short: "Service principals: applications with a client id and a secret or certificate",
		Long: `A service principal is an application that authenticates as Azure
applications do: a tenant id, a client id, and either a client secret
(printed once; the vault keeps its hash) or a certificate whose key signs
its client assertions. It is a principal like a token holder: roles are
assigned to sp:NAME, and audit records name it so.

Applications get tokens from the vault's token endpoint exactly as from
Entra ID, with the Azure libraries and no code change:

  AZURE_AUTHORITY_HOST=https://VAULT-HOST:8443
  AZURE_TENANT_ID=<tenant_id>  AZURE_CLIENT_ID=<client_id>
  AZURE_CLIENT_SECRET=<client_secret>   (or AZURE_CLIENT_CERTIFICATE_PATH)

and, with --agent-group, applications on the machines of those agent
groups get its tokens from their agent with no credential at all
(managed identity; see docs/agent.md).`,
	}
	var role, scope, certFile string
	var agentGroups []string
	create := &cobra.Command{
		Use:   "create NAME --role ROLE --scope SCOPE [--cert-file PEM]",
		Short: "Create a service principal (its client secret is printed once)",
		Example: `  certvault sp create billing --role "Secrets User" --scope /secrets/billing-
  certvault sp create web --role "Certificate User" --scope /certificates/www --cert-file web-client.pem -o json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if role == "" || scope == "" {
				return usageError{errors.New("--role and --scope are required (scope / is the whole vault; 'certvault role list' shows the roles)")}
			}
			body := map[string]any{"name": a[0], "role": role, "scope": scope, "agent_groups": agentGroups}
			if certFile != "" {
				pemData, err := os.ReadFile(certFile)
				if err != nil {
					return fmt.Errorf("--cert-file: %w", err)
				}
				if strings.Contains(string(pemData), "PRIVATE KEY") {
					return usageError{fmt.Errorf("--cert-file %s holds a private key: give the certificate only; the key stays with the application", certFile)}
				}
				body["certificate"] = string(pemData)
			}
			return g.show(cmd, out, http.MethodPost, "/v1/service-principals", body, decodeServicePrincipal(out))
		},
	}
	create.Flags().StringVar(&role, "role", "", "role of the service principal ('certvault role list')")
	create.Flags().StringVar(&scope, "scope", "", "scope of --role: /, /secrets, /secrets/NAME or /certificates/web-*")
	create.Flags().StringVar(&certFile, "cert-file", "", "PEM certificate(s) to register instead of a client secret")
	create.Flags().StringSliceVar(&agentGroups, "agent-group", nil, "agent group whose agents may get its tokens for the applications on their machines (repeatable)")
	c.AddCommand(create)

	var setGroups []string
	var noGroups bool
	update := &cobra.Command{
		Use:   "update NAME (--agent-group GROUP... | --no-agent-groups)",
		Short: "Change which agent groups may get a service principal's tokens",
		Example: `  certvault sp update billing --agent-group web --agent-group batch
  certvault sp update billing --no-agent-groups`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if (len(setGroups) == 0) == !noGroups {
				return usageError{errors.New("give --agent-group (the whole new list) or --no-agent-groups")}
			}
			body := map[string]any{"agent_groups": append([]string{}, setGroups...)}
			return g.show(cmd, out, http.MethodPatch, "/v1/service-principals/"+url.PathEscape(a[0]), body, decodeServicePrincipal(out))
		},
	}
	update.Flags().StringSliceVar(&setGroups, "agent-group", nil, "agent group whose agents may get its tokens (repeatable; replaces the list)")
	update.Flags().BoolVar(&noGroups, "no-agent-groups", false, "no agent may get its tokens")
	c.AddCommand(update)

	c.AddCommand(&cobra.Command{
		Use: "list", Short: "List service principals (never their secrets)", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.show(cmd, out, http.MethodGet, "/v1/service-principals", nil, func(raw json.RawMessage) error {
				var res struct{ Value []servicePrincipal }
				if err := json.Unmarshal(raw, &res); err != nil {
					return fmt.Errorf("decode the vault's answer: %w", err)
				}
				tw := table(out)
				fmt.Fprintln(tw, "NAME\tCLIENT ID\tCREDENTIAL\tROLES\tCREATED")
				for _, sp := range res.Value {
					cred := fmt.Sprintf("%d secret(s)", len(sp.Secrets))
					if len(sp.Certificates) > 0 {
						cred = fmt.Sprintf("%d certificate(s)", len(sp.Certificates))
					}
					var roles []string
					for _, a := range sp.Assignments {
						roles = append(roles, a.Role+" at "+a.Scope)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sp.Name, sp.ClientID, cred, strings.Join(roles, "; "), fmtTime(&sp.Created))
				}
				return tw.Flush()
			})
		},
	})
	c.AddCommand(&cobra.Command{
		Use: "show NAME", Short: "Show a service principal (never its secret)", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.show(cmd, out, http.MethodGet, "/v1/service-principals/"+url.PathEscape(a[0]), nil, decodeServicePrincipal(out))
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a service principal and its role assignments",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := g.call(cmd, http.MethodDelete, "/v1/service-principals/"+url.PathEscape(a[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "deleted service principal %s\n", a[0])
			return nil
		},
	})
	secret := &cobra.Command{Use: "secret", Short: "A service principal's client secret"}
	secret.AddCommand(&cobra.Command{
		Use:   "rotate NAME",
		Short: "Give a service principal a new client secret (printed once); the old one stops working at once",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.show(cmd, out, http.MethodPost, "/v1/service-principals/"+url.PathEscape(a[0])+"/secret", nil, decodeServicePrincipal(out))
		},
	})
	c.AddCommand(secret)
	return c
}
