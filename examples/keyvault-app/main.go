// Command keyvault-app is an application written for Azure Key Vault, as
// any Go application using the Azure SDK is: it reads a secret and a
// certificate with azsecrets and azcertificates, authenticated by
// azidentity's DefaultAzureCredential. Nothing in it knows certvault;
// docs/tutorials/azure-apps.md moves it to certvault by changing its
// environment only:
//
//	VAULT_URL             the vault (https://NAME.vault.azure.net before)
//	AZURE_AUTHORITY_HOST  the vault too: its token endpoint
//	AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
//	                      a service principal (certvault sp create), or
//	IDENTITY_ENDPOINT, IDENTITY_HEADER
//	                      the managed identity the agent serves on the VM
//	SSL_CERT_FILE         the vault's CA, when the system does not trust it
//
// It sets the two options the Azure libraries have no environment
// variable for (docs/azure-identity.md says why): DisableInstanceDiscovery
// and DisableChallengeResourceVerification.
//
// Usage: keyvault-app SECRET-NAME CERTIFICATE-NAME. It prints what it read
// as JSON.
package main

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: keyvault-app SECRET-NAME CERTIFICATE-NAME (VAULT_URL names the vault)")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "keyvault-app:", err)
		os.Exit(1)
	}
}

func run(secretName, certName string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vault := os.Getenv("VAULT_URL")
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{DisableInstanceDiscovery: true})
	if err != nil {
		return err
	}
	secrets, err := azsecrets.NewClient(vault, cred, &azsecrets.ClientOptions{DisableChallengeResourceVerification: true})
	if err != nil {
		return err
	}
	certificates, err := azcertificates.NewClient(vault, cred, &azcertificates.ClientOptions{DisableChallengeResourceVerification: true})
	if err != nil {
		return err
	}
	s, err := secrets.GetSecret(ctx, secretName, "", nil)
	if err != nil {
		return fmt.Errorf("read secret %s: %w", secretName, err)
	}
	c, err := certificates.GetCertificate(ctx, certName, "", nil)
	if err != nil {
		return fmt.Errorf("read certificate %s: %w", certName, err)
	}
	cert, err := x509.ParseCertificate(c.CER)
	if err != nil {
		return fmt.Errorf("certificate %s: %w", certName, err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"secret": map[string]string{"name": secretName, "value": *s.Value},
		"certificate": map[string]string{"name": certName, "subject": cert.Subject.String(),
			"not_after": cert.NotAfter.UTC().Format(time.RFC3339), "x5t": fmt.Sprintf("%X", sha1.Sum(cert.Raw))},
	})
}
