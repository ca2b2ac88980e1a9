// Package core is the vault's domain core: Key Vault objects (secrets,
// keys, and the versions of certificates), their names, versions and
// paging, soft delete, recover, purge, backup and restore, version
// retention (its rules, per-object settings and history), the vault's
// settings and contacts, events and the mail outbox, token records, the
// role assignments record and the access policy built from it (managing
// tokens, service principals and assignments is vault/identity's).
//
// Its API takes typed requests and the caller (Caller) and returns typed
// results and *Error (bad parameter with the member it is about, not
// found, conflict, forbidden, unavailable with a retry time). It knows no
// wire: it imports no net/http, and it is the only code, with
// vault/issuance and vault/fleet above it, that builds raft batches for
// these objects.
package core
