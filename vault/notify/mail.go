// Package notify sends the vault's messages to people: mail through an
// SMTP relay, with STARTTLS or implicit TLS, and credentials read from a
// file. A relay on a loopback address may be used without TLS.
package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// TLS modes of a Mailer.
const (
	// TLSAuto uses STARTTLS when the relay offers it, and requires it
	// unless the relay is on a loopback address.
	TLSAuto = "auto"
	// TLSStartTLS requires STARTTLS.
	TLSStartTLS = "starttls"
	// TLSImplicit connects with TLS from the start (port 465).
	TLSImplicit = "implicit"
)

// Mailer sends mail through one relay.
type Mailer struct {
	// Addr is the relay, HOST:PORT.
	Addr string
	// From is the envelope and header sender.
	From string
	// TLS is TLSAuto (default), TLSStartTLS or TLSImplicit.
	TLS string
	// Username and PasswordFile authenticate (PLAIN) when set.
	Username     string
	PasswordFile string
	// RootCAs verifies the relay's certificate (nil: the system roots).
	RootCAs *x509.CertPool
	// Timeout bounds one delivery (default 30s).
	Timeout time.Duration
}

// Check validates the configuration without contacting the relay.
func (m *Mailer) Check() error {
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil || host == "" {
		return fmt.Errorf("--smtp-addr %q: give HOST:PORT, e.g. smtp.example.com:587", m.Addr)
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		return fmt.Errorf("--smtp-from %q: not a mail address", m.From)
	}
	switch m.TLS {
	case "", TLSAuto, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("--smtp-tls %q: use auto, starttls or implicit", m.TLS)
	}
	if (m.Username == "") != (m.PasswordFile == "") {
		return errors.New("--smtp-user and --smtp-password-file go together")
	}
	return nil
}

// Message is one mail.
type Message struct {
	To      []string
	Subject string
	Body    string
}

// Send delivers msg. The error names the step that failed (connect, TLS,
// authentication, a refused recipient) without the password.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	if len(msg.To) == 0 {
		return errors.New("no recipients")
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(m.Addr)
	tlsConf := &tls.Config{ServerName: host, RootCAs: m.RootCAs, MinVersion: tls.VersionTLS12}
	d := &net.Dialer{}
	var conn net.Conn
	var err error
	if m.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(ctx, "tcp", m.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", m.Addr)
	}
	if err != nil {
		return fmt.Errorf("connect to the SMTP relay %s: %w", m.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP relay %s: %w", m.Addr, err)
	}
	defer c.Close()
	if m.TLS != TLSImplicit {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConf); err != nil {
				return fmt.Errorf("STARTTLS with %s: %w", m.Addr, err)
			}
		} else if m.TLS == TLSStartTLS || !isLoopback(host) {
			return fmt.Errorf("the SMTP relay %s does not offer STARTTLS; mail with credentials and certificate names is sent over TLS only (a relay on a loopback address is the exception)", m.Addr)
		}
	}
	if m.Username != "" {
		pw, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return fmt.Errorf("read the SMTP password file: %w", err)
		}
		auth := smtp.PlainAuth("", m.Username, strings.TrimSpace(string(pw)), host)
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("SMTP authentication as %s failed: %w", m.Username, err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("the relay refused the sender %s: %w", m.From, err)
	}
	for _, to := range msg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("the relay refused the recipient %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(format(m.From, msg)); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("the relay did not accept the message: %w", err)
	}
	return c.Quit()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// format renders the message with its headers (CRLF line ends).
func format(from string, msg Message) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(msg.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", strings.ReplaceAll(msg.Subject, "\n", " "))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nAuto-Submitted: auto-generated\r\n\r\n")
	body := strings.ReplaceAll(msg.Body, "\r\n", "\n")
	// The DATA writer of net/smtp does the dot-stuffing.
	for _, line := range strings.Split(body, "\n") {
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}
