// secret-roundtrip.mjs NAME: SecretClient.setSecret with the value in
// CERTVAULT_SECRET_VALUE, then getSecret, authenticated by
// DefaultAzureCredential from the environment (see common.mjs). Prints
// what was set and what was read back.

import { SecretClient } from "@azure/keyvault-secrets";
import { credential, keyVaultClientOptions, run, vaultURL } from "./common.mjs";

run(async ([name]) => {
  const value = process.env.CERTVAULT_SECRET_VALUE;
  if (!name || !value) {
    throw new Error("usage: CERTVAULT_SECRET_VALUE=VALUE node secret-roundtrip.mjs NAME");
  }
  const client = new SecretClient(vaultURL(), credential(), keyVaultClientOptions);
  const set = await client.setSecret(name, value, { contentType: "text/plain" });
  const got = await client.getSecret(name);
  return {
    setVersion: set.properties.version,
    gotVersion: got.properties.version,
    gotName: got.name,
    gotValue: got.value,
    contentType: got.properties.contentType,
    enabled: got.properties.enabled,
  };
});
