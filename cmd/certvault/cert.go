package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/serial"
	"github.com/spf13/cobra"
)

func certCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "cert",
		Short: "Create, enroll, import and manage certificates",
		Long: `Manage certificates, as Key Vault's certificate cmdlets do. The seed's
walkthrough maps onto:

  certvault cert policy new --subject CN=www.example.com --san www.example.com \
      --issuer Self --validity-months 12 --renew-days-before-expiry 60 > policy.json
  certvault cert create www --policy policy.json
  certvault cert operation www --wait
  certvault cert get www`,
	}
	c.AddCommand(policyCmd(g, out), certCreateCmd(g, out), certOperationCmd(g, out), certGetCmd(g, out),
		certDownloadCmd(g, out), certListCmd(g, out), certVersionsCmd(g, out), certSetCmd(g, out),
		certImportCmd(g, out), certMergeCmd(g, out), certRevokeCmd(g, out))
	for _, lc := range lifecycleCmds(g, out, "certificates", "cert") {
		c.AddCommand(lc)
	}
	return c
}

func policyCmd(g *globals, out io.Writer) *cobra.Command {
	pc := &cobra.Command{Use: "policy", Short: "Write or show certificate policies"}
	var (
		subject, issuer, certType, kty, curve, contentType, validity, outFile, profile string
		sans, emails, upns, ekus, keyUsage                                             []string
		months, keySize, renewPct, renewDays, emailDays                                int
		exportable, reuseKey                                                           bool
	)
	nw := &cobra.Command{
		Use:   "new",
		Short: "Print a new certificate policy as JSON (Key Vault's format)",
		Long: `Print a certificate policy in Key Vault's JSON, ready for 'cert create --policy'.
The output is the same JSON Key Vault's own tools produce and accept.`,
		Example: `  certvault cert policy new --subject CN=www.example.com --san www.example.com \
      --issuer Self --kty EC --curve P-256 --validity 47d --renew-percentage 66 > policy.json
  certvault cert policy new --subject "CN=api, O=Contoso" --issuer Unknown --email-days-before-expiry 30`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := &keyvault.Policy{
				KeyProperties:    &keyvault.KeyProperties{KeyType: kty, Curve: curve, KeySize: keySize},
				SecretProperties: &keyvault.SecretProperties{ContentType: contentType},
				X509Properties:   &keyvault.X509Properties{Subject: subject, EKUs: ekus, KeyUsage: keyUsage, ValidityInMonths: months, ValidityDuration: validity},
				Issuer:           &keyvault.IssuerParameters{Name: issuer, CertificateType: certType, Profile: profile},
			}
			if cmd.Flags().Changed("exportable") {
				p.KeyProperties.Exportable = &exportable
			}
			if cmd.Flags().Changed("reuse-key") {
				p.KeyProperties.ReuseKey = &reuseKey
			}
			if validity != "" && cmd.Flags().Changed("validity-months") {
				return usageError{errors.New("give --validity or --validity-months, not both")}
			}
			if len(sans)+len(emails)+len(upns) > 0 {
				p.X509Properties.SANs = &keyvault.SubjectAlternativeNames{DNSNames: sans, Emails: emails, UPNs: upns}
			}
			if renewPct != 0 && renewDays != 0 {
				return usageError{errors.New("give --renew-percentage or --renew-days-before-expiry, not both")}
			}
			if renewPct != 0 {
				p.LifetimeActions = append(p.LifetimeActions, keyvault.LifetimeAction{Trigger: keyvault.Trigger{LifetimePercentage: renewPct}, Action: keyvault.Action{ActionType: keyvault.ActionAutoRenew}})
			}
			if renewDays != 0 {
				p.LifetimeActions = append(p.LifetimeActions, keyvault.LifetimeAction{Trigger: keyvault.Trigger{DaysBeforeExpiry: renewDays}, Action: keyvault.Action{ActionType: keyvault.ActionAutoRenew}})
			}
			if emailDays != 0 {
				p.LifetimeActions = append(p.LifetimeActions, keyvault.LifetimeAction{Trigger: keyvault.Trigger{DaysBeforeExpiry: emailDays}, Action: keyvault.Action{ActionType: keyvault.ActionEmailContacts}})
			}
			if err := p.Normalize(); err != nil {
				return usageError{errors.New(strings.TrimPrefix(err.Error(), keyvault.ErrInvalidPolicy.Error()+": "))}
			}
			if outFile != "" {
				data, _ := json.MarshalIndent(p, "", "  ")
				return os.WriteFile(outFile, append(data, '\n'), 0o644)
			}
			return printJSON(out, p)
		},
	}
	f := nw.Flags()
	f.StringVar(&subject, "subject", "", "subject distinguished name, such as \"CN=www.example.com, O=Contoso\"")
	f.StringSliceVar(&sans, "san", nil, "DNS subject alternative name (repeat or comma-separate)")
	f.StringSliceVar(&emails, "email", nil, "email subject alternative name")
	f.StringSliceVar(&upns, "upn", nil, "user principal name subject alternative name")
	f.StringSliceVar(&ekus, "eku", nil, "extended key usage OID (default server and client auth)")
	f.StringSliceVar(&keyUsage, "key-usage", nil, "key usage: digitalSignature, keyEncipherment, ...")
	f.IntVar(&months, "validity-months", 0, "validity in months, 1 to 1200 (default 12; with an internal issuer, not past its CA's expiry)")
	f.StringVar(&validity, "validity", "", "short validity: 90m, 12h, 6d, 47d (instead of --validity-months)")
	f.StringVar(&issuer, "issuer", "Self", "issuer: Self, Unknown (CSR to merge) or a named issuer")
	f.StringVar(&certType, "cert-type", "", "certificate type the issuer offers, such as OV-SSL or EV-SSL")
	f.StringVar(&profile, "acme-profile", "", "ACME issuers: the CA's certificate profile, such as shortlived ('certvault issuer check' lists them)")
	f.StringVar(&kty, "kty", "RSA", "key type: RSA, EC, or RSA-HSM / EC-HSM (generated in the vault's HSM, never exportable)")
	f.StringVar(&curve, "curve", "", "EC curve: P-256, P-384, P-521")
	f.IntVar(&keySize, "key-size", 0, "RSA key size: 2048, 3072, 4096")
	f.BoolVar(&exportable, "exportable", true, "the private key may be read through the managed secret")
	f.BoolVar(&reuseKey, "reuse-key", false, "renewals keep the same key")
	f.StringVar(&contentType, "content-type", keyvault.ContentTypePKCS12, "managed secret format: application/x-pkcs12 or application/x-pem-file")
	f.IntVar(&renewPct, "renew-percentage", 0, "AutoRenew at this percentage of the lifetime (1-99)")
	f.IntVar(&renewDays, "renew-days-before-expiry", 0, "AutoRenew this many days before expiry (at most 27 per month of validity, or less than --validity)")
	f.IntVar(&emailDays, "email-days-before-expiry", 0, "email the contacts this many days before expiry (same bounds as --renew-days-before-expiry)")
	f.StringVar(&outFile, "out", "", "write the policy to this file instead of stdout")
	pc.AddCommand(nw)

	pc.AddCommand(&cobra.Command{
		Use:   "get NAME",
		Short: "Show a certificate's policy",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var p json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, "/certificates/"+url.PathEscape(a[0])+"/policy", nil, &p); err != nil {
				return err
			}
			return printJSON(out, p)
		},
	})
	var setFile string
	ps := &cobra.Command{
		Use:     "set NAME --policy FILE",
		Short:   "Replace parts of a certificate's policy (the fields present in FILE)",
		Example: "  certvault cert policy set www --policy renew-at-60-days.json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			p, err := readPolicy(setFile)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPatch, "/certificates/"+url.PathEscape(a[0])+"/policy", p, &res); err != nil {
				return err
			}
			return printJSON(out, res)
		},
	}
	ps.Flags().StringVar(&setFile, "policy", "", "policy JSON file")
	ps.MarkFlagRequired("policy")
	pc.AddCommand(ps)
	return pc
}

