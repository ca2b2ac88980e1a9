package tlscheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newCert makes a self-signed certificate for www.example.com with the
// given serial number.
func newCert(t *testing.T, serial int64) (*tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "www.example.com"},
		DNSNames:     []string{"www.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// serve runs a TLS server on 127.0.0.1:0 with cfg until the test ends and
// returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				// Wait for the client to hang up.
				_, _ = c.Read(make([]byte, 1))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestServesRightCertificate(t *testing.T) {
	cert, leaf := newCert(t, 0x3C4D)
	addr := serve(t, &tls.Config{Certificates: []tls.Certificate{*cert}})
	if err := Serves(ctxTimeout(t, 30*time.Second), addr, "www.example.com", leaf); err != nil {
		t.Fatal(err)
	}
}

func TestServesOtherCertificate(t *testing.T) {
	served, _ := newCert(t, 0x0A1B)
	_, want := newCert(t, 0x3C4D)
	addr := serve(t, &tls.Config{Certificates: []tls.Certificate{*served}})
	err := Serves(ctxTimeout(t, 30*time.Second), addr, "www.example.com", want)
	if err == nil {
		t.Fatal("Serves = nil for another certificate")
	}
	wantMsg := addr + " (www.example.com) serves serial 0A1B (not after 2030-01-02T03:04:05Z), want serial 3C4D"
	if err.Error() != wantMsg {
		t.Errorf("error = %q, want %q", err, wantMsg)
	}
	var mis *MismatchError
	if !errors.As(err, &mis) || mis.Served == nil || mis.Served.SerialNumber.Int64() != 0x0A1B {
		t.Errorf("error %v is not a *MismatchError with the served certificate", err)
	}
}

func TestServesSameSerialOtherCertificate(t *testing.T) {
	served, _ := newCert(t, 7)
	_, want := newCert(t, 7)
	addr := serve(t, &tls.Config{Certificates: []tls.Certificate{*served}})
	err := Serves(ctxTimeout(t, 30*time.Second), addr, "www.example.com", want)
	if err == nil || !strings.Contains(err.Error(), "same serial, other certificate") {
		t.Errorf("error = %v, want it to say the serials are the same", err)
	}
}

func TestServesSendsSNI(t *testing.T) {
	a, leafA := newCert(t, 1)
	b, leafB := newCert(t, 2)
	var sawName atomic.Pointer[string]
	addr := serve(t, &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := hello.ServerName
		sawName.Store(&name)
		if name == "a.example.com" {
			return a, nil
		}
		return b, nil
	}})
	if err := Serves(ctxTimeout(t, 30*time.Second), addr, "a.example.com", leafA); err != nil {
		t.Fatal(err)
	}
	if p := sawName.Load(); p == nil || *p != "a.example.com" {
		t.Errorf("server saw SNI %v, want a.example.com", p)
	}
	if err := Serves(ctxTimeout(t, 30*time.Second), addr, "b.example.com", leafB); err != nil {
		t.Fatal(err)
	}
	// With no server name and an IP address, no SNI is sent.
	if err := Serves(ctxTimeout(t, 30*time.Second), addr, "", leafB); err != nil {
		t.Fatal(err)
	}
	if p := sawName.Load(); p == nil || *p != "" {
		t.Errorf("server saw SNI %v, want none", p)
	}
}

func TestWaitServesSwitch(t *testing.T) {
	oldCert, _ := newCert(t, 1)
	newC, newLeaf := newCert(t, 2)
	var cur atomic.Pointer[tls.Certificate]
	cur.Store(oldCert)
	addr := serve(t, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return cur.Load(), nil
	}})
	ctx := ctxTimeout(t, 30*time.Second)
	if err := Serves(ctx, addr, "www.example.com", newLeaf); err == nil {
		t.Fatal("Serves = nil before the switch")
	}
	start := time.Now()
	timer := time.AfterFunc(300*time.Millisecond, func() { cur.Store(newC) })
	defer timer.Stop()
	if err := WaitServes(ctx, addr, "www.example.com", newLeaf); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("WaitServes returned after %v, before the switch", d)
	}
}

func TestWaitServesKeepsMismatch(t *testing.T) {
	served, _ := newCert(t, 0x0A1B)
	_, want := newCert(t, 0x3C4D)
	addr := serve(t, &tls.Config{Certificates: []tls.Certificate{*served}})
	err := WaitServes(ctxTimeout(t, 350*time.Millisecond), addr, "www.example.com", want)
	var mis *MismatchError
	if !errors.As(err, &mis) {
		t.Errorf("WaitServes = %v, want the last *MismatchError", err)
	}
}

// freeAddr returns an address on which nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestServesNothingListening(t *testing.T) {
	_, leaf := newCert(t, 1)
	addr := freeAddr(t)
	const limit = 2 * time.Second
	start := time.Now()
	err := Serves(ctxTimeout(t, limit), addr, "www.example.com", leaf)
	if err == nil || !strings.HasPrefix(err.Error(), "connect to "+addr+" (www.example.com): ") {
		t.Errorf("Serves = %v, want a connect error", err)
	}
	if d := time.Since(start); d >= limit {
		t.Errorf("Serves took %v, more than the context allowed", d)
	}

	start = time.Now()
	err = WaitServes(ctxTimeout(t, 300*time.Millisecond), addr, "www.example.com", leaf)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitServes = %v, want the connect error", err)
	}
	if d := time.Since(start); d >= limit {
		t.Errorf("WaitServes took %v for a 300ms context", d)
	}
}

// TestServesSilentServer checks that a server that accepts and never
// answers does not hold Serves past the context's deadline.
func TestServesSilentServer(t *testing.T) {
	_, leaf := newCert(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	start := time.Now()
	err = Serves(ctxTimeout(t, 300*time.Millisecond), ln.Addr().String(), "www.example.com", leaf)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serves = %v, want a deadline error", err)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("Serves took %v for a 300ms context", d)
	}
}

// TestServesClientCertRequired checks that the served certificate is
// known even when the server ends the handshake for want of a client
// certificate.
func TestServesClientCertRequired(t *testing.T) {
	cert, leaf := newCert(t, 0x0A1B)
	_, other := newCert(t, 0x3C4D)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		addr := serve(t, &tls.Config{
			Certificates: []tls.Certificate{*cert},
			ClientAuth:   tls.RequireAnyClientCert,
			MaxVersion:   v,
		})
		if err := Serves(ctxTimeout(t, 30*time.Second), addr, "www.example.com", leaf); err != nil {
			t.Errorf("%s: Serves = %v", tls.VersionName(v), err)
		}
		var mis *MismatchError
		if err := Serves(ctxTimeout(t, 30*time.Second), addr, "www.example.com", other); !errors.As(err, &mis) {
			t.Errorf("%s: Serves = %v, want a *MismatchError", tls.VersionName(v), err)
		}
	}
}

func TestServesNoWant(t *testing.T) {
	if err := Serves(context.Background(), "127.0.0.1:1", "", nil); err == nil {
		t.Error("Serves(nil) = nil")
	}
	if err := WaitServes(context.Background(), "127.0.0.1:1", "", nil); err == nil {
		t.Error("WaitServes(nil) = nil")
	}
}
