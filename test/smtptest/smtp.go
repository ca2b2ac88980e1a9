// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp)
// on 127.0.0.1 for tests, and keeps the messages it receives.
package smtptest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is a received mail.
type Message struct {
	From string
	To   []string
	Data string
}

// Server is a running SMTP server.
type Server struct {
	// Addr is HOST:PORT.
	Addr string
	mu   sync.Mutex
	msgs []Message
}

// Start listens on a free 127.0.0.1 port until the test ends. It offers
// no TLS: the vault sends to a loopback relay without it.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String()}
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait polls until a message whose data contains every string of want
// arrives, or fails the test after d.
func (s *Server) Wait(t testing.TB, d time.Duration, want ...string) Message {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
	next:
		for _, m := range s.Messages() {
			for _, w := range want {
				if !strings.Contains(m.Data, w) {
					continue next
				}
			}
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no mail with %q within %v; received %d", want, d, len(s.Messages()))
	return Message{}
}

type backend struct{ s *Server }

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s *Server
	m Message
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error { x.m.From = from; return nil }
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error   { x.m.To = append(x.m.To, to); return nil }
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.m.Data = string(b)
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, x.m)
	x.s.mu.Unlock()
	x.m = Message{}
	return nil
}
func (x *session) Reset()        { x.m = Message{} }
func (x *session) Logout() error { return nil }