// readPolicy reads a policy JSON file ("-" for stdin) in the REST form or
// in the camelCase form Key Vault's tooling prints (az keyvault certificate
// get-default-policy), or a whole certificate bundle, and returns the
// REST form.
func readPolicy(path string) (*keyvault.Policy, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	p, err := keyvault.ParsePolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), keyvault.ErrInvalidPolicy.Error()+": "))
	}
	return p, nil
}

func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--tag %q: use KEY=VALUE", t)}
		}
		m[k] = v
	}
	return m, nil
}

func certCreateCmd(g *globals, out io.Writer) *cobra.Command {
	var policyFile string
	var tags []string
	var wait bool
	c := &cobra.Command{
		Use:   "create NAME --policy FILE",
		Short: "Create a certificate (a new version if NAME exists) from a policy",
		Example: `  certvault cert create www --policy policy.json --wait
  certvault cert policy new --subject CN=api --issuer Unknown | certvault cert create api --policy -`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			p, err := readPolicy(policyFile)
			if err != nil {
				return err
			}
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var op map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPost, "/certificates/"+url.PathEscape(a[0])+"/create", map[string]any{"policy": p, "tags": t}, &op); err != nil {
				return err
			}
			if wait {
				if op, err = waitOperation(cmd.Context(), cl, a[0], cmd.ErrOrStderr()); err != nil {
					return err
				}
				return waitedOperation(out, g, a[0], op)
			}
			return printOperation(out, g, op)
		},
	}
	c.Flags().StringVar(&policyFile, "policy", "", "policy JSON file ('-' for stdin), from 'cert policy new'")
	c.Flags().StringSliceVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	c.Flags().BoolVar(&wait, "wait", false, "wait until the operation is no longer in progress (exit 1 if it failed or was cancelled)")
	c.MarkFlagRequired("policy")
	return c
}

