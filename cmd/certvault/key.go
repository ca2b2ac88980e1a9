package main

import (
	"crypto"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func keyCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Create keys and sign, verify, encrypt with them (Key Vault keys API)"}
	var kty, curve string
	var size int
	var ops, tags []string
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a key (a new version if NAME exists)",
		Example: "  certvault key create signer --kty EC --curve P-256\n  certvault key create wrapper --kty RSA --key-size 3072 --ops wrapKey,unwrapKey\n  certvault key create hsm-signer --kty EC-HSM --curve P-384",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			body := map[string]any{"kty": kty, "key_size": size, "crv": curve, "key_ops": ops, "tags": t}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPost, "/keys/"+url.PathEscape(a[0])+"/create", body, &res); err != nil {
				return err
			}
			return printKey(out, g, res)
		},
	}
	create.Flags().StringVar(&kty, "kty", "EC", "key type: RSA, EC (RSA-HSM, EC-HSM with an HSM)")
	create.Flags().StringVar(&curve, "curve", "", "EC curve: P-256, P-384, P-521")
	create.Flags().IntVar(&size, "key-size", 0, "RSA size: 2048, 3072, 4096")
	create.Flags().StringSliceVar(&ops, "ops", nil, "permitted operations (default all the key type allows)")
	create.Flags().StringSliceVar(&tags, "tag", nil, "tag KEY=VALUE")
	c.AddCommand(create)

	var version string
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a key's public part (JWK)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodGet, versionPath("keys", a[0], version), nil, &res); err != nil {
				return err
			}
			return printKey(out, g, res)
		},
	}
	get.Flags().StringVar(&version, "version", "", "a specific version (default current)")
	c.AddCommand(get)

	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List keys (certificates' managed keys included)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			items, err := listAll(cmd.Context(), cl, "/keys?maxresults=25")
			if err != nil {
				return err
			}
			return printItems(out, g, items, false)
		},
	})

	var alg, file, digestHex, sigFile string
	sign := &cobra.Command{
		Use:   "sign NAME --alg ALG (--file F | --digest HEX)",
		Short: "Sign a file's digest (or a given digest) with a key; prints the signature in base64 (JWS form: r||s for EC)",
		Example: `  certvault key sign signer --alg ES256 --file release.tar.gz > release.sig
  certvault key verify signer --alg ES256 --file release.tar.gz --signature release.sig`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			digest, err := digestFor(alg, file, digestHex)
			if err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res struct {
				Kid   string `json:"kid"`
				Value string `json:"value"`
			}
			if err := cl.Do(cmd.Context(), http.MethodPost, versionPath("keys", a[0], version)+"/sign",
				map[string]string{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(digest)}, &res); err != nil {
				return err
			}
			sig, err := base64.RawURLEncoding.DecodeString(res.Value)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, map[string]string{"kid": res.Kid, "alg": alg, "signature": base64.StdEncoding.EncodeToString(sig)})
			}
			fmt.Fprintln(out, base64.StdEncoding.EncodeToString(sig))
			return nil
		},
	}
	sign.Flags().StringVar(&alg, "alg", "ES256", "RS256/384/512, PS256/384/512, ES256/384/512")
	sign.Flags().StringVar(&file, "file", "", "file to hash and sign")
	sign.Flags().StringVar(&digestHex, "digest", "", "hex digest to sign instead of --file")
	sign.Flags().StringVar(&version, "version", "", "key version (default current)")
	c.AddCommand(sign)

	verify := &cobra.Command{
		Use:   "verify NAME --alg ALG (--file F | --digest HEX) --signature FILE",
		Short: "Verify a signature made by 'key sign' (exit 1 when it does not verify)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			digest, err := digestFor(alg, file, digestHex)
			if err != nil {
				return err
			}
			sigText, err := os.ReadFile(sigFile)
			if err != nil {
				return err
			}
			sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
			if err != nil {
				return fmt.Errorf("%s: want the base64 signature printed by 'key sign': %w", sigFile, err)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res struct {
				Value bool `json:"value"`
			}
			if err := cl.Do(cmd.Context(), http.MethodPost, versionPath("keys", a[0], version)+"/verify",
				map[string]string{"alg": alg, "digest": base64.RawURLEncoding.EncodeToString(digest), "value": base64.RawURLEncoding.EncodeToString(sig)}, &res); err != nil {
				return err
			}
			if !res.Value {
				return errors.New("the signature does NOT verify")
			}
			fmt.Fprintln(out, "signature verifies")
			return nil
		},
	}
	verify.Flags().StringVar(&alg, "alg", "ES256", "the algorithm used to sign")
	verify.Flags().StringVar(&file, "file", "", "file whose signature to verify")
	verify.Flags().StringVar(&digestHex, "digest", "", "hex digest instead of --file")
	verify.Flags().StringVar(&sigFile, "signature", "", "file with the base64 signature")
	verify.Flags().StringVar(&version, "version", "", "key version (default current)")
	verify.MarkFlagRequired("signature")
	c.AddCommand(verify)
	c.AddCommand(&cobra.Command{
		Use:     "rotate NAME",
		Short:   "Make a new version of a key with the same type and size",
		Example: "  certvault key rotate signer",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var res json.RawMessage
			if err := cl.Do(cmd.Context(), http.MethodPost, "/keys/"+url.PathEscape(a[0])+"/rotate", nil, &res); err != nil {
				return err
			}
			return printKey(out, g, res)
		},
	})
	for _, lc := range lifecycleCmds(g, out, "keys", "key") {
		c.AddCommand(lc)
	}
	return c
}

