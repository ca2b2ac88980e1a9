package test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/pebbletest"
	"github.com/certvault/certvault/test/smtptest"
	"github.com/certvault/certvault/test/testcluster"
)

// TestSeedWalkthrough runs docs/tutorials/seed-walkthrough.md: every sh
// block, in order, in one directory, on a fresh single-node vault with a
// Pebble standing in for DigiCert and an SMTP server for the contacts'
// mail, all started here with the variables the page's shell blocks
// export. A block that fails (a renamed flag, a changed command, an
// openssl check that no longer holds) fails the test. Then it checks what
// the page says happened beyond the blocks' own checks: the renewal mails
// reached the contacts, the chain and the CRL verified as shown.
func TestSeedWalkthrough(t *testing.T) {
	t.Parallel()
	peb := pebbletest.Start(t, pebbletest.Options{EAB: map[string]string{tutorialKID: tutorialHMAC}})
	mail := smtptest.Start(t)
	// As the page's "make run ARGS=..." starts it.
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--smtp-addr", mail.Addr, "--smtp-from", "certvault@example.com"}})
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(root, "docs", "tutorials", "seed-walkthrough.md")

	// The by-hand setup the test replaces: the exports are the README's
	// (which TestReadmeTour checks against make run's banner), and the
	// Pebble is the version the tests run.
	if got, want := docExports(t, doc), docExports(t, filepath.Join(root, "README.md")); !slices.Equal(got, want) {
		t.Errorf("the walkthrough's exports\n%s\nare not the README's\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkPebbleVersion(t, doc)

	transcript := runDocBlocks(t, doc, shBlocks(t, doc), t.TempDir(), tutorialEnv(c, peb), "")

	for _, want := range []string{
		"CertTrial-chain.pem: OK",     // the ACME chain ends at Pebble's root
		"certificate revoked",         // the CRL refuses the revoked version
		"Certificate Revocation List", // the CRL parsed
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("the walkthrough's transcript lacks %q", want)
		}
	}
	// "The contacts get a mail when it starts and when the new version
	// is ready."
	for _, subject := range []string{
		"Subject: [certvault] renewing certificate renewal-demo",
		"Subject: [certvault] certificate renewal-demo renewed",
	} {
		m := mail.Wait(t, 30*time.Second, subject)
		if len(m.To) != 1 || m.To[0] != "pki-team@example.com" || m.From != "certvault@example.com" {
			t.Errorf("%s: from %q to %q, want from certvault@example.com to pki-team@example.com", subject, m.From, m.To)
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", transcript)
	}
}
