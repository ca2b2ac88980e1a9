// Package nginxtest starts a real nginx (Debian's package) for a test: its
// own prefix and configuration, one TLS server on a 127.0.0.1 port, and
// helpers to reload it and read the certificate it serves. It does not
// manage certificates; the test (or the agent under test) does.
package nginxtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running nginx.
type Server struct {
	Bin, Prefix, Conf string
	// Addr is the TLS listener, 127.0.0.1:PORT.
	Addr string
	t    testing.TB
}

// Binary finds nginx or skips the test when it is not installed (make
// test installs it).
func Binary(t testing.TB) string {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	t.Skip("nginx is not installed (make deps installs it)")
	return ""
}

// Start runs nginx serving TLS on addr with the certificate and key at
// certFile and keyFile (which must exist), for server name serverName.
// It is stopped when the test ends.
func Start(t testing.TB, addr, serverName, certFile, keyFile string) *Server {
	t.Helper()
	s := &Server{Bin: Binary(t), Prefix: t.TempDir(), Addr: addr, t: t}
	os.MkdirAll(filepath.Join(s.Prefix, "logs"), 0o755)
	s.Conf = filepath.Join(s.Prefix, "nginx.conf")
	user := ""
	if os.Geteuid() == 0 {
		user = "user www-data www-data;"
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon on;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    server {
        listen %[3]s ssl;
        server_name %[4]s;
        ssl_certificate %[5]s;
        ssl_certificate_key %[6]s;
        location / { return 200 "ok\n"; }
    }
}
`, user, s.Prefix, addr, serverName, certFile, keyFile)
	if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(s.Bin, "-p", s.Prefix, "-c", s.Conf).CombinedOutput(); err != nil {
		t.Fatalf("start nginx: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s: %v\n%s", addr, err, s.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReloadArgv is the command that reloads this nginx, for a reload hook.
func (s *Server) ReloadArgv() []string {
	return []string{s.Bin, "-p", s.Prefix, "-c", s.Conf, "-s", "reload"}
}

// Stop stops nginx and waits for its master to exit.
func (s *Server) Stop() {
	pid := s.pid()
	exec.Command(s.Bin, "-p", s.Prefix, "-c", s.Conf, "-s", "stop").Run()
	deadline := time.Now().Add(10 * time.Second)
	for pid > 0 && syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) pid() int {
	data, err := os.ReadFile(filepath.Join(s.Prefix, "nginx.pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(strings.TrimSpace(string(data)), &pid)
	return pid
}

// ErrorLog returns nginx's error log.
func (s *Server) ErrorLog() string {
	data, _ := os.ReadFile(filepath.Join(s.Prefix, "logs", "error.log"))
	return string(data)
}

// Served returns the leaf certificate nginx presents for serverName.
func (s *Server) Served(serverName string) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{ServerName: serverName, InsecureSkipVerify: true}}
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to nginx: %w", err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// BreakConfig appends a directive nginx refuses, so that a reload keeps
// the old configuration (and the old certificate); FixConfig undoes it.
func (s *Server) BreakConfig() {
	f, err := os.OpenFile(s.Conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	f.WriteString("\nthis_is_not_a_directive;\n")
	f.Close()
}

// FixConfig removes what BreakConfig added.
func (s *Server) FixConfig() {
	data, err := os.ReadFile(s.Conf)
	if err != nil {
		s.t.Fatal(err)
	}
	os.WriteFile(s.Conf, []byte(strings.ReplaceAll(string(data), "\nthis_is_not_a_directive;\n", "")), 0o644)
}
