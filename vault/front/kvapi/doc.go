// Package kvapi is the Azure Key Vault dialect: the data plane's routes,
// api-version, JSON shapes, error codes and paging links for secrets,
// keys, certificates, issuers, contacts, deleted objects and backups. It
// only translates: every decision is the domain's (vault/core,
// vault/issuance), reached through front.Env.
package kvapi
