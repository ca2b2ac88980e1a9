// Package bindtest starts a real BIND 9 named for tests: a primary server
// on 127.0.0.1 for a few zones that a TSIG key may update (RFC 2136), the
// way an operator's BIND is set up for certvault's rfc2136 DNS solver.
package bindtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// installBIND is the command that installs BIND 9 and its tools.
const installBIND = "apt-get install -y bind9 bind9-utils"

// Tool finds a program of Debian's bind9 package (named, tsig-keygen,
// ddns-confgen), which live in /usr/sbin, often not on a user's PATH.
// Without it the test is skipped for a user who cannot install packages
// and fails as root, who can (the Makefile's deps target lists bind9).
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	if os.Geteuid() == 0 {
		t.Fatalf("%s (BIND 9) is not installed: install it with `%s` (bind9 is in the Makefile's APT_PKGS for make deps)", name, installBIND)
	}
	t.Skipf("%s (BIND 9) is not installed: install it with `sudo %s`", name, installBIND)
	return ""
}

// TSIGKeygen runs tsig-keygen and returns the key file it prints.
func TSIGKeygen(t testing.TB, alg, name string) []byte {
	t.Helper()
	out, err := exec.Command(Tool(t, "tsig-keygen"), "-a", alg, name).Output()
	if err != nil {
		t.Fatalf("tsig-keygen -a %s %s: %v", alg, name, err)
	}
	return out
}

// Server is a real BIND 9 named serving, as primary, the zones
// example.test, deep.example.test (a child zone on the same server) and
// other.test, on 127.0.0.1 at a free port. The key in KeyFile (named
// KeyName) may update TXT records in the three zones; the one in
// ReadOnlyKeyFile is known to named but granted nothing. Both files are
// as tsig-keygen writes them.
type Server struct {
	Addr            string
	KeyName         string
	KeyFile         []byte
	ReadOnlyKeyFile []byte
	log             *syncBuffer
}

// Log returns named's output so far.
func (s *Server) Log() string { return s.log.String() }

// Start starts named for the test and stops it at cleanup. named runs
// in the foreground (-g), IPv4 only, one worker thread, with every file
// (pid, session key, managed keys, journals) in a temporary directory and
// no control channel, so it needs no setup beyond the bind9 package and
// runs as root or as any user.
func Start(t testing.TB) *Server {
	t.Helper()
	named := Tool(t, "named")
	dir := t.TempDir()

	const keyName = "certvault-test"
	keyFile := TSIGKeygen(t, "hmac-sha256", keyName)
	roFile := TSIGKeygen(t, "hmac-sha512", "readonly")
	writeFile(t, filepath.Join(dir, "keys.conf"), append(keyFile, roFile...))
	zones := []string{"example.test", "deep.example.test", "other.test"}
	for _, z := range zones {
		writeFile(t, filepath.Join(dir, z+".db"), []byte(fmt.Sprintf(`$TTL 300
@	IN SOA ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@	IN NS ns.%[1]s.
ns	IN A 127.0.0.1
www	IN A 127.0.0.1
`, z)))
	}

	for attempt := 1; ; attempt++ {
		port := freePort(t)
		var conf strings.Builder
		fmt.Fprintf(&conf, `include "%[1]s/keys.conf";
options {
	directory "%[1]s";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	managed-keys-directory "%[1]s";
	recursion no;
	dnssec-validation no;
	notify no;
};
controls { };
`, dir, port)
		for _, z := range zones {
			fmt.Fprintf(&conf, `zone "%[2]s" {
	type primary;
	file "%[1]s/%[2]s.db";
	journal "%[1]s/%[2]s.jnl";
	update-policy { grant %[3]s zonesub TXT; };
};
`, dir, z, keyName)
		}
		confPath := filepath.Join(dir, "named.conf")
		writeFile(t, confPath, []byte(conf.String()))

		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), KeyName: keyName, KeyFile: keyFile, ReadOnlyKeyFile: roFile, log: &syncBuffer{}}
		cmd := exec.Command(named, "-g", "-4", "-n", "1", "-c", confPath)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start named: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		err := s.waitReady(exited, 15*time.Second)
		if err == nil {
			t.Cleanup(stop)
			return s
		}
		stop()
		if attempt < 3 && strings.Contains(s.log.String(), "address in use") {
			continue // another process took the port in between
		}
		t.Fatalf("named did not start: %v\nnamed's log:\n%s", err, s.log.String())
	}
}

// waitReady polls named with SOA queries until it answers for example.test,
// it exits or the deadline passes.
func (s *Server) waitReady(exited <-chan struct{}, within time.Duration) error {
	deadline := time.Now().Add(within)
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeSOA)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for {
		r, _, err := c.Exchange(m, s.Addr)
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("named exited")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no SOA answer from %s within %v (last error: %v)", s.Addr, within, err)
		}
	}
}

// TXT returns the TXT values at name as named answers them.
func (s *Server) TXT(t testing.TB, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("query TXT %s at named: %v", name, err)
	}
	var got []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			got = append(got, strings.Join(txt.Txt, ""))
		}
	}
	return got
}

// TTL returns the TTL of the first TXT record at name.
func (s *Server) TTL(t testing.TB, name string) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.Addr)
	if err != nil || len(r.Answer) == 0 {
		t.Fatalf("query TXT %s at named: %v (%d records)", name, err, len(r.Answer))
	}
	return r.Answer[0].Header().Ttl
}

// freePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
