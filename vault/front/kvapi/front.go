package kvapi

import (
	"github.com/certvault/certvault/vault/front"
)

// Front is the Key Vault dialect: its routes, api-version, JSON shapes,
// error codes and paging links, over the domain.
type Front struct {
	*front.Env
}

// Routes adds the data plane's routes to rt, each with the permission it
// needs (rt's before hook, the node's gate, checks it).
func (f *Front) Routes(rt *front.Router) {
	f.secretRoutes(rt)
	f.certificateRoutes(rt)
	f.issuerRoutes(rt)
	f.keyRoutes(rt)
	f.keyRotationRoutes(rt)
}
