// certificate-csr.mjs create NAME SUBJECT DNSNAME
// certificate-csr.mjs merge NAME CERT_PEM_FILE der|pem
//
// The CSR flow of CertificateClient, authenticated by
// DefaultAzureCredential from the environment (see common.mjs):
//
//   create: beginCreateCertificate with a policy whose issuerName is
//     "Unknown", then getCertificateOperation; prints the pending
//     operation, its CSR as base64 DER.
//   merge: mergeCertificate with the certificate in CERT_PEM_FILE (signed
//     by the test's CA), then getCertificate; prints what getCertificate
//     returns. "der" passes the certificate's DER bytes; "pem" passes the
//     PEM file's text as bytes, the form Key Vault's documentation names
//     for a merge (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----).

import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { CertificateClient } from "@azure/keyvault-certificates";
import { credential, keyVaultClientOptions, run, vaultURL } from "./common.mjs";

function client() {
  return new CertificateClient(vaultURL(), credential(), keyVaultClientOptions);
}

async function create(name, subject, dnsName) {
  const cc = client();
  await cc.beginCreateCertificate(name, {
    issuerName: "Unknown",
    subject,
    subjectAlternativeNames: { dnsNames: [dnsName] },
    keyType: "RSA",
    keySize: 2048,
    exportable: true,
    contentType: "application/x-pem-file",
    validityInMonths: 12,
  });
  const poller = await cc.getCertificateOperation(name);
  const op = poller.getOperationState().certificateOperation;
  if (!op) {
    throw new Error(`getCertificateOperation(${name}) returned no operation`);
  }
  return {
    id: op.id,
    name: op.name,
    status: op.status,
    issuerName: op.issuerName,
    requestId: op.requestId,
    isCompleted: poller.isDone(),
    csr: op.csr ? Buffer.from(op.csr).toString("base64") : "",
  };
}

async function merge(name, pemFile, form) {
  const pem = await readFile(pemFile, "utf8");
  let x509;
  switch (form) {
    case "der":
      x509 = new X509Certificate(pem).raw;
      break;
    case "pem":
      x509 = Buffer.from(pem);
      break;
    default:
      throw new Error(`merge form ${form}: want der or pem`);
  }
  const cc = client();
  const merged = await cc.mergeCertificate(name, [x509]);
  const got = await cc.getCertificate(name);
  return {
    mergedVersion: merged.properties.version,
    version: got.properties.version,
    enabled: got.properties.enabled,
    issuerName: got.policy?.issuerName,
    cer: got.cer ? Buffer.from(got.cer).toString("base64") : "",
    x5tHex: got.properties.x509Thumbprint ? Buffer.from(got.properties.x509Thumbprint).toString("hex") : "",
  };
}

run(async ([verb, ...args]) => {
  switch (verb) {
    case "create":
      if (args.length !== 3) {
        throw new Error("usage: node certificate-csr.mjs create NAME SUBJECT DNSNAME");
      }
      return create(...args);
    case "merge":
      if (args.length !== 3) {
        throw new Error("usage: node certificate-csr.mjs merge NAME CERT_PEM_FILE der|pem");
      }
      return merge(...args);
    default:
      throw new Error(`unknown verb ${verb}: want create or merge`);
  }
});
