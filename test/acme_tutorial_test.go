package test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certvault/certvault/test/pebbletest"
	"github.com/certvault/certvault/test/testcluster"
)

// tutorialEAB is the key id and HMAC key the tutorial uses: the first
// key of Pebble's own EAB configuration.
const (
	tutorialKID  = "kid-1"
	tutorialHMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
)

// shBlocks returns the bodies of the ```sh fenced blocks of a markdown
// file, in order (```shell blocks are for the reader to run by hand).
func shBlocks(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("%s has no sh blocks", path)
	}
	return blocks
}

// TestACMETutorial runs docs/tutorials/acme.md: every sh block, in order,
// in one directory, with the variables its by-hand setup exports pointed
// at a vault and a Pebble this test starts. A block that fails fails the
// test, so the tutorial cannot rot.
func TestACMETutorial(t *testing.T) {
	t.Parallel()
	peb := pebbletest.Start(t, pebbletest.Options{EAB: map[string]string{tutorialKID: tutorialHMAC}})
	c := testcluster.Start(t, 1, testcluster.Options{})
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlocks(t, filepath.Join(root, "docs", "tutorials", "acme.md"))
	work := t.TempDir()
	env := append(os.Environ(),
		"CERTVAULT_ADDR="+c.Nodes[0].URL(), "CERTVAULT_TOKEN="+c.Token, "CERTVAULT_CACERT="+c.CACert,
		"PATH="+filepath.Dir(c.CLIBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ACME_DIRECTORY="+peb.DirectoryURL, "ACME_MANAGEMENT="+peb.ManagementURL,
		"ACME_CA="+peb.ServerCAFile, "CHALLTESTSRV="+peb.ChallSrvURL, "DNS_RESOLVER="+peb.DNSAddr)
	var transcript bytes.Buffer
	for i, b := range blocks {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", b)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		transcript.WriteString("$ " + strings.ReplaceAll(strings.TrimSpace(b), "\n", "\n$ ") + "\n" + string(out))
		if err != nil {
			t.Fatalf("tutorial block %d failed: %v\n%s\ntranscript:\n%s", i+1, err, b, transcript.String())
		}
	}
	if testing.Verbose() {
		t.Logf("transcript:\n%s", transcript.String())
	}
	// The tutorial's certificate chains to this Pebble's root.
	if !strings.Contains(transcript.String(), "CertTrial-chain.pem: OK") {
		t.Fatalf("the tutorial's chain did not verify:\n%s", transcript.String())
	}
}
