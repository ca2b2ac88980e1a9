// managed-identity.mjs NAME [CLIENT_ID]: SecretClient.getSecret with
// ManagedIdentityCredential, which finds the agent's managed-identity
// endpoint through the App Service variables IDENTITY_ENDPOINT and
// IDENTITY_HEADER (see common.mjs for the rest of the environment).
// CLIENT_ID asks for a user-assigned identity by its client id; without
// it the credential asks for the system-assigned one. Prints the secret
// read and the access token's expiry.

import { ManagedIdentityCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { keyVaultClientOptions, run, vaultURL } from "./common.mjs";

run(async ([name, clientId]) => {
  if (!name) {
    throw new Error("usage: node managed-identity.mjs NAME [CLIENT_ID]");
  }
  const cred = clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
  const client = new SecretClient(vaultURL(), cred, keyVaultClientOptions);
  const got = await client.getSecret(name);
  return { name: got.name, value: got.value, version: got.properties.version };
});
