package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"
)

func settingsCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "settings",
		Short: "Vault-wide settings: soft-delete retention, purge protection and version retention",
	}
	print := func(raw json.RawMessage) error {
		if g.output == "json" {
			return printJSON(out, raw)
		}
		var s struct {
			PurgeProtection bool   `json:"purge_protection"`
			RetentionDays   int    `json:"retention_days"`
			PublicURL       string `json:"public_url"`
			NearExpiry      string `json:"near_expiry"`
			RetainVersions  int    `json:"retain_versions"`
			RetainExpired   int    `json:"retain_expired_days"`
		}
		json.Unmarshal(raw, &s)
		tw := table(out)
		fmt.Fprintf(tw, "retention days:\t%d\n", s.RetentionDays)
		fmt.Fprintf(tw, "purge protection:\t%v\n", s.PurgeProtection)
		pub := s.PublicURL
		if pub == "" {
			pub = "(unset: each node's own API address)"
		}
		fmt.Fprintf(tw, "public URL:\t%s\n", pub)
		fmt.Fprintf(tw, "near expiry:\t%s before expiry (NearExpiry events)\n", s.NearExpiry)
		if s.RetainVersions == 0 {
			fmt.Fprintf(tw, "retain versions:\t0 (every version is kept)\n")
		} else {
			fmt.Fprintf(tw, "retain versions:\t%d newest of each object, and any still held or valid\n", s.RetainVersions)
		}
		fmt.Fprintf(tw, "retain expired days:\t%d\n", s.RetainExpired)
		return tw.Flush()
	}
	c.AddCommand(&cobra.Command{
		Use: "get", Aliases: []string{"show"}, Short: "Show the settings", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, "/v1/sys/settings", nil, &raw); err != nil {
				return err
			}
			return print(raw)
		},
	})
	var retention int
	var purgeProtection bool
	var publicURL, nearExpiry string
	var retainVersions, retainExpiredDays int
	set := &cobra.Command{
		Use:   "set",
		Short: "Change the retention of deleted objects and of old versions, purge protection or the public URL",
		Long: `Change vault-wide settings. --retention-days (7 to 90) applies to objects
deleted from now on. --purge-protection, once on, cannot be turned off:
deleted objects are then purged only when their retention ends.
--public-url is the address relying parties use for the vault (a load
balancer or DNS name in front of the nodes): certificates from internal
issuers carry their CRL address under it. --near-expiry is how long before
expiry the CertificateNearExpiry and SecretNearExpiry events fire (default
30d; it applies to versions made from now on).

Version retention: --retain-versions N (0, the default, keeps every version,
as Key Vault does; else 1 to 10000) lets the leader purge versions older than
each object's newest N, except the current version, a version an agent holds
or a rollout or pending operation refers to, and a version within its
validity or less than --retain-expired-days D (default 30, 0 to 3650) days
past its expiry; a version without an expiry goes by N alone. Purged
versions disappear from listings and answer 404; the evidence report keeps
their history. 'certvault cert retention NAME' (and secret, key) overrides
both for one object.`,
		Example: "  certvault settings set --retention-days 30\n  certvault settings set --purge-protection\n  certvault settings set --public-url https://vault.example.com:8443\n  certvault settings set --retain-versions 5 --retain-expired-days 30",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("retention-days") {
				body["retention_days"] = retention
			}
			if cmd.Flags().Changed("purge-protection") {
				body["purge_protection"] = purgeProtection
			}
			if cmd.Flags().Changed("public-url") {
				body["public_url"] = publicURL
			}
			if cmd.Flags().Changed("near-expiry") {
				body["near_expiry"] = nearExpiry
			}
			if cmd.Flags().Changed("retain-versions") {
				body["retain_versions"] = retainVersions
			}
			if cmd.Flags().Changed("retain-expired-days") {
				body["retain_expired_days"] = retainExpiredDays
			}
			if len(body) == 0 {
				return usageError{errors.New("nothing to change: give --retention-days, --purge-protection, --public-url, --near-expiry, --retain-versions or --retain-expired-days")}
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPatch, "/v1/sys/settings", body, &raw); err != nil {
				return err
			}
			return print(raw)
		},
	}
	set.Flags().IntVar(&retention, "retention-days", 90, "days deleted objects stay recoverable (7-90)")
	set.Flags().BoolVar(&purgeProtection, "purge-protection", false, "forbid purging before the retention ends (irreversible)")
	set.Flags().StringVar(&publicURL, "public-url", "", "https URL relying parties reach the vault at (\"\" to unset)")
	set.Flags().StringVar(&nearExpiry, "near-expiry", "", "threshold of the NearExpiry events: 30d, 12h, 90m")
	set.Flags().IntVar(&retainVersions, "retain-versions", 0, "keep each object's newest N versions and purge older ones nothing needs (0 keeps every version)")
	set.Flags().IntVar(&retainExpiredDays, "retain-expired-days", 30, "days after a version's expiry before version retention may purge it (0-3650)")
	c.AddCommand(set)
	return c
}
