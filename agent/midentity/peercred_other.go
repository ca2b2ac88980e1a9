//go:build !linux

package midentity

import (
	"fmt"
	"net"
)

// peerUID is not available here: requests on the Unix socket are
// refused, since the caller's user cannot be checked.
func peerUID(*net.UnixConn) (int, error) {
	return 0, fmt.Errorf("peer credentials: %w", ErrNoPeerCred)
}
