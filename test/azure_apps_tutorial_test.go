package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/certvault/certvault/test/testcluster"
)

// TestAzureAppsTutorial runs docs/tutorials/azure-apps.md (issue 18, item
// 6): every sh block, in order, in one scratch directory, against a vault
// this test starts. The tutorial builds examples/keyvault-app (Go) and
// installs its JavaScript twin with npm ci, moves both to the vault by
// their environment (a service principal's secret), then runs them again
// with only the managed identity a real certvault-agent serves.
func TestAzureAppsTutorial(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"node", "npm", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run `make deps`", tool)
		}
	}
	c := testcluster.Start(t, 1, testcluster.Options{})
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(root, "docs", "tutorials", "azure-apps.md")
	if got, want := docExports(t, doc), docExports(t, filepath.Join(root, "README.md")); !slices.Equal(got, want) {
		t.Errorf("the tutorial's exports\n%s\nare not the README's\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	dir := t.TempDir()
	t.Cleanup(func() {
		// The tutorial's last block stops the agent; a failed run may
		// leave it running.
		if pid, err := os.ReadFile(filepath.Join(dir, "agent.pid")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})
	agentDir := filepath.Dir(testcluster.AgentBinary(t))
	env := docEnv("CERTVAULT_ADDR="+c.Nodes[0].URL(), "CERTVAULT_TOKEN="+c.Token, "CERTVAULT_CACERT="+c.CACert,
		"PATH="+filepath.Dir(c.CLIBin)+string(os.PathListSeparator)+agentDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REPO="+root, "MI_PORT="+strings.Split(testcluster.FreeAddr(t), ":")[1])
	transcript := runDocBlocks(t, doc, shBlocks(t, doc), dir, env, "")

	// Four runs of the application (Go and JavaScript, with the service
	// principal's secret and with the agent's managed identity) read the
	// secret and the certificate.
	if n := strings.Count(transcript, `"value": "correct-horse-battery-staple"`); n != 4 {
		t.Errorf("the secret was read %d times, want 4 (Go and Node.js, secret and managed identity):\n%s", n, transcript)
	}
	if n := strings.Count(transcript, `"subject": "CN=billing.example.com"`); n != 4 {
		t.Errorf("the certificate was read %d times, want 4:\n%s", n, transcript)
	}
	if !strings.Contains(transcript, "400 nobody ") {
		t.Errorf("the env file is not mode 0400 owned by nobody:\n%s", transcript)
	}
	if !strings.Contains(transcript, "\n401\n") {
		t.Errorf("a request without the header was not refused with 401:\n%s", transcript)
	}
}