// waitOperation polls the pending operation until it leaves inProgress,
// writing each new step (status_details) to progress.
func waitOperation(ctx context.Context, cl *client.Client, name string, progress io.Writer) (map[string]any, error) {
	delay := 200 * time.Millisecond
	last := ""
	for {
		var op map[string]any
		if err := cl.Do(ctx, http.MethodGet, "/certificates/"+url.PathEscape(name)+"/pending", nil, &op); err != nil {
			return nil, err
		}
		if op["status"] != keyvault.StatusInProgress {
			return op, nil
		}
		if d, _ := op["status_details"].(string); d != "" && d != last {
			fmt.Fprintf(progress, "%s: %s\n", name, d)
			last = d
		}
		if _, hasCSR := op["csr"]; hasCSR && op["issuer"] != nil {
			if iss, _ := op["issuer"].(map[string]any); iss["name"] == keyvault.IssuerUnknown {
				return op, nil // only a merge completes it
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

// waitedOperation prints an operation waited for and fails (exit 1) when
// it ended failed or cancelled.
func waitedOperation(out io.Writer, g *globals, name string, op map[string]any) error {
	if err := printOperation(out, g, op); err != nil {
		return err
	}
	switch op["status"] {
	case keyvault.StatusFailed:
		return fmt.Errorf("the operation on %s failed", name)
	case keyvault.StatusCancelled:
		return fmt.Errorf("the operation on %s was cancelled", name)
	}
	return nil
}

func printOperation(out io.Writer, g *globals, op map[string]any) error {
	if g.output == "json" {
		return printJSON(out, op)
	}
	tw := table(out)
	fmt.Fprintf(tw, "status:\t%v\n", op["status"])
	if iss, ok := op["issuer"].(map[string]any); ok {
		fmt.Fprintf(tw, "issuer:\t%v\n", iss["name"])
	}
	if d, ok := op["status_details"]; ok && d != "" {
		fmt.Fprintf(tw, "details:\t%v\n", d)
	}
	if e, ok := op["error"].(map[string]any); ok {
		fmt.Fprintf(tw, "error:\t%v: %v\n", e["code"], e["message"])
	}
	if t, ok := op["target"]; ok {
		fmt.Fprintf(tw, "target:\t%v\n", t)
	}
	iss, _ := op["issuer"].(map[string]any)
	if csr, ok := op["csr"].(string); ok && csr != "" && op["status"] == keyvault.StatusInProgress && iss["name"] == keyvault.IssuerUnknown {
		fmt.Fprintf(tw, "csr:\tpresent (write it with --csr-out FILE, sign it, then 'cert merge')\n")
	}
	return tw.Flush()
}

func certOperationCmd(g *globals, out io.Writer) *cobra.Command {
	var wait, cancel, del bool
	var csrOut string
	c := &cobra.Command{
		Use:   "operation NAME",
		Short: "Show (or wait for, cancel, delete) a certificate's pending operation",
		Example: `  certvault cert operation www --wait
  certvault cert operation api --csr-out api.csr     # Unknown issuer: the CSR to sign
  certvault cert operation www --cancel`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			path := "/certificates/" + url.PathEscape(a[0]) + "/pending"
			var op map[string]any
			switch {
			case cancel && del:
				return usageError{errors.New("give --cancel or --delete, not both")}
			case cancel:
				err = cl.Do(cmd.Context(), http.MethodPatch, path, map[string]bool{"cancellation_requested": true}, &op)
			case del:
				err = cl.Do(cmd.Context(), http.MethodDelete, path, nil, &op)
			case wait:
				op, err = waitOperation(cmd.Context(), cl, a[0], cmd.ErrOrStderr())
			default:
				err = cl.Do(cmd.Context(), http.MethodGet, path, nil, &op)
			}
			if err != nil {
				return err
			}
			if csrOut != "" {
				s, _ := op["csr"].(string)
				der, err := base64.StdEncoding.DecodeString(s)
				if err != nil || len(der) == 0 {
					return fmt.Errorf("the operation of %s has no CSR", a[0])
				}
				if err := os.WriteFile(csrOut, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
					return err
				}
				defer confirm(cmd, out, g, "wrote the CSR of %s (PEM) to %s\n", a[0], csrOut)
			}
			if wait {
				return waitedOperation(out, g, a[0], op)
			}
			return printOperation(out, g, op)
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait until the operation is no longer in progress (exit 1 if it failed or was cancelled)")
	c.Flags().BoolVar(&cancel, "cancel", false, "request cancellation")
	c.Flags().BoolVar(&del, "delete", false, "delete the operation record (frees a name held only by it)")
	c.Flags().StringVar(&csrOut, "csr-out", "", "write the operation's CSR (PEM) to this file")
	return c
}

func versionPath(kind, name, version string) string {
	return "/" + kind + "/" + url.PathEscape(name) + "/" + url.PathEscape(version)
}

func certGetCmd(g *globals, out io.Writer) *cobra.Command {
	var version string
	c := &cobra.Command{
		Use:     "get NAME",
		Short:   "Show a certificate (public part only)",
		Example: "  certvault cert get www\n  certvault cert get www --version 5dff... -o json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, versionPath("certificates", a[0], version), nil, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, raw)
			}
			var c keyvault.Certificate
			if err := json.Unmarshal(raw, &c); err != nil {
				return err
			}
			if c.Pending != nil {
				tw := table(out)
				fmt.Fprintf(tw, "id:\t%s\n", c.ID)
				fmt.Fprintf(tw, "status:\tpending: no certificate yet (see 'certvault cert operation %s'; a CSR is completed with 'certvault cert merge')\n", a[0])
				fmt.Fprintf(tw, "enabled:\t%v\n", c.Attributes.IsEnabled())
				return tw.Flush()
			}
			leaf, err := x509.ParseCertificate(c.Cer)
			if err != nil {
				return fmt.Errorf("parse certificate: %w", err)
			}
			tw := table(out)
			fmt.Fprintf(tw, "id:\t%s\n", c.ID)
			fmt.Fprintf(tw, "subject:\t%s\n", leaf.Subject)
			fmt.Fprintf(tw, "issuer:\t%s\n", leaf.Issuer)
			if len(leaf.DNSNames) > 0 {
				fmt.Fprintf(tw, "dns names:\t%s\n", strings.Join(leaf.DNSNames, ", "))
			}
			fmt.Fprintf(tw, "serial:\t%s\n", serial.Format(leaf.SerialNumber))
			fmt.Fprintf(tw, "valid:\t%s to %s\n", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(tw, "thumbprint (x5t):\t%s\n", base64.RawURLEncoding.EncodeToString(c.X5t))
			fmt.Fprintf(tw, "enabled:\t%v\n", c.Attributes.IsEnabled())
			fmt.Fprintf(tw, "secret:\t%s (%s)\n", c.Sid, c.ContentType)
			for k, v := range c.Tags {
				fmt.Fprintf(tw, "tag:\t%s=%s\n", k, v)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&version, "version", "", "a specific version (default current)")
	return c
}

func certDownloadCmd(g *globals, out io.Writer) *cobra.Command {
	var version, format, outFile string
	var chain bool
	c := &cobra.Command{
		Use:     "download NAME --out FILE",
		Short:   "Write a certificate's public part (PEM or DER) to a file",
		Example: "  certvault cert download www --format pem --out www.pem\n  certvault cert download www --chain --out www-fullchain.pem",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if format != "pem" && format != "der" {
				return usageError{fmt.Errorf("--format %q: use pem or der", format)}
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var c keyvault.Certificate
			if err := cl.Do(cmd.Context(), http.MethodGet, versionPath("certificates", a[0], version), nil, &c); err != nil {
				return err
			}
			if c.Pending != nil {
				return fmt.Errorf("certificate %s is still pending: there is no certificate to download until its operation completes (see 'certvault cert operation %s')", a[0], a[0])
			}
			data := c.Cer
			if chain && format == "der" {
				return usageError{errors.New("--chain needs --format pem")}
			}
			count := 1
			if format == "pem" {
				data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cer})
				if chain {
					for _, der := range c.X5C[min(1, len(c.X5C)):] {
						data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
						count++
					}
				}
			}
			if outFile == "-" {
				_, err := out.Write(data)
				return err
			}
			if _, err := writeFileFrom(outFile, strings.NewReader(string(data))); err != nil {
				return err
			}
			if err := os.Chmod(outFile, 0o644); err != nil {
				return err
			}
			ver := c.ID[strings.LastIndex(c.ID, "/")+1:]
			confirm(cmd, out, g, "wrote certificate %s (version %s, %s, %s) to %s\n", a[0], ver, plural(count, "certificate"), strings.ToUpper(format), outFile)
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "a specific version (default current)")
	c.Flags().StringVar(&format, "format", "pem", "pem or der")
	c.Flags().BoolVar(&chain, "chain", false, "PEM: append the issuer chain after the certificate (a full chain)")
	c.Flags().StringVar(&outFile, "out", "", "file to write ('-' for stdout)")
	c.MarkFlagRequired("out")
	return c
}

// listAll follows nextLink and returns every item of a paged list.
func listAll(ctx context.Context, cl *client.Client, path string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for path != "" {
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink *string           `json:"nextLink"`
		}
		if err := cl.Do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		path = ""
		if page.NextLink != nil && *page.NextLink != "" {
			u, err := url.Parse(*page.NextLink)
			if err != nil {
				return nil, fmt.Errorf("bad nextLink: %w", err)
			}
			path = u.RequestURI()
		}
	}
	return all, nil
}

// printItems prints list items as JSON or a table of name, enabled,
// expiry and extra columns.
func printItems(out io.Writer, g *globals, items []json.RawMessage, versions bool) error {
	if g.output == "json" {
		if items == nil {
			items = []json.RawMessage{}
		}
		return printJSON(out, items)
	}
	tw := table(out)
	if versions {
		fmt.Fprintln(tw, "VERSION\tENABLED\tCREATED\tEXPIRES")
	} else {
		fmt.Fprintln(tw, "NAME\tENABLED\tUPDATED\tEXPIRES\tNOTE")
	}
	for _, raw := range items {
		var it struct {
			ID          string              `json:"id"`
			Kid         string              `json:"kid"`
			Attributes  keyvault.Attributes `json:"attributes"`
			Managed     bool                `json:"managed"`
			DeletedDate int64               `json:"deletedDate"`
		}
		json.Unmarshal(raw, &it)
		if it.ID == "" {
			it.ID = it.Kid
		}
		parts := strings.Split(it.ID, "/")
		label := parts[len(parts)-1]
		exp := "-"
		if it.Attributes.Expires != nil {
			exp = time.Unix(*it.Attributes.Expires, 0).UTC().Format("2006-01-02 15:04")
		}
		if versions {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", label, it.Attributes.IsEnabled(), unixDate(it.Attributes.Created), exp)
			continue
		}
		note := ""
		if it.Managed {
			note = "managed by certificate"
		}
		if it.DeletedDate != 0 {
			note = "deleted " + unixDate(it.DeletedDate)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", label, it.Attributes.IsEnabled(), unixDate(it.Attributes.Updated), exp, note)
	}
	return tw.Flush()
}

func unixDate(t int64) string {
	if t == 0 {
		return "-"
	}
	return time.Unix(t, 0).UTC().Format("2006-01-02 15:04")
}

func certListCmd(g *globals, out io.Writer) *cobra.Command {
	var pending bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List certificates",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			path := "/certificates?maxresults=25"
			if pending {
				path += "&includePending=true"
			}
			items, err := listAll(cmd.Context(), cl, path)
			if err != nil {
				return err
			}
			return printItems(out, g, items, false)
		},
	}
	c.Flags().BoolVar(&pending, "include-pending", false, "also list certificates that only have a pending operation")
	return c
}

func certVersionsCmd(g *globals, out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List a certificate's versions",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd.Context(), cl, "/certificates/"+url.PathEscape(a[0])+"/versions?maxresults=25")
			if err != nil {
				return err
			}
			return printItems(out, g, items, true)
		},
	}
}

func certSetCmd(g *globals, out io.Writer) *cobra.Command {
	var version string
	var enabled bool
	var tags []string
	c := &cobra.Command{
		Use:     "set NAME",
		Short:   "Update a certificate version's attributes and tags",
		Example: "  certvault cert set www --enabled=false\n  certvault cert set www --tag owner=web-team",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("enabled") {
				body["attributes"] = map[string]any{"enabled": enabled}
			}
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			if t != nil {
				body["tags"] = t
			}
			if len(body) == 0 {
				return usageError{errors.New("nothing to change: give --enabled or --tag")}
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPatch, versionPath("certificates", a[0], version), body, &res); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "updated %s\n", a[0])
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "a specific version (default current)")
	c.Flags().BoolVar(&enabled, "enabled", true, "enable or disable the version")
	c.Flags().StringSliceVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable; replaces all tags)")
	return c
}

