package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestStaticAndIndependent: the agent builds with CGO_ENABLED=0 and
// imports nothing of the vault's server code, so it runs on any Linux VM.
func TestStaticAndIndependent(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/certvault/certvault/vault") || strings.HasPrefix(dep, "github.com/certvault/certvault/raftstore") {
			t.Errorf("certvault-agent imports %s", dep)
		}
		if dep == "runtime/cgo" {
			t.Error("certvault-agent needs cgo")
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "certvault-agent join --vault URL") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"join", "--vault", "https://x"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "required") {
		t.Fatalf("join without token: %d %q", code, errOut.String())
	}
}
