package test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// tutorialEnv is the environment the tutorials' by-hand setup exports,
// pointed at a vault and a Pebble a test started.
func tutorialEnv(c *testcluster.Cluster, peb *pebbletest.Server) []string {
	return docEnv(
		"CERTVAULT_ADDR="+c.Nodes[0].URL(), "CERTVAULT_TOKEN="+c.Token, "CERTVAULT_CACERT="+c.CACert,
		"PATH="+filepath.Dir(c.CLIBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ACME_DIRECTORY="+peb.DirectoryURL, "ACME_MANAGEMENT="+peb.ManagementURL,
		"ACME_CA="+peb.ServerCAFile, "CHALLTESTSRV="+peb.ChallSrvURL, "DNS_RESOLVER="+peb.DNSAddr)
}

// pebbleVersionRE finds the Pebble version in a doc's go install line.
var pebbleVersionRE = regexp.MustCompile(`letsencrypt/pebble/v2/cmd/[a-z-]+@(\S+)`)

// checkPebbleVersion fails the test when a doc tells the reader to
// install another Pebble than the one the tests run.
func checkPebbleVersion(t *testing.T, doc string) {
	t.Helper()
	for _, b := range mdBlocks(t, doc) {
		for _, m := range pebbleVersionRE.FindAllStringSubmatch(b.Body, -1) {
			if m[1] != pebbletest.Version {
				t.Errorf("%s:%d: Pebble %s, but the tests run %s", doc, b.Line, m[1], pebbletest.Version)
			}
		}
	}
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
	doc := filepath.Join(root, "docs", "tutorials", "acme.md")
	checkPebbleVersion(t, doc)
	if got, want := docExports(t, doc), docExports(t, filepath.Join(root, "README.md")); !slices.Equal(got, want) {
		t.Errorf("the tutorial's exports\n%s\nare not the README's\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	transcript := runDocBlocks(t, doc, shBlocks(t, doc), t.TempDir(), tutorialEnv(c, peb), "")
	// The tutorial's certificate chains to this Pebble's root.
	if !strings.Contains(transcript, "CertTrial-chain.pem: OK") {
		t.Fatalf("the tutorial's chain did not verify:\n%s", transcript)
	}
}
