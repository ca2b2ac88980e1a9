// Shared by the scripts in this folder, which test/jssdk_test.go runs with
// node against a real certvault cluster. Everything a script needs comes
// from the environment, as it would for an application: the credential's
// AZURE_* variables, the vault's CA in NODE_EXTRA_CA_CERTS, and the vault's
// address in CERTVAULT_VAULT_URL. A script prints exactly one JSON line on
// stdout; on failure it prints the error on stderr and exits non-zero.

import { DefaultAzureCredential } from "@azure/identity";

// vaultURL is the Key Vault URL the clients talk to.
export function vaultURL() {
  const url = process.env.CERTVAULT_VAULT_URL;
  if (!url) {
    throw new Error("CERTVAULT_VAULT_URL is not set");
  }
  return url;
}

// credential is DefaultAzureCredential as the environment configures it
// (AZURE_TENANT_ID, AZURE_CLIENT_ID, and AZURE_CLIENT_SECRET or
// AZURE_CLIENT_CERTIFICATE_PATH; AZURE_AUTHORITY_HOST names the vault).
//
// disableInstanceDiscovery is the one option the environment cannot set:
// without it MSAL validates an authority it does not know by asking
// https://login.microsoftonline.com/common/discovery/instance (a fixed
// host, whatever AZURE_AUTHORITY_HOST says), which is not the vault and
// not reachable from a private network; with it MSAL trusts the configured
// authority host and reads its openid-configuration directly
// (AuthorityValidationOptions in @azure/identity).
export function credential() {
  return new DefaultAzureCredential({ disableInstanceDiscovery: true });
}

// keyVaultClientOptions are the options of the Key Vault clients.
// disableChallengeResourceVerification is needed because the clients
// require the vault's host to be a subdomain of the host of the resource
// its 401 challenge names (as NAME.vault.azure.net is of vault.azure.net);
// a vault at 127.0.0.1:PORT is not.
export const keyVaultClientOptions = { disableChallengeResourceVerification: true };

// run calls main, prints what it returns as one JSON line and exits 0, or
// prints the error on stderr and exits 1.
export async function run(main) {
  try {
    const result = await main(process.argv.slice(2));
    process.stdout.write(JSON.stringify(result) + "\n");
  } catch (err) {
    process.stderr.write(`${err?.name ?? "Error"}: ${err?.message ?? err}\n`);
    if (err?.statusCode !== undefined) {
      process.stderr.write(`statusCode: ${err.statusCode}\n`);
    }
    if (err?.code !== undefined) {
      process.stderr.write(`code: ${err.code}\n`);
    }
    if (err?.stack) {
      process.stderr.write(`${err.stack}\n`);
    }
    process.exitCode = 1;
  }
}