func certImportCmd(g *globals, out io.Writer) *cobra.Command {
	var file, pwFile, policyFile string
	c := &cobra.Command{
		Use:   "import NAME --file FILE",
		Short: "Import a certificate with its private key (PKCS#12 or PEM)",
		Example: `  certvault cert import legacy --file legacy.pfx --password-file legacy.pass
  certvault cert import web --file web-key-and-chain.pem`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			body := map[string]any{}
			if strings.Contains(string(data), "-----BEGIN") {
				body["value"] = string(data)
				body["policy"] = map[string]any{"secret_props": map[string]string{"contentType": keyvault.ContentTypePEM}}
			} else {
				body["value"] = base64.StdEncoding.EncodeToString(data)
			}
			if pwFile != "" {
				pw, err := os.ReadFile(pwFile)
				if err != nil {
					return err
				}
				body["pwd"] = strings.TrimRight(string(pw), "\r\n")
			}
			if policyFile != "" {
				p, err := readPolicy(policyFile)
				if err != nil {
					return err
				}
				body["policy"] = p
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPost, "/certificates/"+url.PathEscape(a[0])+"/import", body, &res); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "imported %v\n", res["id"])
			return nil
		},
	}
	c.Flags().StringVar(&file, "file", "", "PKCS#12 (.pfx/.p12) or PEM file with the key and certificate")
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the PKCS#12 password")
	c.Flags().StringVar(&policyFile, "policy", "", "policy to attach (default: derived from the certificate)")
	c.MarkFlagRequired("file")
	return c
}

