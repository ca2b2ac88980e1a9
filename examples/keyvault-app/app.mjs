// keyvault-app in JavaScript: an application written for Azure Key Vault,
// as any Node.js application using the Azure SDK is. It reads a secret
// and a certificate with @azure/keyvault-secrets and
// @azure/keyvault-certificates, authenticated by @azure/identity's
// DefaultAzureCredential; docs/tutorials/azure-apps.md moves it to
// certvault by changing its environment only (VAULT_URL,
// AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, or IDENTITY_ENDPOINT and IDENTITY_HEADER; the
// vault's CA in NODE_EXTRA_CA_CERTS). It sets the two options the
// libraries have no environment variable for (docs/azure-identity.md).
//
// Usage: node app.mjs SECRET-NAME CERTIFICATE-NAME
import { X509Certificate, createHash } from "node:crypto";
import { DefaultAzureCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { CertificateClient } from "@azure/keyvault-certificates";

const [secretName, certName] = process.argv.slice(2);
if (!secretName || !certName) {
  console.error("usage: node app.mjs SECRET-NAME CERTIFICATE-NAME (VAULT_URL names the vault)");
  process.exit(2);
}
const vault = process.env.VAULT_URL;
const credential = new DefaultAzureCredential({ disableInstanceDiscovery: true });
const options = { disableChallengeResourceVerification: true };
try {
  const secret = await new SecretClient(vault, credential, options).getSecret(secretName);
  const c = await new CertificateClient(vault, credential, options).getCertificate(certName);
  const cert = new X509Certificate(Buffer.from(c.cer));
  console.log(JSON.stringify({
    secret: { name: secretName, value: secret.value },
    certificate: {
      name: certName,
      subject: cert.subject.replace(/\n/g, ","),
      not_after: new Date(cert.validTo).toISOString().replace(/\.000Z$/, "Z"),
      x5t: createHash("sha1").update(cert.raw).digest("hex").toUpperCase(),
    },
  }, null, 2));
} catch (err) {
  console.error(`keyvault-app: ${err.message}`);
  process.exit(1);
}
