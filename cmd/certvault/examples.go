package main

import "github.com/spf13/cobra"

// examples are the Examples sections of the leaf commands that do not
// set their own Example where they are defined; keyed by command path
// without the leading "certvault". TestEveryLeafHasExamples fails on a
// leaf with neither.
var examples = map[string]string{
	"agent list": `  certvault agent list
  certvault agent list --group web --certificate www -o json`,
	"agent revoke": "  certvault agent revoke 316b9a1a8918b8d6",
	"agent status": "  certvault agent status 209086a2def9de38",
	"audit verify": `  certvault audit verify; echo "exit $?"`,
	"cert backup":  "  certvault cert backup legacy2 --out legacy2.backup",
	"cert delete":  "  certvault cert delete legacy2",
	"cert list": `  certvault cert list
  certvault cert list --include-pending -o json`,
	"cert list-deleted": "  certvault cert list-deleted",
	"cert policy get":   "  certvault cert policy get www > policy.json",
	"cert purge":        "  certvault cert purge legacy2",
	"cert recover":      "  certvault cert recover legacy2",
	"cert restore":      "  certvault cert restore legacy2.backup",
	"cert versions":     "  certvault cert versions www",
	"cluster join-token": `  certvault cluster join-token
  certvault cluster join-token --ttl 15m --uses 2`,
	"cluster snapshot save": "  certvault cluster snapshot save vault-2026-11-26.snap",
	"contacts delete":       "  certvault contacts delete",
	"sp list": `  certvault sp list
  certvault sp list -o json | jq -r '.value[] | .name + " " + .client_id'`,
	"sp show":          "  certvault sp show billing",
	"sp delete":        "  certvault sp delete billing",
	"sp secret rotate": "  certvault sp secret rotate billing -o json | jq -r .client_secret",
	"contacts list":    "  certvault contacts list -o json",
	"events deliveries": `  certvault events deliveries
  certvault events deliveries --failed`,
	"events list":        "  certvault events list",
	"events unsubscribe": "  certvault events unsubscribe 9c2d6a0e41f7b3aa",
	"issuer delete":      "  certvault issuer delete digiCert03",
	"issuer get":         "  certvault issuer get corp-acme -o json",
	"issuer list":        "  certvault issuer list",
	"key backup":         "  certvault key backup release-signer --out release-signer.backup",
	"key delete":         "  certvault key delete release-signer",
	"key get": `  certvault key get release-signer
  certvault key get release-signer -o json`,
	"key list":         "  certvault key list",
	"key list-deleted": "  certvault key list-deleted",
	"key purge":        "  certvault key purge release-signer",
	"key recover":      "  certvault key recover release-signer",
	"key restore":      "  certvault key restore release-signer.backup",
	"key verify": `  certvault key sign release-signer --alg ES256 --file release.tar.gz > release.sig
  certvault key verify release-signer --alg ES256 --file release.tar.gz --signature release.sig`,
	"role assignments": `  certvault role assignments
  certvault role assignments --to app-team`,
	"role list":           "  certvault role list",
	"role revoke":         "  certvault role revoke 2",
	"rollout abort":       "  certvault rollout abort www",
	"rollout pause":       "  certvault rollout pause www",
	"rollout resume":      "  certvault rollout resume www",
	"rollout status":      "  certvault rollout status www",
	"rollout unset":       "  certvault rollout unset www",
	"secret backup":       "  certvault secret backup db-pass --out db-pass.backup",
	"secret delete":       "  certvault secret delete db-pass",
	"secret list":         "  certvault secret list",
	"secret list-deleted": "  certvault secret list-deleted",
	"secret purge":        "  certvault secret purge db-pass",
	"secret recover":      "  certvault secret recover db-pass",
	"secret restore":      "  certvault secret restore db-pass.backup",
	"secret versions":     "  certvault secret versions db-pass",
	"settings get":        "  certvault settings get -o json",
	"token list": `  certvault token list
  certvault token list --name app-team`,
	"token revoke": "  certvault token revoke 6f2ffb39ee58fad5",
	"token whoami": "  certvault token whoami",
}

// addExamples sets the Example of every command in examples that has none.
func addExamples(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		if key := c.CommandPath()[len(root.Name()):]; c.Example == "" && len(key) > 0 {
			c.Example = examples[key[1:]]
		}
	})
}
