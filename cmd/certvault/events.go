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

func eventsCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "events",
		Short: "Webhook subscriptions to certificate and secret events, and their deliveries",
		Long: `Subscribe webhooks to the vault's events. Each event is a CloudEvents 1.0
JSON document with Key Vault's type names (Microsoft.KeyVault.CertificateNewVersionCreated,
...), POSTed with the header X-Certvault-Signature: sha256=HEX, the
HMAC-SHA256 of the body under the subscription's secret. Delivery is at
least once: an event is written to Raft with the change it reports, and
retried with growing intervals until the receiver answers 2xx; after 10
failed attempts it is kept as a dead letter ('events deliveries --failed').

Types: CertificateNewVersionCreated, CertificateNearExpiry, CertificateExpired,
SecretNewVersionCreated, SecretNearExpiry, SecretExpired, CertificateRenewalFailed.`,
	}
	var types []string
	var secretFile string
	sub := &cobra.Command{
		Use:     "subscribe URL --types T1,T2 --secret-file F",
		Short:   "Subscribe a webhook",
		Example: "  certvault events subscribe https://hooks.example.com/certvault --types CertificateNewVersionCreated,CertificateRenewalFailed --secret-file hook.secret",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if secretFile == "" {
				return usageError{errors.New("--secret-file is required: the receiver checks signatures with the secret in it")}
			}
			secret, err := os.ReadFile(secretFile)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			body := map[string]any{"url": a[0], "types": types, "secret": strings.TrimSpace(string(secret))}
			if err := cl.Do(cmd.Context(), http.MethodPost, "/v1/events/subscriptions", body, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, raw)
			}
			var s struct{ ID string }
			json.Unmarshal(raw, &s)
			fmt.Fprintf(out, "subscribed %s as %s\n", a[0], s.ID)
			return nil
		},
	}
	sub.Flags().StringSliceVar(&types, "types", nil, "event types (comma-separated)")
	sub.Flags().StringVar(&secretFile, "secret-file", "", "file holding the HMAC secret (at least 16 characters)")
	sub.MarkFlagRequired("types")
	c.AddCommand(sub)

	c.AddCommand(&cobra.Command{
		Use: "list", Short: "List the subscriptions", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, "/v1/events/subscriptions", nil, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, raw)
			}
			var res struct {
				Value []struct {
					ID, URL string
					Types   []string
				}
			}
			json.Unmarshal(raw, &res)
			tw := table(out)
			fmt.Fprintln(tw, "ID\tURL\tTYPES")
			for _, s := range res.Value {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.URL, strings.Join(s.Types, ","))
			}
			return tw.Flush()
		},
	})
	c.AddCommand(&cobra.Command{
		Use: "unsubscribe ID", Short: "Remove a subscription", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Do(cmd.Context(), http.MethodDelete, "/v1/events/subscriptions/"+url.PathEscape(a[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "unsubscribed %s\n", a[0])
			return nil
		},
	})
	var failed bool
	del := &cobra.Command{
		Use:   "deliveries",
		Short: "Deliveries (events and mail) not yet done: pending, retrying, dead",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			path := "/v1/events/deliveries"
			if failed {
				path += "?failed=true"
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, path, nil, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, raw)
			}
			var res struct {
				Value []struct {
					ID, Subscription, Type, Subject, State string
					Attempts                               int
					LastError                              string `json:"last_error"`
					Created                                int64
				}
			}
			json.Unmarshal(raw, &res)
			tw := table(out)
			fmt.Fprintln(tw, "EVENT\tTYPE\tSUBJECT\tSUBSCRIPTION\tSTATE\tATTEMPTS\tCREATED\tLAST ERROR")
			for _, d := range res.Value {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Type, d.Subject, d.Subscription, d.State, d.Attempts,
					time.Unix(d.Created, 0).UTC().Format("2006-01-02 15:04:05"), d.LastError)
			}
			return tw.Flush()
		},
	}
	del.Flags().BoolVar(&failed, "failed", false, "only deliveries that failed at least once (retrying or dead)")
	c.AddCommand(del)
	return c
}