// digestFor hashes a file with the algorithm's hash, or decodes a given hex
// digest.
func digestFor(alg, file, digestHex string) ([]byte, error) {
	if (file == "") == (digestHex == "") {
		return nil, usageError{errors.New("give exactly one of --file or --digest")}
	}
	var h crypto.Hash
	switch {
	case strings.HasSuffix(alg, "256"):
		h = crypto.SHA256
	case strings.HasSuffix(alg, "384"):
		h = crypto.SHA384
	case strings.HasSuffix(alg, "512"):
		h = crypto.SHA512
	default:
		return nil, usageError{fmt.Errorf("--alg %q: use RS256/384/512, PS256/384/512 or ES256/384/512", alg)}
	}
	if digestHex != "" {
		var d []byte
		if _, err := fmt.Sscanf(digestHex, "%x", &d); err != nil || len(d) != h.Size() {
			return nil, usageError{fmt.Errorf("--digest: want %d bytes of hex for %s", h.Size(), alg)}
		}
		return d, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hh := h.New()
	if _, err := io.Copy(hh, f); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}

func printKey(out io.Writer, g *globals, raw json.RawMessage) error {
	if g.output == "json" {
		return printJSON(out, raw)
	}
	var k struct {
		Key struct {
			Kid    string   `json:"kid"`
			Kty    string   `json:"kty"`
			Crv    string   `json:"crv"`
			N      string   `json:"n"`
			KeyOps []string `json:"key_ops"`
		} `json:"key"`
		Managed bool `json:"managed"`
	}
	json.Unmarshal(raw, &k)
	tw := table(out)
	fmt.Fprintf(tw, "kid:\t%s\n", k.Key.Kid)
	desc := k.Key.Kty
	if k.Key.Crv != "" {
		desc += " " + k.Key.Crv
	} else if n, err := base64.RawURLEncoding.DecodeString(k.Key.N); err == nil {
		desc += fmt.Sprintf(" %d", len(n)*8)
	}
	fmt.Fprintf(tw, "type:\t%s\n", desc)
	fmt.Fprintf(tw, "operations:\t%s\n", strings.Join(k.Key.KeyOps, ", "))
	if k.Managed {
		fmt.Fprintf(tw, "managed:\tby the certificate of the same name\n")
	}
	return tw.Flush()
}