func certMergeCmd(g *globals, out io.Writer) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:     "merge NAME --file CHAIN.pem",
		Short:   "Complete an Unknown-issuer request with the certificate signed outside",
		Example: "  certvault cert operation api --csr-out api.csr\n  # ... the CA signs api.csr ...\n  certvault cert merge api --file api-chain.pem",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var x5c [][]byte
			for {
				var b *pem.Block
				b, data = pem.Decode(data)
				if b == nil {
					break
				}
				if b.Type == "CERTIFICATE" {
					x5c = append(x5c, b.Bytes)
				}
			}
			if len(x5c) == 0 {
				return fmt.Errorf("%s holds no PEM certificate", file)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPost, "/certificates/"+url.PathEscape(a[0])+"/pending/merge", map[string]any{"x5c": x5c}, &res); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "merged %v\n", res["id"])
			return nil
		},
	}
	c.Flags().StringVar(&file, "file", "", "PEM file: the signed certificate, then its chain")
	c.MarkFlagRequired("file")
	return c
}

func certRevokeCmd(g *globals, out io.Writer) *cobra.Command {
	var version string
	c := &cobra.Command{
		Use:     "revoke NAME [--version V]",
		Short:   "Revoke a version issued by an internal issuer (its serial goes on the issuer's CRL)",
		Example: "  certvault cert revoke www                  # the current version\n  certvault cert revoke www --version 5dff...",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPost, "/v1/certificates/"+url.PathEscape(a[0])+"/revoke", map[string]string{"version": version}, &res); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "revoked serial %v of %s (issuer %v)\n", res["serial"], a[0], res["issuer"])
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "the version to revoke (default current)")
	return c
}

