// get-token.mjs SCOPE: DefaultAzureCredential.getToken for SCOPE, with
// the credential configured by the environment (see common.mjs). Prints
// the access token and its expiry (milliseconds since the epoch), so that
// the Go test can present the same token to every node of a cluster.

import { credential, run } from "./common.mjs";

run(async ([scope]) => {
  if (!scope) {
    throw new Error("usage: node get-token.mjs SCOPE");
  }
  const tok = await credential().getToken(scope);
  if (!tok) {
    throw new Error(`getToken(${scope}) returned no token`);
  }
  return { token: tok.token, expiresOnTimestamp: tok.expiresOnTimestamp, tokenType: tok.tokenType };
});
