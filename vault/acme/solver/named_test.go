package solver_test

import (
	"context"
	"testing"
	"time"

	"github.com/certvault/certvault/test/bindtest"
	"github.com/certvault/certvault/vault/acme/solver"
)

// namedServer is a bindtest.Server with its keys parsed.
type namedServer struct {
	*bindtest.Server
	Key         *solver.TSIGKey
	ReadOnlyKey *solver.TSIGKey
}

// startNamed starts a real BIND 9 (see package bindtest).
func startNamed(t *testing.T) *namedServer {
	t.Helper()
	s := bindtest.Start(t)
	key, err := solver.ParseTSIGKey(s.KeyFile)
	if err != nil {
		t.Fatalf("ParseTSIGKey(tsig-keygen output): %v", err)
	}
	ro, err := solver.ParseTSIGKey(s.ReadOnlyKeyFile)
	if err != nil {
		t.Fatalf("ParseTSIGKey(tsig-keygen output): %v", err)
	}
	return &namedServer{Server: s, Key: key, ReadOnlyKey: ro}
}

func (s *namedServer) txt(t *testing.T, name string) []string { return s.TXT(t, name) }
func (s *namedServer) ttl(t *testing.T, name string) uint32   { return s.TTL(t, name) }

func bindTool(t *testing.T, name string) string { return bindtest.Tool(t, name) }

func tsigKeygen(t *testing.T, alg, name string) []byte { return bindtest.TSIGKeygen(t, alg, name) }

// ctxTimeout is a context that ends after d or at the test's end.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
