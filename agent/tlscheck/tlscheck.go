// Package tlscheck confirms that a server serves a given certificate: after
// the agent has installed a certificate and run the reload hook, it asks
// the server, over TLS, which certificate it presents.
//
// It owns the question "which leaf certificate does addr present for this
// server name?" and nothing more. It does not verify the chain or the
// name (an untrusted or expired certificate is still the one served), does
// not send a client certificate, and speaks no protocol over the
// connection. A server with several certificates for one name (RSA and
// ECDSA, say) picks one by what the client offers; Serves offers what
// crypto/tls offers by default.
package tlscheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certvault/certvault/internal/serial"
)

const (
	// DefaultTimeout limits a dial and handshake when ctx has no deadline.
	DefaultTimeout = 10 * time.Second
	// retryEvery is how often WaitServes asks again.
	retryEvery = 100 * time.Millisecond
)

// MismatchError is the error Serves returns when the server presents a
// certificate other than the one wanted.
type MismatchError struct {
	Addr       string
	ServerName string
	Served     *x509.Certificate // nil if the server presented none
	Want       *x509.Certificate
}

// Error says what was served instead of what was wanted, as in
// "127.0.0.1:8443 (www.example.com) serves serial 0A1B (not after
// 2026-01-02T03:04:05Z), want serial 3C4D".
func (e *MismatchError) Error() string {
	w := where(e.Addr, e.ServerName)
	if e.Served == nil {
		return fmt.Sprintf("%s serves no certificate, want serial %s", w, serialOf(e.Want))
	}
	msg := fmt.Sprintf("%s serves serial %s (not after %s), want serial %s",
		w, serialOf(e.Served), e.Served.NotAfter.UTC().Format(time.RFC3339), serialOf(e.Want))
	if bytes.Equal(e.Served.SerialNumber.Bytes(), e.Want.SerialNumber.Bytes()) {
		got, want := sha256.Sum256(e.Served.Raw), sha256.Sum256(e.Want.Raw)
		msg += fmt.Sprintf(" (same serial, other certificate: SHA-256 %X, want %X)", got[:8], want[:8])
	}
	return msg
}

// serialOf formats a certificate's serial number as openssl prints it.
func serialOf(c *x509.Certificate) string { return serial.Format(c.SerialNumber) }

// Serves dials addr (host:port) with TLS, sending serverName as SNI (none
// if it is empty and addr's host is an IP address), and reports whether
// the leaf certificate the server presents is want, comparing the raw DER.
// The chain is not verified: the point is which certificate is served, not
// whether it is trusted. The dial and handshake end at ctx's deadline, or
// after DefaultTimeout if ctx has none.
//
// A server that presents another certificate yields a *MismatchError that
// names both; a server that cannot be reached or does not complete the
// handshake yields an error saying so.
func Serves(ctx context.Context, addr, serverName string, want *x509.Certificate) error {
	if want == nil || len(want.Raw) == 0 {
		return errors.New("check served certificate: no certificate wanted")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	// The leaf is taken while the handshake runs, so that it is known even
	// if the handshake fails later on (a TLS 1.2 server that requires a
	// client certificate aborts after presenting its own).
	var served []byte
	d := &tls.Dialer{Config: &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // which certificate, not whether it is trusted
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				served = raw[0]
			}
			return nil
		},
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if err != nil && served == nil {
		return fmt.Errorf("connect to %s: %w", where(addr, serverName), err)
	}
	if bytes.Equal(served, want.Raw) {
		return nil
	}
	mis := &MismatchError{Addr: addr, ServerName: serverName, Want: want}
	if served != nil {
		cert, perr := x509.ParseCertificate(served)
		if perr != nil {
			return fmt.Errorf("parse certificate served by %s: %w", where(addr, serverName), perr)
		}
		mis.Served = cert
	}
	return mis
}

// where names a server in messages: "addr (serverName)".
func where(addr, serverName string) string {
	if serverName == "" {
		return addr
	}
	return addr + " (" + serverName + ")"
}

// WaitServes calls Serves every 100ms until it succeeds or ctx is done,
// since a server that has been told to reload switches over in its own
// time. It returns nil, or the error of the last attempt that ctx did not
// cut short (so that "serves serial ..." is not hidden by a final
// "context deadline exceeded").
func WaitServes(ctx context.Context, addr, serverName string, want *x509.Certificate) error {
	if want == nil || len(want.Raw) == 0 {
		return errors.New("wait for served certificate: no certificate wanted")
	}
	tick := time.NewTicker(retryEvery)
	defer tick.Stop()
	var last error
	for {
		err := Serves(ctx, addr, serverName, want)
		if err == nil {
			return nil
		}
		if last == nil || !over(ctx) {
			last = err
		}
		select {
		case <-ctx.Done():
			return last
		case <-tick.C:
			if over(ctx) {
				return last
			}
		}
	}
}

// over reports whether ctx is done or its deadline has passed: a dial can
// fail with a timeout at the deadline a moment before ctx.Err says so.
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
