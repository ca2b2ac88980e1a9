package issuance

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
)

// The mails to the vault's contacts. Each names the certificate, its
// versions, expiry and issuer, and says what to do when a human is
// needed.

func fmtExpiry(unix *int64) string {
	if unix == nil {
		return "unknown"
	}
	t := time.Unix(*unix, 0).UTC()
	return fmt.Sprintf("%s (in %s)", t.Format(time.RFC3339), time.Until(t).Round(time.Second))
}

// mailRenewing announces a renewal that starts now.
func (s *Issuance) mailRenewing(b *raftstore.Batch, name string, cm core.ObjectMeta, issuer string) error {
	subject := fmt.Sprintf("[certvault] renewing certificate %s", name)
	body := fmt.Sprintf(`The vault is renewing certificate %s now, as its policy's AutoRenew action says.

Certificate:     %s
Current version: %s
Expires:         %s
Issuer:          %s

You will get another message when the new version is ready, or if the
renewal fails.
`, name, name, cm.Current, fmtExpiry(cm.Summary.Expires), issuer)
	return s.EnqueueMail(b, subject, body)
}

// mailRenewed announces a new version made by a renewal.
func (s *Issuance) mailRenewed(b *raftstore.Batch, name string, prev core.ObjectMeta, version string, leafDER []byte, issuer string) error {
	exp := "unknown"
	if c, err := x509.ParseCertificate(leafDER); err == nil {
		exp = c.NotAfter.UTC().Format(time.RFC3339)
	}
	subject := fmt.Sprintf("[certvault] certificate %s renewed", name)
	body := fmt.Sprintf(`Certificate %s was renewed.

Certificate:  %s
Old version:  %s (expires %s)
New version:  %s (expires %s)
Issuer:       %s

Applications that read the current version get the new one; agents
install it on their next poll.
`, name, name, orNone(prev.Current), fmtExpiry(prev.Summary.Expires), version, exp, issuer)
	return s.EnqueueMail(b, subject, body)
}

// mailRenewalFailed says a renewal failed and what to do.
func (s *Issuance) mailRenewalFailed(b *raftstore.Batch, name string, cm core.ObjectMeta, issuer string, cause error, attempts int, next time.Time) error {
	subject := fmt.Sprintf("[certvault] renewal of certificate %s failed", name)
	body := fmt.Sprintf(`The automatic renewal of certificate %s failed (attempt %d).

Certificate:     %s
Current version: %s
Expires:         %s
Issuer:          %s
Error:           %s

The vault tries again at %s, with growing intervals. What to do: check the
error above; for a CA issuer, 'certvault issuer check %s' tells whether the
CA account works; 'certvault cert operation %s' shows the last operation.
`, name, attempts, name, cm.Current, fmtExpiry(cm.Summary.Expires), issuer,
		strings.TrimSpace(cause.Error()), next.UTC().Format(time.RFC3339), issuer, name)
	return s.EnqueueMail(b, subject, body)
}

// mailRenewalHalted says the renewal brake stopped a certificate's
// automatic renewal, and how a person resumes it.
func (s *Issuance) mailRenewalHalted(b *raftstore.Batch, name string, cm core.ObjectMeta, issuer, reason string) error {
	subject := fmt.Sprintf("[certvault] automatic renewal of certificate %s halted", name)
	body := fmt.Sprintf(`The vault stopped renewing certificate %s automatically: it was
%s.

Certificate:     %s
Current version: %s
Expires:         %s
Issuer:          %s

Only a renewal loop or a policy that renews far too often gets here. The
certificate keeps its current version and is not renewed automatically
again until a person acts. What to do: look at the policy
('certvault cert policy get %s': lifetime_actions, validity) and the log,
then either
  - update the policy ('certvault cert policy set %s --policy FILE'),
    which clears the halt and plans the next renewal from it, or
  - make a new version yourself ('certvault cert create %s --policy FILE').
`, name, reason, name, cm.Current, fmtExpiry(cm.Summary.Expires), issuer, name, name, name)
	return s.EnqueueMail(b, subject, body)
}

// mailExpiring is the EmailContacts lifetime action.
func (s *Issuance) mailExpiring(b *raftstore.Batch, name string, cm core.ObjectMeta, issuer string) error {
	subject := fmt.Sprintf("[certvault] certificate %s expires soon", name)
	body := fmt.Sprintf(`Certificate %s expires soon and its policy does not renew it by itself.

Certificate:     %s
Current version: %s
Expires:         %s
Issuer:          %s

What to do: make a new version ('certvault cert create %s --policy FILE'; with
the Unknown issuer, sign the new CSR and 'certvault cert merge %s'), or let
it expire if it is no longer used.
`, name, name, cm.Current, fmtExpiry(cm.Summary.Expires), issuer, name, name)
	return s.EnqueueMail(b, subject, body)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
