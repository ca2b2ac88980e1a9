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
	"sort"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/client"
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
	var dirURL, dirCAFile, dnsSolver, dnsExec, nameserver, zone, tsigFile string
	var resolvers []string
	var propagation time.Duration
	set := &cobra.Command{
		Use:   "set NAME --provider P",
		Short: "Create or update an issuer",
		Long: `Create or update an issuer. Without --provider, update the named issuer:
only the flags given change.

Providers:
  internal    a CA held by the vault (--ca-subject, --ca-import, --ca-intermediate)
  acme        any ACME CA (RFC 8555): --directory-url, and for External Account
              Binding --account-id (EAB key id) and --api-key-file (EAB HMAC key)
  DigiCert    ACME with DigiCert's directory preset
  GlobalSign  ACME with GlobalSign's directory preset

The vault generates and keeps the ACME account key; the account is registered
on first use ('certvault issuer check NAME' does it on demand). Credentials and
TSIG keys are write-only: no command shows them again.

DNS-01 challenges are answered by the issuer's solver:
  none     the CA account's domains are pre-validated (DigiCert, GlobalSign OV/EV)
  exec     runs PROGRAM present|cleanup FQDN VALUE on the leader node
  rfc2136  dynamic update, signed with a TSIG key, to the zone's primary server
With --dns-resolver the vault waits until those resolvers see the TXT record
before it asks the CA to validate.`,
		Example: `  certvault issuer set digiCert01 --provider DigiCert --account-id 1111111 --api-key-file digicert.key --org-id 111111
  certvault issuer set le --provider acme --directory-url https://acme-v02.api.letsencrypt.org/directory \
      --dns-solver rfc2136 --rfc2136-nameserver 192.0.2.53:53 --tsig-key-file acme-update.key --dns-resolver 192.0.2.53:53
  certvault issuer set corp-acme --provider acme --directory-url https://acme.corp.example/dir --directory-ca-file corp-root.pem \
      --dns-solver exec --dns-exec /usr/local/bin/acme-dns-hook
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
				key := strings.TrimSpace(string(k))
				if key == "" {
					return fmt.Errorf("--api-key-file %s is empty: put the CA account's API key in it (for ACME External Account Binding, the EAB HMAC key, base64url, as the CA shows it); nothing was changed", apiKeyFile)
				}
				creds["pwd"] = key
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
			acmeBody, err := acmeRequestBody(cmd, dirURL, dirCAFile, dnsSolver, dnsExec, nameserver, zone, tsigFile, resolvers, propagation)
			if err != nil {
				return err
			}
			if acmeBody != nil {
				body["acme"] = acmeBody
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
				defer confirm(cmd, out, g, "wrote the CSR of CA %s (PEM) to %s\n", a[0], csrOut)
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
	f.StringVar(&caKty, "ca-kty", "EC", "internal: CA key type: EC or RSA, or EC-HSM / RSA-HSM to keep the CA key in the vault's HSM")
	f.StringVar(&caCurve, "ca-curve", "", "internal: CA curve (default P-256)")
	f.IntVar(&caMonths, "ca-validity-months", 120, "internal: CA validity")
	f.StringVar(&caImport, "ca-import", "", "internal: import a CA: PEM file with the CA certificate (chain) and its key")
	f.BoolVar(&intermediate, "ca-intermediate", false, "internal: make a key and CSR for a parent CA to sign (see --csr-out, --ca-merge)")
	f.StringVar(&csrOut, "csr-out", "", "internal intermediate: write the CA's CSR (PEM) to this file")
	f.StringVar(&caMerge, "ca-merge", "", "internal intermediate: PEM file with the signed CA certificate (and the parent chain)")
	f.BoolVar(&disabled, "disabled", false, "disable the issuer (policies naming it cannot issue)")
	f.StringVar(&dirURL, "directory-url", "", "acme: the CA's ACME directory URL (preset for DigiCert and GlobalSign)")
	f.StringVar(&dirCAFile, "directory-ca-file", "", "acme: PEM bundle of the CA that signed the ACME server's TLS certificate (a private CA)")
	f.StringVar(&dnsSolver, "dns-solver", "", "acme: dns-01 solver: rfc2136, exec or none (default none)")
	f.StringVar(&dnsExec, "dns-exec", "", "acme, exec solver: absolute path of the program, run as PROGRAM present|cleanup FQDN VALUE")
	f.StringVar(&nameserver, "rfc2136-nameserver", "", "acme, rfc2136 solver: the zone's primary server, HOST:PORT")
	f.StringVar(&zone, "rfc2136-zone", "", "acme, rfc2136 solver: the zone to update (default: found with an SOA query)")
	f.StringVar(&tsigFile, "tsig-key-file", "", "acme, rfc2136 solver: TSIG key file as tsig-keygen writes it (write-only)")
	f.StringSliceVar(&resolvers, "dns-resolver", nil, "acme: resolver HOST:PORT that must see the TXT record before validation (repeatable)")
	f.DurationVar(&propagation, "propagation-timeout", 0, "acme: how long to wait for --dns-resolver to see the record (default 2m)")
	c.AddCommand(set)
	c.AddCommand(issuerCheckCmd(g, out))

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
		ACME          *struct {
			DirectoryURL string `json:"directory_url"`
			DirectoryCA  string `json:"directory_ca"`
			AccountURL   string `json:"account_url"`
			DNS          struct {
				Solver      string   `json:"solver"`
				Exec        string   `json:"exec"`
				Nameserver  string   `json:"nameserver"`
				Zone        string   `json:"zone"`
				TSIGKeyName string   `json:"tsig_key_name"`
				TSIGAlg     string   `json:"tsig_algorithm"`
				Resolvers   []string `json:"resolvers"`
				Propagation int      `json:"propagation_timeout_seconds"`
			} `json:"dns"`
		} `json:"acme"`
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
	if a := is.ACME; a != nil {
		fmt.Fprintf(tw, "directory:\t%s\n", a.DirectoryURL)
		if a.DirectoryCA != "" {
			fmt.Fprintf(tw, "directory CA:\t%s\n", a.DirectoryCA)
		}
		acct := a.AccountURL
		if acct == "" {
			acct = "not registered yet (registered on first use, or by 'certvault issuer check')"
		}
		fmt.Fprintf(tw, "account:\t%s\n", acct)
		fmt.Fprintf(tw, "dns solver:\t%s\n", a.DNS.Solver)
		if a.DNS.Exec != "" {
			fmt.Fprintf(tw, "dns exec:\t%s\n", a.DNS.Exec)
		}
		if a.DNS.Nameserver != "" {
			fmt.Fprintf(tw, "rfc2136 server:\t%s\n", a.DNS.Nameserver)
		}
		if a.DNS.Zone != "" {
			fmt.Fprintf(tw, "rfc2136 zone:\t%s\n", a.DNS.Zone)
		}
		if a.DNS.TSIGKeyName != "" {
			fmt.Fprintf(tw, "tsig key:\t%s (%s; secret write-only)\n", a.DNS.TSIGKeyName, a.DNS.TSIGAlg)
		}
		if len(a.DNS.Resolvers) > 0 {
			fmt.Fprintf(tw, "dns resolvers:\t%s (wait up to %ds)\n", strings.Join(a.DNS.Resolvers, ", "), a.DNS.Propagation)
		}
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
			err = cl.Do(cmd.Context(), http.MethodGet, "/certificates/contacts", nil, &res)
			var ae *client.Error
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "ContactsNotFound" {
				// Key Vault answers 404 when no contacts are set: for the
				// CLI that is an empty list, not an error.
				if g.output == "json" {
					return printJSON(out, map[string]any{"contacts": []any{}})
				}
				fmt.Fprintln(out, "no contacts set (add them with 'certvault contacts set EMAIL...')")
				return nil
			}
			if err != nil {
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

// acmeRequestBody builds the issuer request's "acme" member from the
// flags given (nil when none was).
func acmeRequestBody(cmd *cobra.Command, dirURL, dirCAFile, dnsSolver, dnsExec, nameserver, zone, tsigFile string, resolvers []string, propagation time.Duration) (map[string]any, error) {
	body := map[string]any{}
	if dirURL != "" {
		body["directory_url"] = dirURL
	}
	if dirCAFile != "" {
		b, err := os.ReadFile(dirCAFile)
		if err != nil {
			return nil, fmt.Errorf("--directory-ca-file: %w", err)
		}
		body["directory_ca_pem"] = string(b)
	}
	dns := map[string]any{}
	if dnsSolver != "" {
		dns["solver"] = dnsSolver
	}
	if dnsExec != "" {
		dns["exec"] = dnsExec
	}
	if nameserver != "" {
		dns["nameserver"] = nameserver
	}
	if zone != "" {
		dns["zone"] = zone
	}
	if tsigFile != "" {
		b, err := os.ReadFile(tsigFile)
		if err != nil {
			return nil, fmt.Errorf("--tsig-key-file: %w", err)
		}
		dns["tsig_key"] = string(b)
	}
	if cmd.Flags().Changed("dns-resolver") {
		dns["resolvers"] = resolvers
	}
	if propagation != 0 {
		if propagation < time.Second {
			return nil, usageError{errors.New("--propagation-timeout must be at least 1s")}
		}
		dns["propagation_timeout_seconds"] = int(propagation / time.Second)
	}
	if len(dns) > 0 {
		body["dns"] = dns
	}
	if len(body) == 0 {
		return nil, nil
	}
	return body, nil
}

// issuerCheckCmd is 'certvault issuer check NAME'.
func issuerCheckCmd(g *globals, out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "check NAME",
		Short: "Contact an ACME issuer's CA: directory, External Account Binding, account",
		Long: `Contact the issuer's CA now: fetch its ACME directory, register the account
if it is not registered yet (with External Account Binding when configured),
or fetch the account's status, and report what is wrong. Exits 1 when the
issuer cannot enroll.`,
		Example: "  certvault issuer check digiCert01",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var rep struct {
				Issuer         string            `json:"issuer"`
				OK             bool              `json:"ok"`
				DirectoryURL   string            `json:"directory_url"`
				EABRequired    bool              `json:"eab_required"`
				TermsOfService string            `json:"terms_of_service"`
				RenewalInfo    bool              `json:"renewal_info"`
				Profiles       map[string]string `json:"profiles"`
				AccountURL     string            `json:"account_url"`
				AccountStatus  string            `json:"account_status"`
				DNSSolver      string            `json:"dns_solver"`
				Reached        bool              `json:"directory_reached"`
				Error          *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPost, "/certificates/issuers/"+url.PathEscape(a[0])+"/check", nil, &raw); err != nil {
				return err
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				return err
			}
			if g.output == "json" {
				if err := printJSON(out, raw); err != nil {
					return err
				}
			} else {
				tw := table(out)
				fmt.Fprintf(tw, "directory:\t%s\n", rep.DirectoryURL)
				if rep.Reached {
					fmt.Fprintf(tw, "external account binding:\t%s\n", map[bool]string{true: "required", false: "not required"}[rep.EABRequired])
					if rep.TermsOfService != "" {
						fmt.Fprintf(tw, "terms of service:\t%s\n", rep.TermsOfService)
					}
					fmt.Fprintf(tw, "renewal information (ARI):\t%s\n", map[bool]string{true: "offered", false: "not offered"}[rep.RenewalInfo])
				}
				if len(rep.Profiles) > 0 {
					var ps []string
					for p := range rep.Profiles {
						ps = append(ps, p)
					}
					sort.Strings(ps)
					fmt.Fprintf(tw, "profiles:\t%s\n", strings.Join(ps, ", "))
				}
				if rep.AccountURL != "" {
					fmt.Fprintf(tw, "account:\t%s (%s)\n", rep.AccountURL, rep.AccountStatus)
				}
				fmt.Fprintf(tw, "dns solver:\t%s\n", rep.DNSSolver)
				if rep.OK {
					fmt.Fprintf(tw, "result:\tok\n")
				} else if rep.Error != nil {
					fmt.Fprintf(tw, "result:\t%s: %s\n", rep.Error.Code, rep.Error.Message)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if !rep.OK {
				return fmt.Errorf("issuer %s cannot enroll", a[0])
			}
			return nil
		},
	}
}
