// Package identity is who may call the vault: bearer tokens, service
// principals (a client id with a secret or a certificate, as Azure
// applications authenticate), the built-in roles and role assignments.
// Every change that would leave no administrator is refused.
//
// It is domain code over vault/core, which keeps what everything else
// needs of it (the assignments record and the access policy built from it,
// token records): typed requests and results, *core.Error, no net/http.
package identity

import "github.com/certvault/certvault/vault/core"

// Identity manages principals over the core.
type Identity struct {
	*core.Core
}
