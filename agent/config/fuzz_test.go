package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fuzzCA is a CA certificate the fuzz environment serves as
// /etc/certvault/ca.pem.
const fuzzCA = `-----BEGIN CERTIFICATE-----
MIIBVDCB+6ADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMTB2Z1enogQ0Ew
HhcNMjUwMTAxMDAwMDAwWhcNNDUwMTAxMDAwMDAwWjASMRAwDgYDVQQDEwdmdXp6
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZ5O2aGbTTkG4NrqBRp8ToRCD
6iwjsQtEfRJO30GLh1TyqKxr1eW7+jzKvJZ+Apki92jgr9ctaXnbzq+sf2Zwa6NC
MEAwDgYDVR0PAQH/BAQDAgIEMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFG4A
clUyTAYaOQDS9PFp5vu6QJDNMAoGCCqGSM49BAMCA0gAMEUCIQD4pxiTZlnaxqxr
wMxVcvGCPt61HbsRaezU8AldRF80qwIgCybBKZjNWNv/7u8QFywcHKNwPz8OWdoE
tOJPwJcjxL0=
-----END CERTIFICATE-----
`

// fakeFile is a file of the fuzz environment.
type fakeFile struct {
	name string
	dir  bool
	mode fs.FileMode
}

func (f fakeFile) Name() string       { return filepath.Base(f.name) }
func (f fakeFile) Size() int64        { return 0 }
func (f fakeFile) Mode() fs.FileMode  { return f.mode }
func (f fakeFile) ModTime() time.Time { return time.Time{} }
func (f fakeFile) IsDir() bool        { return f.dir }
func (f fakeFile) Sys() any           { return nil }

