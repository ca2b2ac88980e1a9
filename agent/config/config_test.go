package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeEnv knows a few users, groups and commands, and uses the real
// file system (the tests' files are in t.TempDir()).
func fakeEnv() Env {
	users := map[string]int{"root": 0, "app": 1001, "nginx": 101}
	groups := map[string]int{"root": 0, "www-data": 33, "app": 1001}
	cmds := map[string]string{"systemctl": "/usr/bin/systemctl", "sh": "/bin/sh"}
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
		Stat: os.Stat,
	}
}

// files makes a CA file, a PFX password file and an executable in a
// temporary directory, and returns a replacer for their placeholders.
func files(t *testing.T) *strings.Replacer {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	write(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	notCA := filepath.Join(dir, "not-ca.pem")
	write(t, notCA, "hello\n", 0o644)
	pass := filepath.Join(dir, "www.pfxpass")
	write(t, pass, "secret\n", 0o600)
	script := filepath.Join(dir, "reload.sh")
	write(t, script, "#!/bin/sh\n", 0o755)
	plain := filepath.Join(dir, "plain.sh")
	write(t, plain, "#!/bin/sh\n", 0o644)
	return strings.NewReplacer("{{CA}}", ca, "{{NOTCA}}", notCA, "{{PFXPASS}}", pass,
		"{{SCRIPT}}", script, "{{PLAIN}}", plain, "{{TMP}}", dir)
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// example is the format's full example.
const example = `vault: https://vault.example:8443
ca_file: {{CA}}
state_dir: /var/lib/certvault-agent
certificates:
  - name: www
    dir: /etc/nginx/tls/www
    files: {cert: cert.pem, chain: chain.pem, fullchain: fullchain.pem, key: key.pem, combined: combined.pem, pfx: www.pfx}
    pfx_password_file: {{PFXPASS}}   # optional
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
`

func TestExample(t *testing.T) {
	r := files(t)
	c, err := ParseWith([]byte(r.Replace(example)), "agent.yaml", fakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:     "agent.yaml",
		Vault:    "https://vault.example:8443",
		CAFile:   r.Replace("{{CA}}"),
		StateDir: "/var/lib/certvault-agent",
		Certificates: []Certificate{{
			Name: "www",
			Dir:  "/etc/nginx/tls/www",
			Files: Files{Cert: "cert.pem", Chain: "chain.pem", Fullchain: "fullchain.pem",
				Key: "key.pem", Combined: "combined.pem", PFX: "www.pfx"},
			PFXPasswordFile: r.Replace("{{PFXPASS}}"),
			Owner:           "root", Group: "www-data", UID: 0, GID: 33,
			Mode:    0o640,
			Reload:  []string{"systemctl", "reload", "nginx"},
			Check:   &Check{TLS: "127.0.0.1:443", ServerName: "www.example.com"},
			Timeout: 30 * time.Second,
			Line:    5,
		}},
		Secrets: []Secret{{
			Name: "db-password", File: "/etc/app/db-password",
			Owner: "app", UID: 1001, GID: os.Getgid(),
			Mode:    0o400,
			Reload:  []string{"systemctl", "restart", "app"},
			Timeout: DefaultTimeout,
			Line:    16,
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	if got, want := c.Objects(), []string{"certificates/www", "secrets/db-password"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Objects() = %q, want %q", got, want)
	}
	if got := c.Certificates[0].Paths(); len(got) != 6 || got[0] != "/etc/nginx/tls/www/cert.pem" || got[5] != "/etc/nginx/tls/www/www.pfx" {
		t.Errorf("Paths() = %q", got)
	}
}

// head is the top of most test files: lines 1 to 3.
const head = `vault: https://vault.example:8443
ca_file: {{CA}}
state_dir: /var/lib/certvault-agent
`

// cert is head and a certificate binding: lines 4 to 7.
const cert = head + `certificates:
  - name: www
    dir: /etc/nginx/tls/www
    files: {fullchain: fullchain.pem, key: key.pem}
`

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		ok   func(*Config) bool
	}{
		{"defaults", cert, func(c *Config) bool {
			b := c.Certificates[0]
			return b.Mode == 0o600 && b.Timeout == 30*time.Second && b.UID == os.Getuid() &&
				b.GID == os.Getgid() && b.Reload == nil && b.Check == nil && b.Line == 5
		}},
		{"mode as YAML int 0640", cert + "    mode: 0640\n", func(c *Config) bool { return c.Certificates[0].Mode == 0o640 }},
		{"mode as YAML int 0o640", cert + "    mode: 0o640\n", func(c *Config) bool { return c.Certificates[0].Mode == 0o640 }},
		{"mode without leading zero", cert + "    mode: \"640\"\n", func(c *Config) bool { return c.Certificates[0].Mode == 0o640 }},
		{"numeric owner and group", cert + "    owner: 5000\n    group: \"5001\"\n", func(c *Config) bool {
			b := c.Certificates[0]
			return b.UID == 5000 && b.GID == 5001 && b.Owner == "5000"
		}},
		{"reload as one string", cert + "    reload: nginx -s reload && logger done\n", func(c *Config) bool {
			return reflect.DeepEqual(c.Certificates[0].Reload, []string{"sh", "-c", "nginx -s reload && logger done"})
		}},
		{"reload by absolute path", cert + "    reload: [\"{{SCRIPT}}\", now]\n", func(c *Config) bool {
			return len(c.Certificates[0].Reload) == 2
		}},
		{"empty reload list", cert + "    reload: []\n", func(c *Config) bool { return c.Certificates[0].Reload == nil }},
		{"server_name from host", cert + "    check: {tls: \"www.example.com:8443\"}\n", func(c *Config) bool {
			return *c.Certificates[0].Check == Check{TLS: "www.example.com:8443", ServerName: "www.example.com"}
		}},
		{"no server_name for an IP", cert + "    check: {tls: \"[::1]:443\"}\n", func(c *Config) bool {
			return *c.Certificates[0].Check == Check{TLS: "[::1]:443"}
		}},
		{"timeout in minutes", cert + "    timeout: 2m\n", func(c *Config) bool { return c.Certificates[0].Timeout == 2*time.Minute }},
		{"dir with trailing slash is cleaned", head + "certificates:\n  - name: www\n    dir: /etc/nginx//tls/www/\n    files: {key: key.pem}\n", func(c *Config) bool {
			return c.Certificates[0].Dir == "/etc/nginx/tls/www"
		}},
		{"one secret, two files", head + "secrets:\n  - {name: a, file: /etc/a/x}\n  - {name: a, file: /etc/b/x}\n", func(c *Config) bool {
			return len(c.Secrets) == 2 && reflect.DeepEqual(c.Objects(), []string{"secrets/a"})
		}},
		{"merge keys", head + `certificates:
  - &nginx
    name: www
    dir: /etc/nginx/tls/www
    files: {fullchain: fullchain.pem, key: key.pem}
    owner: nginx
    reload: [systemctl, reload, nginx]
  - <<: *nginx
    name: api
    dir: /etc/nginx/tls/api
`, func(c *Config) bool {
			b := c.Certificates[1]
			return len(c.Certificates) == 2 && b.Name == "api" && b.Dir == "/etc/nginx/tls/api" &&
				b.UID == 101 && len(b.Reload) == 3 && b.Files.Key == "key.pem" && b.Line == 11
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := files(t)
			c, err := ParseWith([]byte(r.Replace(tt.yaml)), "agent.yaml", fakeEnv())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.ok(c) {
				t.Errorf("unexpected config: %+v %+v", c.Certificates, c.Secrets)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must be in the error
	}{
		{"unknown top-level key", cert + "secret:\n  - name: x\n",
			[]string{`agent.yaml:8: secret: unknown key (did you mean "secrets"?); known top-level keys: vault, ca_file,`}},
		{"unknown key in a binding", cert + "    reloads: [systemctl, reload, nginx]\n",
			[]string{`agent.yaml:8: certificates[0].reloads: unknown key (did you mean "reload"?); known keys of a certificate: name, dir,`}},
		{"unknown key in files", head + "certificates:\n  - name: www\n    dir: /etc/x\n    files:\n      cert: cert.pem\n      privkey: key.pem\n",
			[]string{`agent.yaml:9: certificates[0].files.privkey: unknown key; the kinds of file: cert, chain, fullchain, key, combined, pfx`}},
		{"unknown key in check", cert + "    check: {tls: \"127.0.0.1:443\", sni: www}\n",
			[]string{`:8: certificates[0].check.sni: unknown key; known keys of check: tls, server_name`}},
		{"unknown key in a secret", head + "secrets:\n  - name: a\n    file: /etc/a\n    dir: /etc\n",
			[]string{`:7: secrets[0].dir: unknown key`}},
		{"key set twice", cert + "    mode: \"0600\"\n    mode: \"0640\"\n",
			[]string{`:9: certificates[0].mode: set twice (first on line 8)`}},
		{"bad mode", cert + "    mode: \"0849\"\n",
			[]string{`agent.yaml:8: certificates[0].mode "0849": not an octal mode: write octal digits in quotes, like "0640"`}},
		{"bad mode unquoted", cert + "    mode: 0849\n", []string{`:8: certificates[0].mode "0849": not an octal mode`}},
		{"mode without owner read", cert + "    mode: \"0200\"\n",
			[]string{`:8: certificates[0].mode "0200": does not let the owner read the file, and the agent reads back what it writes to verify it: give the owner read, like "0600"`}},
		{"mode with setuid", cert + "    mode: \"4755\"\n", []string{`:8: certificates[0].mode "4755": only the permission bits 0000 to 0777`}},
		{"mode world-writable", cert + "    mode: \"0666\"\n", []string{`:8: certificates[0].mode "0666": lets every user on the machine write the file`}},
		{"missing owner", cert + "    owner: app2\n",
			[]string{`agent.yaml:8: certificates[0].owner "app2": no such user on this machine`}},
		{"missing group", head + "secrets:\n  - {name: a, file: /etc/a, group: wheel}\n",
			[]string{`:5: secrets[0].group "wheel": no such group on this machine`}},
		{"missing reload command", cert + "    reload: [\"nginx-reload\", now]\n",
			[]string{`agent.yaml:8: certificates[0].reload command "nginx-reload": not found in PATH`}},
		{"missing reload command, block list", cert + "    reload:\n      - /nonexistent/reload\n",
			[]string{`:9: certificates[0].reload command "/nonexistent/reload": no such file`}},
		{"reload not executable", cert + "    reload: [\"{{PLAIN}}\"]\n", []string{`:8: certificates[0].reload command`, `is not executable`}},
		{"reload relative path", cert + "    reload: [./reload.sh]\n", []string{`:8: certificates[0].reload command "./reload.sh": a relative path`}},
		{"relative dir", head + "certificates:\n  - name: www\n    dir: etc/nginx/tls\n    files: {key: key.pem}\n",
			[]string{`agent.yaml:6: certificates[0].dir "etc/nginx/tls": must be an absolute path, like /etc/nginx/tls/www`}},
		{"dir with ..", head + "certificates:\n  - name: www\n    dir: /etc/nginx/../tls\n    files: {key: key.pem}\n",
			[]string{`:6: certificates[0].dir "/etc/nginx/../tls": must not contain ".."`}},
		{"missing dir", head + "certificates:\n  - name: www\n    files: {key: key.pem}\n",
			[]string{`:5: certificates[0].dir: required`}},
		{"name with underscore", head + "certificates:\n  - name: my_cert\n    dir: /etc/x\n    files: {key: key.pem}\n",
			[]string{`agent.yaml:5: certificates[0].name "my_cert": a vault object name is 1 to 127 letters, digits and dashes (no underscores, dots or spaces): write "my-cert"`}},
		{"missing name", head + "secrets:\n  - file: /etc/a\n", []string{`:5: secrets[0].name: required`}},
		{"duplicate file across bindings", cert + "secrets:\n  - name: k\n    file: /etc/nginx/tls/www/key.pem\n",
			[]string{`agent.yaml:10: secrets[0].file "/etc/nginx/tls/www/key.pem": also written by certificates[0] (line 5): two bindings cannot write the same file`}},
		{"same certificate twice in one dir", cert + "  - name: www\n    dir: /etc/nginx/tls/www\n    files: {cert: cert.pem}\n",
			[]string{`:8: certificates[1]: "www" in "/etc/nginx/tls/www" is already bound by certificates[0] (line 5): the agent keeps a binding's versions in /etc/nginx/tls/www/.certvault/www`}},
		{"secret named like a certificate in its dir", cert + "secrets:\n  - {name: www, file: /etc/nginx/tls/www/pass}\n",
			[]string{`:9: secrets[0]: "www" in "/etc/nginx/tls/www" is already bound by certificates[0] (line 5)`}},
		{"dir inside .certvault", head + "certificates:\n  - name: www\n    dir: /etc/x/.certvault/y\n    files: {key: key.pem}\n",
			[]string{`:6: certificates[0].dir "/etc/x/.certvault/y": is inside a directory of the agent's own`}},
		{"pfx password written by a secret but missing", head + `certificates:
  - name: www
    dir: /etc/tls
    files: {pfx: www.pfx}
    pfx_password_file: /nonexistent/www
secrets:
  - {name: www-pfx-password, file: /nonexistent/www}
`, []string{`:8: certificates[0].pfx_password_file "/nonexistent/www": no such file`}},
		{"same file name twice in a binding", head + "certificates:\n  - name: www\n    dir: /etc/x\n    files: {cert: a.pem, chain: a.pem}\n",
			[]string{`:7: certificates[0].files.chain "a.pem": is also the name of files.cert`}},
		{"file name with a slash", head + "certificates:\n  - name: www\n    dir: /etc/x\n    files: {cert: ../a.pem}\n",
			[]string{`:7: certificates[0].files.cert "../a.pem": must be a plain file name inside dir`}},
		{"reserved file name", head + "certificates:\n  - name: www\n    dir: /etc/x\n    files: {cert: .certvault-tmp}\n",
			[]string{`:7: certificates[0].files.cert ".certvault-tmp": names starting with ".certvault"`}},
		{"no files", head + "certificates:\n  - name: www\n    dir: /etc/x\n", []string{`:5: certificates[0].files: required`}},
		{"empty files", head + "certificates:\n  - name: www\n    dir: /etc/x\n    files: {}\n", []string{`:7: certificates[0].files: names no file`}},
		{"pfx_password_file without pfx", cert + "    pfx_password_file: {{PFXPASS}}\n",
			[]string{`:8: certificates[0].pfx_password_file`, `only used with files.pfx: add a pfx file or remove this line`}},
		{"pfx_password_file missing", head + "certificates:\n  - name: www\n    dir: /etc/x\n    files: {pfx: a.pfx}\n    pfx_password_file: /nonexistent/pass\n",
			[]string{`:8: certificates[0].pfx_password_file "/nonexistent/pass": no such file`}},
		{"check.tls without port", cert + "    check:\n      tls: 127.0.0.1\n",
			[]string{`agent.yaml:9: certificates[0].check.tls "127.0.0.1": has no port: write host:port, like "127.0.0.1:443"`}},
		{"check.tls bad port", cert + "    check: {tls: \"localhost:https\"}\n", []string{`:8: certificates[0].check.tls "localhost:https": the port must be a number from 1 to 65535`}},
		{"check without tls", cert + "    check: {server_name: www}\n", []string{`:8: certificates[0].check.tls: required`}},
		{"timeout forever", cert + "    timeout: forever\n",
			[]string{`agent.yaml:8: certificates[0].timeout "forever": not a duration: write it like 30s, 90s or 2m`}},
		{"timeout without unit", cert + "    timeout: 30\n", []string{`:8: certificates[0].timeout "30": needs a unit: write 30s`}},
		{"timeout too long", cert + "    timeout: 1h\n", []string{`:8: certificates[0].timeout "1h": must be from 1s to 10m`}},
		{"empty config", head, []string{`agent.yaml:1: nothing to install: add a certificates: or secrets: list`}},
		{"empty file", "", []string{`agent.yaml:1: vault: required`, `agent.yaml:1: ca_file: required`,
			`agent.yaml:1: state_dir: required`, `agent.yaml:1: nothing to install`}},
		{"YAML syntax error", cert + "    owner: root\n   group: www-data\n",
			[]string{`agent.yaml:9: not valid YAML: `}},
		{"YAML tab", cert + "\towner: root\n", []string{`agent.yaml:8: not valid YAML: `, `tabs`}},
		{"YAML error without a line from yaml.v3", cert + "    owner: \"\\q\"\n", []string{`agent.yaml:8: not valid YAML: found unknown escape character`}},
		{"two documents", cert + "---\nvault: x\n", []string{`agent.yaml:8: a second YAML document`}},
		{"certificates not a list", head + "certificates:\n  name: www\n", []string{`:5: certificates: must be a list of certificate bindings`}},
		{"vault over http", "vault: http://vault.example\nca_file: {{CA}}\nstate_dir: /var/lib/a\nsecrets: [{name: a, file: /etc/a}]\n",
			[]string{`agent.yaml:1: vault "http://vault.example": must be an https:// URL`}},
		{"vault without host", "vault: https:///x\nca_file: {{CA}}\nstate_dir: /var/lib/a\nsecrets: [{name: a, file: /etc/a}]\n",
			[]string{`agent.yaml:1: vault "https:///x": has no host`}},
		{"ca_file missing", "vault: https://v\nca_file: /nonexistent/ca.pem\nstate_dir: /var/lib/a\nsecrets: [{name: a, file: /etc/a}]\n",
			[]string{`agent.yaml:2: ca_file "/nonexistent/ca.pem": no such file`}},
		{"ca_file without a certificate", "vault: https://v\nca_file: {{NOTCA}}\nstate_dir: /var/lib/a\nsecrets: [{name: a, file: /etc/a}]\n",
			[]string{`agent.yaml:2: ca_file`, `holds no PEM certificate`}},
		{"state_dir relative", "vault: https://v\nca_file: {{CA}}\nstate_dir: state\nsecrets: [{name: a, file: /etc/a}]\n",
			[]string{`agent.yaml:3: state_dir "state": must be an absolute path`}},
		{"writes into state_dir", head + "secrets:\n  - {name: a, file: /var/lib/certvault-agent/key.pem}\n",
			[]string{`:5: secrets[0].file "/var/lib/certvault-agent/key.pem": is inside state_dir`}},
		{"overwrites ca_file", head + "secrets:\n  - {name: a, file: \"{{CA}}\"}\n", []string{`:5: secrets[0].file`, `would overwrite ca_file`}},
		{"dir under a secret file", cert + "secrets:\n  - {name: a, file: /etc/nginx/tls}\n",
			[]string{`:6: certificates[0].dir "/etc/nginx/tls/www": is inside "/etc/nginx/tls", which secrets[0] (line 9) writes as a file`}},
		{"reload a mapping", cert + "    reload: {cmd: x}\n", []string{`:8: certificates[0].reload: must be a command as a list of words`}},
		{"string expected", cert + "    owner: [root]\n", []string{`:8: certificates[0].owner: must be a single value, not a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := files(t)
			c, err := ParseWith([]byte(r.Replace(tt.yaml)), "agent.yaml", fakeEnv())
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), r.Replace(w)) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, r.Replace(w))
				}
			}
		})
	}
}

func TestAllProblems(t *testing.T) {
	r := files(t)
	data := r.Replace(`vault: https://vault.example:8443
ca_file: {{CA}}
state_dir: /var/lib/certvault-agent
certificates:
  - name: www
    dir: /etc/nginx/tls/www
    files: {cert: cert.pem, key: key.pem}
    mode: "0849"
    reloads: [systemctl, reload, nginx]
    timeout: forever
secrets:
  - name: db_password
    file: /etc/nginx/tls/www/key.pem
    owner: nobody-here
    reload: [restart-app]
`)
	_, err := ParseWith([]byte(data), "/etc/certvault/agent.yaml", fakeEnv())
	if err == nil {
		t.Fatal("no error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not an *Error: %T", err)
	}
	want := []string{
		`/etc/certvault/agent.yaml:8: certificates[0].mode "0849": not an octal mode`,
		`/etc/certvault/agent.yaml:9: certificates[0].reloads: unknown key`,
		`/etc/certvault/agent.yaml:10: certificates[0].timeout "forever": not a duration`,
		`/etc/certvault/agent.yaml:12: secrets[0].name "db_password": a vault object name`,
		`/etc/certvault/agent.yaml:13: secrets[0].file "/etc/nginx/tls/www/key.pem": also written by certificates[0] (line 5)`,
		`/etc/certvault/agent.yaml:14: secrets[0].owner "nobody-here": no such user on this machine`,
		`/etc/certvault/agent.yaml:15: secrets[0].reload command "restart-app": not found in PATH`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) || len(e.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n%s\ndoes not start with\n%s", i, lines[i], w)
		}
	}
}

func TestLoad(t *testing.T) {
	r := files(t)
	path := filepath.Join(r.Replace("{{TMP}}"), "agent.yaml")
	write(t, path, r.Replace(head+"secrets:\n  - {name: a, file: {{TMP}}/out/a, reload: [\"{{SCRIPT}}\"]}\n"), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || len(c.Secrets) != 1 || c.Secrets[0].UID != os.Getuid() {
		t.Errorf("Load: %+v", c)
	}

	write(t, path, r.Replace(head), 0o600)
	if _, err := Load(path); !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), path+":1: ") {
		t.Errorf("Load of an empty config: %v", err)
	}

	_, err = Load(filepath.Join(r.Replace("{{TMP}}"), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestDefaultLookups(t *testing.T) {
	if uid, err := lookupUser("root"); err != nil || uid != 0 {
		t.Skipf("no root user here: %d %v", uid, err)
	}
	if _, err := lookupUser("certvault-no-such-user"); err == nil {
		t.Error("lookup of a missing user succeeded")
	}
	if _, err := lookupGroup("certvault-no-such-group"); err == nil {
		t.Error("lookup of a missing group succeeded")
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]os.FileMode{"0640": 0o640, "640": 0o640, "0o600": 0o600, "400": 0o400, "0755": 0o755} {
		if m, msg := parseMode(s); msg != "" || m != want {
			t.Errorf("parseMode(%q) = %o, %q", s, m, msg)
		}
	}
	for _, s := range []string{"", "0849", "0x1a0", "-0640", "1777", "0200", "0046", "0602", "640.0"} {
		if _, msg := parseMode(s); msg == "" {
			t.Errorf("parseMode(%q) accepted", s)
		}
	}
}

// TestMergesOfMerges parses a file of merges of merges: each of ten
// anchors merges the one before ten times, 700 bytes that expand to ten
// billion keys. Each merged mapping must be read once: before, the parse
// took hours (it was found by FuzzAgentConfig's seed).
func TestMergesOfMerges(t *testing.T) {
	var b strings.Builder
	b.WriteString("vault: https://vault.example\nca_file: {{CA}}\nstate_dir: /var/lib/certvault-agent\n")
	b.WriteString("certificates:\n  - &x0 {name: www, dir: /etc/tls/www, files: {cert: cert.pem}}\n")
	for i := 1; i <= 10; i++ {
		b.WriteString(fmt.Sprintf("  - &x%d {<<: [%s], name: www%d, dir: /etc/tls/www%d}\n", i,
			strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*x%d, ", i-1), 10), ", "), i, i))
	}
	c, err := ParseWith([]byte(files(t).Replace(b.String())), "agent.yaml", fakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificates) != 11 {
		t.Fatalf("got %d certificate bindings, want 11", len(c.Certificates))
	}
	for i, cert := range c.Certificates[1:] {
		if cert.Files.Cert != "cert.pem" || cert.Dir != fmt.Sprintf("/etc/tls/www%d", i+1) {
			t.Errorf("binding %d: got files %+v in %s, want cert.pem merged in and its own dir", i+1, cert.Files, cert.Dir)
		}
	}
}
