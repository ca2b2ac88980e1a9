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
//	azapp cert-self NAME       create a self-signed certificate (azcertificates),
//	                           wait for it and print its thumbprint
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
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
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
		return fmt.Errorf("usage: azapp set-get NAME VALUE | get NAME | token SCOPE | cert-self NAME")
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
	if args[0] == "cert-self" && len(args) == 2 {
		return certSelf(ctx, cred, args[1], out)
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
	return fmt.Errorf("usage: azapp set-get NAME VALUE | get NAME | token SCOPE | cert-self NAME")
}

// certSelf creates a self-signed certificate with azcertificates, polls
// its operation until it completes, and prints the certificate's
// thumbprint.
func certSelf(ctx context.Context, cred azcore.TokenCredential, name string, out *json.Encoder) error {
	client, err := azcertificates.NewClient(os.Getenv("VAULT_URL"), cred, &azcertificates.ClientOptions{
		DisableChallengeResourceVerification: true,
		ClientOptions:                        azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		return err
	}
	issuer, subject, months := "Self", "CN="+name, int32(3)
	pol := &azcertificates.CertificatePolicy{
		IssuerParameters:          &azcertificates.IssuerParameters{Name: &issuer},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: &subject, ValidityInMonths: &months},
	}
	if _, err := client.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
		return fmt.Errorf("create certificate %s: %w", name, err)
	}
	for {
		op, err := client.GetCertificateOperation(ctx, name, nil)
		if err != nil {
			return fmt.Errorf("certificate operation %s: %w", name, err)
		}
		if op.Status != nil && *op.Status != "inProgress" {
			if *op.Status != "completed" {
				return fmt.Errorf("certificate operation %s: %s", name, *op.Status)
			}
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("certificate operation %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	got, err := client.GetCertificate(ctx, name, "", nil)
	if err != nil {
		return fmt.Errorf("get certificate %s: %w", name, err)
	}
	return out.Encode(map[string]any{"name": name, "x5t": fmt.Sprintf("%x", got.X509Thumbprint)})
}
