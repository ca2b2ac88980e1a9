package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/smtptest"
	"github.com/certvault/certvault/vault/notify"
)

// TestSendLoopback sends through a real SMTP server on 127.0.0.1, which
// offers no TLS: allowed for a loopback relay in the auto mode, refused
// when STARTTLS is required.
func TestSendLoopback(t *testing.T) {
	srv := smtptest.Start(t)
	m := &notify.Mailer{Addr: srv.Addr, From: "certvault@example.test"}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	err := m.Send(context.Background(), notify.Message{To: []string{"a@example.test", "b@example.test"}, Subject: "renewed", Body: "line one\n.line with a dot\nend"})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 5*time.Second, "Subject: renewed", "\r\n.line with a dot\r\n", "Auto-Submitted: auto-generated")
	if len(got.To) != 2 || got.From != "certvault@example.test" {
		t.Fatalf("envelope: %+v", got)
	}
	strict := &notify.Mailer{Addr: srv.Addr, From: "certvault@example.test", TLS: notify.TLSStartTLS}
	if err := strict.Send(context.Background(), notify.Message{To: []string{"a@example.test"}, Subject: "x"}); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("STARTTLS required against a relay without it: %v", err)
	}
}

// TestCheck refuses a bad configuration with a message naming the flag.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		m    notify.Mailer
		want string
	}{
		{notify.Mailer{Addr: "smtp.example.com", From: "a@example.com"}, "--smtp-addr"},
		{notify.Mailer{Addr: "smtp.example.com:587", From: "not an address"}, "--smtp-from"},
		{notify.Mailer{Addr: "smtp.example.com:587", From: "a@example.com", TLS: "ssl"}, "--smtp-tls"},
		{notify.Mailer{Addr: "smtp.example.com:587", From: "a@example.com", Username: "u"}, "--smtp-password-file"},
	} {
		if err := tc.m.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want %q", tc.m, err, tc.want)
		}
	}
	if err := (&notify.Mailer{Addr: "127.0.0.1:1", From: "a@example.com"}).Send(context.Background(), notify.Message{To: []string{"x@example.com"}}); err == nil || !strings.Contains(err.Error(), "connect to the SMTP relay") {
		t.Fatalf("unreachable relay: %v", err)
	}
}