// lifecycleCmds are delete, recover, purge, backup, restore and
// list-deleted for a kind ("certificates", "secrets", "keys").
func lifecycleCmds(g *globals, out io.Writer, kind, noun string) []*cobra.Command {
	simple := func(use, short, method, pathFmt, done string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, a []string) error {
				cl, err := g.client()
				if err != nil {
					return err
				}
				var res json.RawMessage
				if err := cl.Do(cmd.Context(), method, fmt.Sprintf(pathFmt, url.PathEscape(a[0])), nil, &res); err != nil {
					return err
				}
				if g.output == "json" && len(res) > 0 {
					return printJSON(out, res)
				}
				fmt.Fprintf(out, "%s %s %s\n", done, noun, a[0])
				return nil
			},
		}
	}
	var backupOut string
	backup := &cobra.Command{
		Use:   "backup NAME --out FILE",
		Short: "Write an encrypted backup (restores only into a vault with the same seal)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res struct {
				Value string `json:"value"`
			}
			if err := cl.Do(cmd.Context(), http.MethodPost, "/"+kind+"/"+url.PathEscape(a[0])+"/backup", nil, &res); err != nil {
				return err
			}
			if _, err = writeFileFrom(backupOut, strings.NewReader(res.Value)); err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote the encrypted backup of %s %s to %s\n", noun, a[0], backupOut)
			return nil
		},
	}
	backup.Flags().StringVar(&backupOut, "out", "", "backup file")
	backup.MarkFlagRequired("out")
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore from a backup made by 'backup'",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			data, err := os.ReadFile(a[0])
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPost, "/"+kind+"/restore", map[string]string{"value": strings.TrimSpace(string(data))}, &res); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, res)
			}
			id := res["id"]
			if k, ok := res["key"].(map[string]any); ok {
				id = k["kid"]
			}
			fmt.Fprintf(out, "restored %v\n", id)
			return nil
		},
	}
	deleted := &cobra.Command{
		Use:   "list-deleted",
		Short: "List deleted (recoverable) " + kind,
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd.Context(), cl, "/deleted"+kind+"?maxresults=25")
			if err != nil {
				return err
			}
			return printItems(out, g, items, false)
		},
	}
	return []*cobra.Command{
		simple("delete", "Delete (recoverably, for the retention period)", http.MethodDelete, "/"+kind+"/%s", "deleted"),
		simple("recover", "Recover a deleted "+noun, http.MethodPost, "/deleted"+kind+"/%s/recover", "recovered"),
		simple("purge", "Permanently remove a deleted "+noun, http.MethodDelete, "/deleted"+kind+"/%s", "purged"),
		backup, restore, deleted, retentionCmd(g, out, kind, noun),
	}
}

// confirm prints what a command did to a local file: on standard output
// like the CLI's other confirmations, or on standard error under -o json
// so that standard output stays one JSON document.
func confirm(cmd *cobra.Command, out io.Writer, g *globals, format string, a ...any) {
	if g.output == "json" {
		out = cmd.ErrOrStderr()
	}
	fmt.Fprintf(out, format, a...)
}
