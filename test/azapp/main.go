// Command azapp is an application written for Azure Key Vault, used by
// the tests (issue 18) as an application moved to certvault would be:
// unchanged code, configured only through the environment variables the
// Azure libraries read — AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH, AZURE_AUTHORITY_HOST
// for DefaultAzureCredential, IDENTITY_ENDPOINT and IDENTITY_HEADER for
// ManagedIdentityCredential, and SSL_CERT_FILE for the vault's CA. Where a
// library has no environment variable for a setting it documents as an
// option, the option is set here, once, for every run:
//
//   - DisableInstanceDiscovery: MSAL asks login.microsoftonline.com to
//     validate any authority it does not know, which a self-hosted
//     authority (and a machine without internet access) cannot pass.
//   - DisableChallengeResourceVerification: the Key Vault clients check
//     that the vault's host is a subdomain of the resource its challenge
//     names (NAME.vault.azure.net under vault.azure.net), which no
//     self-hosted vault's is.
//
// Usage (VAULT_URL names the vault; AZAPP_CREDENTIAL=managed picks
// ManagedIdentityCredential, anything else DefaultAzureCredential):
//
//	azapp set-get NAME VALUE   set a secret and read it back
//	azapp get NAME             read a secret
//	azapp token SCOPE          print an access token for SCOPE
//
// It prints one JSON object on success and exits 1 with the error on
// stderr otherwise.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "azapp:", err)
		os.Exit(1)
	}
}

func credential() (azcore.TokenCredential, error) {
	if os.Getenv("AZAPP_CREDENTIAL") == "managed" {
		return azidentity.NewManagedIdentityCredential(nil)
	}
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{DisableInstanceDiscovery: true})
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: azapp set-get NAME VALUE | get NAME | token SCOPE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cred, err := credential()
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	if args[0] == "token" && len(args) == 2 {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{args[1]}})
		if err != nil {
			return err
		}
		return out.Encode(map[string]any{"token": tok.Token, "expires_on": tok.ExpiresOn.Unix()})
	}
	client, err := azsecrets.NewClient(os.Getenv("VAULT_URL"), cred, &azsecrets.ClientOptions{
		DisableChallengeResourceVerification: true,
		ClientOptions:                        azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		return err
	}
	switch {
	case args[0] == "set-get" && len(args) == 3:
		if _, err := client.SetSecret(ctx, args[1], azsecrets.SetSecretParameters{Value: &args[2]}, nil); err != nil {
			return fmt.Errorf("set secret %s: %w", args[1], err)
		}
		fallthrough
	case args[0] == "get" && len(args) >= 2:
		resp, err := client.GetSecret(ctx, args[1], "", nil)
		if err != nil {
			return fmt.Errorf("get secret %s: %w", args[1], err)
		}
		return out.Encode(map[string]any{"name": args[1], "value": *resp.Value})
	}
	return fmt.Errorf("usage: azapp set-get NAME VALUE | get NAME | token SCOPE")
}
