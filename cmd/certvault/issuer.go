package main

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func issuerCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "issuer",
		Short: "Configure certificate issuers (CA accounts and internal CAs)",
		Long: `Configure the issuers that certificate policies name. This is the central
CA-account team's surface: credentials are write-only and never shown again.

The seed's Set-AzureKeyVaultCertificateIssuer maps onto:
  certvault issuer set digiCert01 --provider DigiCert --account-id 1111111 \
      --api-key-file digicert.key --org-id 111111`,
	}
	var provider, accountID, apiKeyFile, orgID, caSubject, caImport, caKty, caCurve, caMerge, csrOut string
	var intermediate bool
	var admins []string
	var caMonths int
	var disabled bool
	set := &cobra.Command{
		Use:   "set NAME --provider P",
		Short: "Create or update an issuer",
		Example: `  certvault issuer set digiCert01 --provider DigiCert --account-id 1111111 --api-key-file digicert.key --org-id 111111
  certvault issuer set corp-ca --provider internal --ca-subject "CN=Corp Issuing CA, O=Corp"
  certvault issuer set legacy-ca --provider internal --ca-import legacy-ca-and-key.pem
  certvault issuer set corp-int --provider internal --ca-subject "CN=Corp Intermediate" --ca-intermediate --csr-out corp-int.csr
  certvault issuer set corp-int --ca-merge corp-int-signed-chain.pem`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			body := map[string]any{"provider": provider}
			creds := map[string]string{}
			if accountID != "" {
				creds["account_id"] = accountID
			}
			if apiKeyFile != "" {
				k, err := os.ReadFile(apiKeyFile)
				if err != nil {
					return err
				}
				creds["pwd"] = strings.TrimSpace(string(k))
			}
			if len(creds) > 0 {
				body["credentials"] = creds
			}
			if orgID != "" || len(admins) > 0 {
				org := map[string]any{"id": orgID}
				var ad []map[string]string
				for _, e := range admins {
					ad = append(ad, map[string]string{"email": e})
				}
				if ad != nil {
					org["admin_details"] = ad
				}
				body["org_details"] = org
			}
			if cmd.Flags().Changed("disabled") {
				body["attributes"] = map[string]bool{"enabled": !disabled}
			}
			if caSubject != "" && caImport != "" {
				return usageError{errors.New("give --ca-subject or --ca-import, not both")}
			}
			if caSubject != "" {
				body["ca"] = map[string]any{"subject": caSubject, "kty": caKty, "crv": caCurve, "validity_months": caMonths, "intermediate": intermediate}
			}
			if caMerge != "" {
				pemData, err := os.ReadFile(caMerge)
				if err != nil {
					return err
				}
				body["ca"] = map[string]any{"merge_pem": string(pemData)}
			}
			if caImport != "" {
				pemData, err := os.ReadFile(caImport)
				if err != nil {
					return err
				}
				body["ca"] = map[string]any{"import_pem": string(pemData)}
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			method := http.MethodPut
			if provider == "" {
				method = http.MethodPatch
				delete(body, "provider")
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), method, "/certificates/issuers/"+url.PathEscape(a[0]), body, &res); err != nil {
				return err
			}
			if csrOut != "" {
				var v struct {
					CSR []byte `json:"ca_csr"`
				}
				json.Unmarshal(res, &v)
				if len(v.CSR) == 0 {
					return fmt.Errorf("issuer %s has no CSR waiting to be signed", a[0])
				}
				if err := os.WriteFile(csrOut, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: v.CSR}), 0o644); err != nil {
					return err
				}
			}
			return printIssuer(out, g, res)
		},
	}
	f := set.Flags()
	f.StringVar(&provider, "provider", "", "internal, DigiCert, GlobalSign or acme (omit to update an existing issuer)")
	f.StringVar(&accountID, "account-id", "", "CA account id")
	f.StringVar(&apiKeyFile, "api-key-file", "", "file holding the CA account's API key (write-only)")
	f.StringVar(&orgID, "org-id", "", "organisation id at the CA")
	f.StringSliceVar(&admins, "admin-email", nil, "organisation administrator email (repeatable)")
	f.StringVar(&caSubject, "ca-subject", "", "internal: create a root CA with this subject")
	f.StringVar(&caKty, "ca-kty", "EC", "internal: CA key type (EC or RSA)")
	f.StringVar(&caCurve, "ca-curve", "", "internal: CA curve (default P-256)")
	f.IntVar(&caMonths, "ca-validity-months", 120, "internal: CA validity")
	f.StringVar(&caImport, "ca-import", "", "internal: import a CA: PEM file with the CA certificate (chain) and its key")
	f.BoolVar(&intermediate, "ca-intermediate", false, "internal: make a key and CSR for a parent CA to sign (see --csr-out, --ca-merge)")
	f.StringVar(&csrOut, "csr-out", "", "internal intermediate: write the CA's CSR (PEM) to this file")
	f.StringVar(&caMerge, "ca-merge", "", "internal intermediate: PEM file with the signed CA certificate (and the parent chain)")
	f.BoolVar(&disabled, "disabled", false, "disable the issuer (policies naming it cannot issue)")
	c.AddCommand(set)

	c.AddCommand(&cobra.Command{
		Use:   "get NAME",
		Short: "Show an issuer (never its credentials' secret)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, "/certificates/issuers/"+url.PathEscape(a[0]), nil, &res); err != nil {
				return err
			}
			return printIssuer(out, g, res)
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List issuers",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd.Context(), cl, "/certificates/issuers?maxresults=25")
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, items)
			}
			tw := table(out)
			fmt.Fprintln(tw, "NAME\tPROVIDER")
			for _, raw := range items {
				var it struct{ ID, Provider string }
				json.Unmarshal(raw, &it)
				fmt.Fprintf(tw, "%s\t%s\n", it.ID[strings.LastIndex(it.ID, "/")+1:], it.Provider)
			}
			return tw.Flush()
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an issuer",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Do(cmd.Context(), http.MethodDelete, "/certificates/issuers/"+url.PathEscape(a[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "deleted issuer %s\n", a[0])
			return nil
		},
	})
	return c
}

