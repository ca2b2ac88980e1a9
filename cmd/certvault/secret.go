package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
)

func secretCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "secret",
		Short: "Set, read and manage secrets (Key Vault secrets API)",
		Long: `Set, read and manage secrets. A certificate's managed secret (same name)
holds its private key and chain, as PKCS#12 (base64, no password) or PEM
according to the policy:

  certvault secret get www --out www.pfx`,
	}
	var value, file, contentType string
	set := &cobra.Command{
		Use:   "set NAME (--value V | --file F)",
		Short: "Store a new version of a secret",
		Example: `  certvault secret set db-password --file ./db-password.txt
  printf %s "$PW" | certvault secret set db-password --file -`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if (value == "") == (file == "") {
				return usageError{fmt.Errorf("give exactly one of --value or --file")}
			}
			if file != "" {
				var data []byte
				var err error
				if file == "-" {
					data, err = io.ReadAll(os.Stdin)
				} else {
					data, err = os.ReadFile(file)
				}
				if err != nil {
					return err
				}
				value = string(data)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			body := map[string]any{"value": value}
			if contentType != "" {
				body["contentType"] = contentType
			}
			var resp map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPut, "/secrets/"+url.PathEscape(a[0]), body, &resp); err != nil {
				return err
			}
			delete(resp, "value")
			if g.output == "json" {
				return printJSON(out, resp)
			}
			fmt.Fprintf(out, "stored %s\n", resp["id"])
			return nil
		},
	}
	set.Flags().StringVar(&value, "value", "", "the secret value (visible in ps: prefer --file)")
	set.Flags().StringVar(&file, "file", "", "read the value from this file ('-' for stdin)")
	set.Flags().StringVar(&contentType, "content-type", "", "content type recorded with the secret")
	c.AddCommand(set)

	var version, outFile string
	var raw bool
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Read a secret's value (current version unless --version)",
		Example: `  certvault secret get db-password --out /run/app/db-password
  certvault secret get www --out www.pfx      # a certificate's key and chain
  certvault secret get db-password -o json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Value       string `json:"value"`
				ID          string `json:"id"`
				ContentType string `json:"contentType"`
				Attributes  struct {
					Updated int64 `json:"updated"`
				} `json:"attributes"`
			}
			var body json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, "/secrets/"+url.PathEscape(a[0])+"/"+url.PathEscape(version), nil, &body); err != nil {
				return err
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				return err
			}
			switch {
			case outFile != "":
				data := []byte(resp.Value)
				what := "value"
				if resp.ContentType == "application/x-pkcs12" && !raw {
					// Key Vault returns PKCS#12 as base64: write the .pfx.
					if data, err = base64.StdEncoding.DecodeString(resp.Value); err != nil {
						return fmt.Errorf("the PKCS#12 value is not base64: %w", err)
					}
					what = "PKCS#12 (no password)"
				}
				if _, err := writeFileFrom(outFile, bytes.NewReader(data)); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "wrote %s to %s (mode 0600)\n", what, outFile)
				return nil
			case g.output == "json":
				return printJSON(out, body)
			default:
				fmt.Fprintf(os.Stderr, "%s (updated %s)\n", resp.ID, time.Unix(resp.Attributes.Updated, 0).UTC().Format(time.RFC3339))
				fmt.Fprintln(out, resp.Value)
				return nil
			}
		},
	}
	get.Flags().StringVar(&version, "version", "", "a specific version")
	get.Flags().StringVar(&outFile, "out", "", "write the value to this file (mode 0600) instead of stdout; a PKCS#12 is written as a binary .pfx")
	get.Flags().BoolVar(&raw, "raw", false, "with --out, write a PKCS#12 as the base64 text Key Vault returns")
	c.AddCommand(get)
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List secrets (certificates' managed secrets included)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd.Context(), cl, "/secrets?maxresults=25")
			if err != nil {
				return err
			}
			return printItems(out, g, items, false)
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "versions NAME",
		Short: "List a secret's versions",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd.Context(), cl, "/secrets/"+url.PathEscape(a[0])+"/versions?maxresults=25")
			if err != nil {
				return err
			}
			return printItems(out, g, items, true)
		},
	})
	for _, lc := range lifecycleCmds(g, out, "secrets", "secret") {
		c.AddCommand(lc)
	}
	return c
}
