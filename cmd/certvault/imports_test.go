package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerCode: the CLI imports nothing of the vault's server code
// (vault/..., raftstore): what it shares with the server (the Key Vault
// wire types, the client) lives under internal/.
func TestNoServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/certvault/certvault/vault") || strings.HasPrefix(dep, "github.com/certvault/certvault/raftstore") {
			t.Errorf("certvault imports %s", dep)
		}
	}
}