func printIssuer(out io.Writer, g *globals, raw json.RawMessage) error {
	if g.output == "json" {
		return printJSON(out, raw)
	}
	var is struct {
		ID          string `json:"id"`
		Provider    string `json:"provider"`
		Credentials *struct {
			AccountID string `json:"account_id"`
		} `json:"credentials"`
		OrgDetails *struct {
			ID     string `json:"id"`
			Admins []struct {
				Email string `json:"email"`
			} `json:"admin_details"`
		} `json:"org_details"`
		Attributes *struct {
			Enabled *bool `json:"enabled"`
		} `json:"attributes"`
		CAFingerprint string `json:"ca_fingerprint"`
		CRL           string `json:"crl_url"`
		CSR           []byte `json:"ca_csr"`
	}
	if err := json.Unmarshal(raw, &is); err != nil {
		return err
	}
	tw := table(out)
	fmt.Fprintf(tw, "id:\t%s\n", is.ID)
	fmt.Fprintf(tw, "provider:\t%s\n", is.Provider)
	if is.Attributes != nil && is.Attributes.Enabled != nil {
		fmt.Fprintf(tw, "enabled:\t%v\n", *is.Attributes.Enabled)
	}
	if is.Credentials != nil {
		fmt.Fprintf(tw, "account id:\t%s (api key: write-only)\n", is.Credentials.AccountID)
	}
	if is.OrgDetails != nil {
		fmt.Fprintf(tw, "organisation:\t%s\n", is.OrgDetails.ID)
		for _, a := range is.OrgDetails.Admins {
			fmt.Fprintf(tw, "admin:\t%s\n", a.Email)
		}
	}
	if is.CSR != nil {
		fmt.Fprintf(tw, "CA:\twaiting for its signed certificate (write the CSR with --csr-out, merge with --ca-merge)\n")
	}
	if is.CAFingerprint != "" {
		fmt.Fprintf(tw, "CA fingerprint:\t%s\n", is.CAFingerprint)
		fmt.Fprintf(tw, "CRL:\t%s\n", is.CRL)
	}
	return tw.Flush()
}

func contactsCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "contacts", Short: "The vault's certificate contacts (who is mailed about renewals)"}
	var names, phones []string
	set := &cobra.Command{
		Use:     "set EMAIL...",
		Short:   "Replace the contact list",
		Example: "  certvault contacts set pki-team@example.com oncall@example.com",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			var list []map[string]string
			for i, e := range a {
				ct := map[string]string{"email": e}
				if i < len(names) {
					ct["name"] = names[i]
				}
				if i < len(phones) {
					ct["phone"] = phones[i]
				}
				list = append(list, ct)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPut, "/certificates/contacts", map[string]any{"contacts": list}, &res); err != nil {
				return err
			}
			return printContacts(out, g, res)
		},
	}
	set.Flags().StringSliceVar(&names, "name", nil, "names, in the order of the emails")
	set.Flags().StringSliceVar(&phones, "phone", nil, "phone numbers, in the order of the emails")
	c.AddCommand(set)
	c.AddCommand(&cobra.Command{
		Use: "list", Short: "Show the contacts", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, "/certificates/contacts", nil, &res); err != nil {
				return err
			}
			return printContacts(out, g, res)
		},
	})
	c.AddCommand(&cobra.Command{
		Use: "delete", Short: "Remove all contacts", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Do(cmd.Context(), http.MethodDelete, "/certificates/contacts", nil, nil); err != nil {
				return err
			}
			fmt.Fprintln(out, "deleted all contacts")
			return nil
		},
	})
	return c
}

func printContacts(out io.Writer, g *globals, raw json.RawMessage) error {
	if g.output == "json" {
		return printJSON(out, raw)
	}
	var cs struct {
		Contacts []struct{ Email, Name, Phone string } `json:"contacts"`
	}
	json.Unmarshal(raw, &cs)
	tw := table(out)
	fmt.Fprintln(tw, "EMAIL\tNAME\tPHONE")
	for _, c := range cs.Contacts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Email, c.Name, c.Phone)
	}
	return tw.Flush()
}