// fuzzEnv is a machine with a few users, groups, commands and files,
// and nothing else: the fuzzer's paths never reach the real disk.
func fuzzEnv() Env {
	users := map[string]int{"root": 0, "app": 1001, "nginx": 101}
	groups := map[string]int{"root": 0, "www-data": 33, "app": 1001}
	cmds := map[string]string{"systemctl": "/usr/bin/systemctl", "sh": "/bin/sh"}
	files := map[string]fakeFile{
		"/etc/certvault/ca.pem":       {name: "ca.pem", mode: 0o644},
		"/etc/certvault/www.pfxpass":  {name: "www.pfxpass", mode: 0o600},
		"/usr/local/bin/reload-app":   {name: "reload-app", mode: 0o755},
		"/usr/local/bin/not-runnable": {name: "not-runnable", mode: 0o644},
		"/etc/certvault":              {name: "certvault", dir: true, mode: fs.ModeDir | 0o755},
		"/usr/bin/systemctl":          {name: "systemctl", mode: 0o755},
		"/bin/sh":                     {name: "sh", mode: 0o755},
	}
	return Env{
		LookupUser: func(name string) (int, error) {
			if id, ok := users[name]; ok {
				return id, nil
			}
			return 0, user.UnknownUserError(name)
		},
		LookupGroup: func(name string) (int, error) {
			if id, ok := groups[name]; ok {
				return id, nil
			}
			return 0, user.UnknownGroupError(name)
		},
		LookPath: func(file string) (string, error) {
			if p, ok := cmds[file]; ok {
				return p, nil
			}
			return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
		},
		Stat: func(name string) (fs.FileInfo, error) {
			if f, ok := files[name]; ok {
				return f, nil
			}
			return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
		},
		ReadFile: func(name string) ([]byte, error) {
			if name == "/etc/certvault/ca.pem" {
				return []byte(fuzzCA), nil
			}
			if f, ok := files[name]; ok && !f.dir {
				return []byte("secret\n"), nil
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		},
	}
}

// FuzzAgentConfig feeds agent configuration files to the parser.
// Properties: it answers the same twice; a refusal is an *Error wrapping
// ErrInvalid whose problems have lines in the file; and an accepted
// configuration keeps the promises of the Config type (an https vault,
// absolute clean paths, no two bindings writing one file, nothing inside
// state_dir, modes and timeouts in range, at least one binding or a
// managed identity, which listens on loopback only and gives each user
// one identity and each identity its own env_file).
func FuzzAgentConfig(f *testing.F) {
	f.Add([]byte(`vault: https://vault.example:8443
ca_file: /etc/certvault/ca.pem
state_dir: /var/lib/certvault-agent
certificates:
  - name: www
    dir: /etc/nginx/tls/www
    files: {cert: cert.pem, chain: chain.pem, fullchain: fullchain.pem, key: key.pem, combined: combined.pem, pfx: www.pfx}
    pfx_password_file: /etc/certvault/www.pfxpass
    owner: root
    group: www-data
    mode: "0640"
    reload: ["systemctl", "reload", "nginx"]
    check: {tls: "127.0.0.1:443", server_name: www.example.com}
    timeout: 30s
secrets:
  - name: db-password
    file: /etc/app/db-password
    owner: app
    mode: "0400"
    reload: ["systemctl", "restart", "app"]
`))
	f.Add([]byte("vault: https://v\nca_file: /etc/certvault/ca.pem\nstate_dir: /var/lib/a\nsecrets:\n  - {name: a, file: /a/b, reload: /usr/local/bin/reload-app}\n  - {name: b, file: /a/c, reload: \"systemctl reload x\", timeout: 1m}\n"))
	f.Add([]byte("vault: https://v:8443/base\nca_file: /etc/certvault/ca.pem\nstate_dir: /var/lib/a\ncertificates:\n  - &b {name: a, dir: /x, files: {cert: c.pem, pfx: a.pfx}, pfx_password_file: /etc/certvault/www.pfxpass, check: {tls: \"[::1]:443\"}}\n  - {<<: *b, name: b, dir: /y}\n  - {<<: [*b], name: c, dir: /z, mode: \"0644\", owner: nginx, group: app}\n"))
	f.Add([]byte("vault: http://v\n\tca_file: x\n---\nsecrets: []\n"))
	f.Add([]byte("certificates:\n  - name: a\n    name: b\n    dri: /x\n"))
	f.Add([]byte("vault: https://v\nca_file: /etc/certvault/ca.pem\nstate_dir: /var/lib/a\nmanaged_identity:\n  listen: 127.0.0.1:50342\n  socket: /run/a/id.sock\n  identities:\n    - {user: app, service_principal: billing, client_id: c-1, env_file: /run/a/app.env}\n    - {user: nginx, env_file: /run/a/nginx.env}\n"))
	f.Add([]byte("vault: https://v\nca_file: /etc/certvault/ca.pem\nstate_dir: /var/lib/a\nsecrets: [{name: a, file: /run/a/app.env}]\nmanaged_identity:\n  listen: \"[::1]:0\"\n  identities: [{user: app, env_file: /run/a/app.env}, {user: \"1001\", env_file: /var/lib/a/x}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env := fuzzEnv()
		c, err := ParseWith(data, "agent.yaml", env)
		c2, err2 := ParseWith(data, "agent.yaml", env)
		if !reflect.DeepEqual(c, c2) || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("two parses differ:\n%v %v\n%v %v", c, err, c2, err2)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || len(e.Problems) == 0 {
				t.Fatalf("refused with %v (%T), want an *Error wrapping ErrInvalid with problems", err, err)
			}
			// YAML breaks lines at \r\n, \r and \n alike.
			lines := strings.Count(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") + strings.Count(string(data), "\r") - strings.Count(string(data), "\r\n") + 1
			for _, pr := range e.Problems {
				if pr.Line < 1 || pr.Line > lines {
					t.Fatalf("problem %+v is on line %d of a %d-line file", pr, pr.Line, lines)
				}
			}
			if c != nil {
				t.Fatal("a refused file returned a Config")
			}
			return
		}
		checkConfig(t, c)
	})
}

func checkConfig(t *testing.T, c *Config) {
	t.Helper()
	clean := func(what, p string) {
		if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p {
			t.Fatalf("%s %q is not an absolute clean path", what, p)
		}
	}
	if !strings.HasPrefix(c.Vault, "https://") {
		t.Fatalf("accepted vault %q", c.Vault)
	}
	clean("ca_file", c.CAFile)
	if c.StateDir != "" {
		clean("state_dir", c.StateDir)
	}
	if len(c.Certificates)+len(c.Secrets) == 0 && c.ManagedIdentity == nil {
		t.Fatal("accepted a file with no binding and no managed identity")
	}
	written := map[string]string{}
	write := func(who, p string) {
		clean(who, p)
		if other, dup := written[p]; dup {
			t.Fatalf("%s and %s both write %q", other, who, p)
		}
		written[p] = who
		if c.StateDir != "" && within(p, c.StateDir) {
			t.Fatalf("%s writes %q inside state_dir %q", who, p, c.StateDir)
		}
		if p == c.CAFile {
			t.Fatalf("%s overwrites ca_file", who)
		}
	}
	common := func(who string, mode fs.FileMode, timeout time.Duration, reload []string) {
		if mode&^fs.ModePerm != 0 || mode == 0 {
			t.Fatalf("%s: mode %v", who, mode)
		}
		if timeout < MinTimeout || timeout > MaxTimeout {
			t.Fatalf("%s: timeout %v", who, timeout)
		}
		for _, a := range reload {
			if strings.ContainsRune(a, 0) {
				t.Fatalf("%s: reload argument %q holds NUL", who, a)
			}
		}
		if len(reload) > 0 && reload[0] == "" {
			t.Fatalf("%s: reload with an empty command", who)
		}
	}
	for _, cert := range c.Certificates {
		who := "certificate " + cert.Name
		if cert.Name == "" {
			t.Fatal("a certificate binding without a name")
		}
		clean(who+" dir", cert.Dir)
		paths := cert.Paths()
		if len(paths) == 0 {
			t.Fatalf("%s writes no file", who)
		}
		for _, p := range paths {
			if filepath.Dir(p) != cert.Dir {
				t.Fatalf("%s writes %q outside its dir %q", who, p, cert.Dir)
			}
			write(who, p)
		}
		if cert.PFXPasswordFile != "" && cert.Files.PFX == "" {
			t.Fatalf("%s: pfx_password_file without a pfx file", who)
		}
		common(who, cert.Mode, cert.Timeout, cert.Reload)
	}
	for _, s := range c.Secrets {
		who := "secret " + s.Name
		if s.Name == "" {
			t.Fatal("a secret binding without a name")
		}
		write(who, s.File)
		common(who, s.Mode, s.Timeout, s.Reload)
	}
	if m := c.ManagedIdentity; m != nil {
		checkManagedIdentity(t, m, write)
	}
}

func checkManagedIdentity(t *testing.T, m *ManagedIdentity, write func(who, path string)) {
	t.Helper()
	if m.Listen == "" && m.Socket == "" {
		t.Fatal("a managed identity with neither listen nor socket")
	}
	if m.Listen != "" {
		ap, err := netip.ParseAddrPort(m.Listen)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
			t.Fatalf("managed identity listens on %q", m.Listen)
		}
	}
	if m.Socket != "" {
		write("managed identity socket", m.Socket)
	}
	if len(m.Identities) == 0 {
		t.Fatal("a managed identity without identities")
	}
	users := map[int]bool{}
	for _, id := range m.Identities {
		if id.User == "" || users[id.UID] {
			t.Fatalf("identity %+v: no user, or a user with two identities", id)
		}
		users[id.UID] = true
		if strings.HasPrefix(id.ServicePrincipal, "sp:") || strings.ContainsAny(id.ServicePrincipal+id.ClientID, " \t\n\x00") {
			t.Fatalf("identity %+v: service principal or client id", id)
		}
		write("identity of "+id.User, id.EnvFile)
	}
}
