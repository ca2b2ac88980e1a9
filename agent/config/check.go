package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// nameRE is the vault's (Key Vault's) rule for object names.
var nameRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)

// reservedPrefix starts the name of the directory where the installer
// keeps a binding's versions (DIR/.certvault/NAME); no binding may write
// there or use a file name like it.
const reservedPrefix = ".certvault"

// target is a file that a binding writes.
type target struct {
	path    string // absolute
	field   string // like "certificates[0].files.cert"
	line    int
	binding string // like "certificates[0]"
	bline   int    // line of the binding
}

// dirRef is a certificate binding's directory.
type dirRef struct {
	dir     string
	field   string
	line    int
	binding string
	bline   int
}

// bindings is what the checks across bindings need.
type bindings struct {
	targets []target
	dirs    []dirRef
	// pfxPass are the pfx_password_file values.
	pfxPass []target
	// skip are bindings already reported as repeated.
	skip map[string]bool
	// miPaths are the managed identity's socket and env files.
	miPaths []target
}

// config reads the root of the file.
func (p *parser) config(root *yaml.Node) *Config {
	c := &Config{}
	o := object{line: 1, entries: map[string]entry{}}
	if !isNull(root) {
		var ok bool
		if o, ok = p.object(root, "", "known top-level keys", topKeys); !ok {
			return c
		}
	}
	c.Vault = p.vault(o)
	c.CAFile = p.caFile(o)
	c.StateDir = p.stateDir(o)

	b := &bindings{skip: map[string]bool{}}
	certs, okC := p.list(o, "certificates", "certificate bindings", "name")
	for i, n := range certs {
		c.Certificates = append(c.Certificates, p.certificate(fmt.Sprintf("certificates[%d]", i), n, b))
	}
	secrets, okS := p.list(o, "secrets", "secret bindings", "name")
	for i, n := range secrets {
		c.Secrets = append(c.Secrets, p.secret(fmt.Sprintf("secrets[%d]", i), n, b))
	}
	c.ManagedIdentity = p.managedIdentity(o, b)
	if okC && okS && len(certs) == 0 && len(secrets) == 0 && isNull(o.val("managed_identity")) {
		p.add(o.line, "", "", "nothing to install: add a certificates: or secrets: list (or a managed_identity: section)")
	}
	p.across(c, b)
	p.acrossMI(c, b)
	return c
}

// vault checks the vault URL.
func (p *parser) vault(o object) string {
	s, ok := p.str(o, "vault")
	if !ok {
		return ""
	}
	const example = "https://vault.example:8443"
	line := o.lineOf("vault")
	if s == "" {
		p.add(line, "vault", "", "required: the vault's URL, like %s", example)
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		p.add(line, "vault", s, "not a valid URL: write it like %s", example)
	case u.Scheme != "https":
		p.add(line, "vault", s, "must be an https:// URL (the agent only talks TLS to the vault), like %s", example)
	case u.Hostname() == "":
		p.add(line, "vault", s, "has no host: write it like %s", example)
	case u.User != nil:
		p.add(line, "vault", s, "must not hold a user or password: the agent authenticates with its own certificate")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		p.add(line, "vault", s, "must not have a query or fragment: write it like %s", example)
	case u.Port() != "" && !validPort(u.Port()):
		p.add(line, "vault", s, "port must be a number from 1 to 65535")
	default:
		return s
	}
	return ""
}

// validPort reports whether s is a port number from 1 to 65535.
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && !strings.HasPrefix(s, "+")
}

// caFile checks ca_file: an existing file with at least one certificate.
func (p *parser) caFile(o object) string {
	s, ok := p.str(o, "ca_file")
	if !ok {
		return ""
	}
	line := o.lineOf("ca_file")
	if s == "" {
		p.add(line, "ca_file", "", "required: the PEM file of the CA that the vault's certificate chains to, like /etc/certvault/ca.pem")
		return ""
	}
	s, ok = p.absPath(line, "ca_file", s, "/etc/certvault/ca.pem")
	if !ok || !p.regularFile(line, "ca_file", s) {
		return ""
	}
	data, err := p.env.ReadFile(s)
	if err != nil {
		p.add(line, "ca_file", s, "cannot read it: %v", unwrapPath(err))
		return ""
	}
	n := 0
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			p.add(line, "ca_file", s, "holds a certificate that does not parse: %v", err)
			return ""
		}
		n++
	}
	if n == 0 {
		p.add(line, "ca_file", s, `holds no PEM certificate ("-----BEGIN CERTIFICATE-----"): point it at the vault's CA certificate`)
		return ""
	}
	return s
}

// stateDir checks state_dir.
func (p *parser) stateDir(o object) string {
	s, ok := p.str(o, "state_dir")
	if !ok {
		return ""
	}
	line := o.lineOf("state_dir")
	if s == "" {
		p.add(line, "state_dir", "", "required: an absolute directory for the agent's own state, like /var/lib/certvault-agent")
		return ""
	}
	s, ok = p.absPath(line, "state_dir", s, "/var/lib/certvault-agent")
	if !ok {
		return ""
	}
	if s == "/" {
		p.add(line, "state_dir", s, "must be a directory of its own, like /var/lib/certvault-agent")
		return ""
	}
	return s
}

// absPath checks that s is an absolute path without ".." and returns it
// cleaned (without a trailing slash, repeated slashes or "." elements).
func (p *parser) absPath(line int, field, s, example string) (string, bool) {
	switch {
	case strings.ContainsRune(s, 0):
		p.add(line, field, s, "holds a NUL character")
	case !filepath.IsAbs(s):
		p.add(line, field, s, "must be an absolute path, like %s", example)
	case slices.Contains(strings.Split(s, "/"), ".."):
		p.add(line, field, s, `must not contain "..": write the directory it means, like %q`, filepath.Clean(s))
	default:
		return filepath.Clean(s), true
	}
	return "", false
}

// regularFile checks through Env.Stat that path is an existing file.
func (p *parser) regularFile(line int, field, path string) bool {
	fi, err := p.env.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.add(line, field, path, "no such file")
	case err != nil:
		p.add(line, field, path, "cannot check it: %v", unwrapPath(err))
	case fi.IsDir():
		p.add(line, field, path, "is a directory, not a file")
	default:
		return true
	}
	return false
}

// unwrapPath drops the *fs.PathError around err, whose path the message
// already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// name checks a binding's name.
func (p *parser) name(o object, what string) string {
	s, ok := p.str(o, "name")
	if !ok {
		return ""
	}
	field := join(o.field, "name")
	if s == "" {
		p.add(o.lineOf("name"), field, "", "required: the %s's name in the vault", what)
		return ""
	}
	if !nameRE.MatchString(s) {
		msg := "a vault object name is 1 to 127 letters, digits and dashes"
		if strings.ContainsAny(s, "_. ") {
			msg += fmt.Sprintf(" (no underscores, dots or spaces): write %q", strings.NewReplacer("_", "-", ".", "-", " ", "-").Replace(s))
		}
		p.add(o.lineOf("name"), field, s, "%s", msg)
		return ""
	}
	return s
}

// common is what certificate and secret bindings share.
type common struct {
	owner, group string
	uid, gid     int
	mode         os.FileMode
	reload       []string
	timeout      time.Duration
}

// common reads the keys that certificate and secret bindings share.
func (p *parser) common(o object) common {
	var c common
	c.owner, c.uid = p.ident(o, "owner")
	c.group, c.gid = p.ident(o, "group")
	c.mode = p.mode(o)
	c.reload = p.reload(o)
	c.timeout = p.timeout(o)
	return c
}

// certificate reads certificates[i]. When there are problems, the
// result is only good for finding more.
func (p *parser) certificate(field string, n *yaml.Node, b *bindings) Certificate {
	if isNull(n) {
		p.add(resolve(n).Line, field, "", "empty binding: give at least name, dir and files")
		return Certificate{}
	}
	o, ok := p.object(n, field, "known keys of a certificate", certKeys)
	if !ok {
		return Certificate{}
	}
	c := Certificate{Line: o.line}
	c.Name = p.name(o, "certificate")
	if s, ok := p.str(o, "dir"); ok {
		if s == "" {
			p.add(o.lineOf("dir"), join(field, "dir"), "", "required: the absolute directory to write the files in, like /etc/nginx/tls/www")
		} else {
			c.Dir, _ = p.absPath(o.lineOf("dir"), join(field, "dir"), s, "/etc/nginx/tls/www")
			if reservedElem(c.Dir) {
				p.add(o.lineOf("dir"), join(field, "dir"), s, "%s", reservedDirMsg)
				c.Dir = ""
			}
		}
	}
	var fo object
	c.Files, fo = p.files(o)
	if s, ok := p.str(o, "pfx_password_file"); ok && s != "" {
		f, line := join(field, "pfx_password_file"), o.lineOf("pfx_password_file")
		if c.Files.PFX == "" {
			p.add(line, f, s, "only used with files.pfx: add a pfx file or remove this line")
		} else if s, ok := p.absPath(line, f, s, "/etc/certvault/www.pfxpass"); ok {
			c.PFXPasswordFile = s
			b.pfxPass = append(b.pfxPass, target{path: s, field: f, line: line, binding: field, bline: o.line})
		}
	}
	cm := p.common(o)
	c.Owner, c.Group, c.UID, c.GID = cm.owner, cm.group, cm.uid, cm.gid
	c.Mode, c.Reload, c.Timeout = cm.mode, cm.reload, cm.timeout
	c.Check = p.check(o)

	if c.Dir != "" {
		b.dirs = append(b.dirs, dirRef{dir: c.Dir, field: join(field, "dir"), line: o.lineOf("dir"), binding: field, bline: o.line})
		for _, f := range c.Files.list() {
			b.targets = append(b.targets, target{
				path: joinPath(c.Dir, f.name), field: join(fo.field, f.key),
				line: fo.lineOf(f.key), binding: field, bline: o.line,
			})
		}
	}
	return c
}

// reservedDirMsg says why a path inside a .certvault directory is refused.
const reservedDirMsg = "is inside a directory of the agent's own (" + reservedPrefix + "...), where it keeps the versions it installs: choose another"

// reservedElem reports whether an element of path starts with
// reservedPrefix.
func reservedElem(path string) bool {
	for _, e := range strings.Split(path, "/") {
		if strings.HasPrefix(e, reservedPrefix) {
			return true
		}
	}
	return false
}

// fileName is one file of a Files, with its key in the file.
type fileName struct{ key, name string }

// list returns the files that are set, in the order of filesKeys.
func (f Files) list() []fileName {
	var out []fileName
	for i, name := range []string{f.Cert, f.Chain, f.Fullchain, f.Key, f.Combined, f.PFX} {
		if name != "" {
			out = append(out, fileName{filesKeys[i], name})
		}
	}
	return out
}

// joinPath joins a clean absolute directory and a base name.
func joinPath(dir, name string) string { return filepath.Join(dir, name) }

// files reads a certificate binding's files; the object is for the
// lines of its keys.
func (p *parser) files(o object) (Files, object) {
	field := join(o.field, "files")
	v := o.val("files")
	if isNull(v) {
		p.add(o.lineOf("files"), field, "", "required: name at least one file to write, like files: {fullchain: fullchain.pem, key: key.pem}; the kinds are %s", strings.Join(filesKeys, ", "))
		return Files{}, object{field: field, line: o.line}
	}
	fo, ok := p.object(v, field, "the kinds of file", filesKeys)
	if !ok {
		return Files{}, fo
	}
	names := make([]string, len(filesKeys))
	firstKey := map[string]string{}
	for i, k := range filesKeys {
		s, ok := p.str(fo, k)
		if !ok || s == "" {
			continue
		}
		f, line := join(field, k), fo.lineOf(k)
		if msg := baseNameProblem(s); msg != "" {
			p.add(line, f, s, "%s", msg)
			continue
		}
		if other, dup := firstKey[s]; dup {
			p.add(line, f, s, "is also the name of files.%s: each file needs its own name", other)
			continue
		}
		firstKey[s] = k
		names[i] = s
	}
	out := Files{Cert: names[0], Chain: names[1], Fullchain: names[2], Key: names[3], Combined: names[4], PFX: names[5]}
	if len(firstKey) == 0 && !p.hasProblemIn(field) {
		p.add(fo.line, field, "", "names no file: set at least one of %s", strings.Join(filesKeys, ", "))
	}
	return out, fo
}

// hasProblemIn reports whether a problem was already recorded for field
// or inside it.
func (p *parser) hasProblemIn(field string) bool {
	for _, pr := range p.probs {
		if pr.Field == field || strings.HasPrefix(pr.Field, field+".") {
			return true
		}
	}
	return false
}

// baseNameProblem says what is wrong with a file name that must be a
// plain name inside a directory, or "".
func baseNameProblem(s string) string {
	switch {
	case strings.ContainsRune(s, '/'):
		return `must be a plain file name inside dir, without "/"`
	case s == "." || s == "..":
		return "is not a file name"
	case strings.ContainsRune(s, 0):
		return "holds a NUL character"
	case strings.HasPrefix(s, reservedPrefix):
		return fmt.Sprintf("names starting with %q are the agent's own: choose another name", reservedPrefix)
	case strings.HasPrefix(s, "."):
		return "must not start with a dot (the agent keeps its own files there): choose a visible name"
	}
	return ""
}

// secret reads secrets[i]. When there are problems, the result is only
// good for finding more.
func (p *parser) secret(field string, n *yaml.Node, b *bindings) Secret {
	if isNull(n) {
		p.add(resolve(n).Line, field, "", "empty binding: give at least name and file")
		return Secret{}
	}
	o, ok := p.object(n, field, "known keys of a secret", secretKeys)
	if !ok {
		return Secret{}
	}
	s := Secret{Line: o.line}
	s.Name = p.name(o, "secret")
	if v, ok := p.str(o, "file"); ok {
		f, line := join(field, "file"), o.lineOf("file")
		if v == "" {
			p.add(line, f, "", "required: the absolute path to write the secret to, like /etc/app/db-password")
		} else if v, ok := p.absPath(line, f, v, "/etc/app/db-password"); ok {
			if v == "/" {
				p.add(line, f, v, "is a directory: write the path of the file, like /etc/app/db-password")
			} else if msg := baseNameProblem(filepath.Base(v)); msg != "" {
				p.add(line, f, v, "%s", msg)
			} else if reservedElem(filepath.Dir(v)) {
				p.add(line, f, v, "%s", reservedDirMsg)
			} else {
				s.File = v
				b.targets = append(b.targets, target{path: v, field: f, line: line, binding: field, bline: o.line})
			}
		}
	}
	cm := p.common(o)
	s.Owner, s.Group, s.UID, s.GID = cm.owner, cm.group, cm.uid, cm.gid
	s.Mode, s.Reload, s.Timeout = cm.mode, cm.reload, cm.timeout
	return s
}

// ident reads owner or group: a name that exists on this machine or a
// numeric id; when absent, the agent's own uid or gid.
func (p *parser) ident(o object, key string) (string, int) {
	isGroup := key == "group"
	s, ok := p.str(o, key)
	if !ok {
		return "", 0
	}
	if s == "" {
		if isGroup {
			return "", os.Getgid()
		}
		return "", os.Getuid()
	}
	field, line := join(o.field, key), o.lineOf(key)
	if strings.Trim(s, "0123456789") == "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id > math.MaxInt32 {
			p.add(line, field, s, "is not a valid numeric id")
			return s, 0
		}
		return s, int(id)
	}
	var id int
	var err error
	if isGroup {
		id, err = p.env.LookupGroup(s)
	} else {
		id, err = p.env.LookupUser(s)
	}
	if err == nil {
		return s, id
	}
	var uu user.UnknownUserError
	var ug user.UnknownGroupError
	switch {
	case errors.As(err, &uu) || errors.As(err, &ug):
		what := "user"
		if isGroup {
			what = "group"
		}
		p.add(line, field, s, "no such %s on this machine: create it first, or give a numeric id", what)
	default:
		p.add(line, field, s, "cannot look it up: %v", err)
	}
	return s, 0
}

// mode reads a binding's mode, DefaultMode when absent.
func (p *parser) mode(o object) os.FileMode {
	s, ok := p.str(o, "mode")
	if !ok {
		return 0
	}
	if s == "" {
		return DefaultMode
	}
	m, msg := parseMode(s)
	if msg != "" {
		p.add(o.lineOf("mode"), join(o.field, "mode"), s, "%s", msg)
	}
	return m
}

// parseMode parses a mode written in octal ("0640", "640", or 0640 and
// 0o640 as YAML integers, whose text is the same) and says what is wrong
// with it, if anything.
func parseMode(s string) (os.FileMode, string) {
	t := s
	if strings.HasPrefix(t, "0o") || strings.HasPrefix(t, "0O") {
		t = t[2:]
	}
	if t == "" || strings.Trim(t, "01234567") != "" {
		return 0, `not an octal mode: write octal digits in quotes, like "0640"`
	}
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || v > 0o777 {
		return 0, `only the permission bits 0000 to 0777 may be set (no setuid, setgid or sticky bit): write it like "0640"`
	}
	m := os.FileMode(v)
	if m&0o400 == 0 {
		return 0, fmt.Sprintf("does not let the owner read the file, and the agent reads back what it writes to verify it: give the owner read, like %q", fmt.Sprintf("%04o", m|0o400))
	}
	if m&0o002 != 0 {
		return 0, fmt.Sprintf("lets every user on the machine write the file: drop the write bit for others, like %q", fmt.Sprintf("%04o", m&^0o002))
	}
	return m, ""
}

// reload reads a binding's reload command.
func (p *parser) reload(o object) []string {
	v := o.val("reload")
	if isNull(v) {
		return nil
	}
	field := join(o.field, "reload")
	switch v.Kind {
	case yaml.ScalarNode:
		if strings.TrimSpace(v.Value) == "" {
			p.add(v.Line, field, "", "empty command: leave reload out for none")
			return nil
		}
		p.command(v.Line, field, "sh")
		return []string{"sh", "-c", v.Value}
	case yaml.SequenceNode:
		var argv []string
		for _, c := range v.Content {
			c = resolve(c)
			if c.Kind != yaml.ScalarNode || c.ShortTag() == "!!null" {
				p.add(c.Line, field, "", "each word of the command must be a single value, not %s", kindName(c))
				return nil
			}
			argv = append(argv, c.Value)
		}
		if len(argv) == 0 {
			return nil
		}
		if argv[0] == "" {
			p.add(v.Line, field, "", "the command's first word is empty")
			return nil
		}
		p.command(resolve(v.Content[0]).Line, field, argv[0])
		return argv
	}
	p.add(v.Line, field, "", `must be a command as a list of words, like ["systemctl", "reload", "nginx"], or one shell command line as a string, not %s`, kindName(v))
	return nil
}

// command checks that a reload command exists and can be run.
func (p *parser) command(line int, field, name string) {
	field += " command"
	if filepath.IsAbs(name) {
		fi, err := p.env.Stat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			p.add(line, field, name, "no such file")
		case err != nil:
			p.add(line, field, name, "cannot check it: %v", unwrapPath(err))
		case fi.IsDir():
			p.add(line, field, name, "is a directory")
		case fi.Mode()&0o111 == 0:
			p.add(line, field, name, "is not executable: chmod +x it, or run it through its interpreter")
		}
		return
	}
	if strings.ContainsRune(name, '/') {
		p.add(line, field, name, "a relative path depends on the agent's working directory: write an absolute path, or a command name found in PATH")
		return
	}
	if _, err := p.env.LookPath(name); err != nil {
		p.add(line, field, name, "not found in PATH: install it, or write its absolute path")
	}
}

// timeout reads a binding's timeout, DefaultTimeout when absent.
func (p *parser) timeout(o object) time.Duration {
	s, ok := p.str(o, "timeout")
	if !ok {
		return 0
	}
	if s == "" {
		return DefaultTimeout
	}
	field, line := join(o.field, "timeout"), o.lineOf("timeout")
	d, err := time.ParseDuration(s)
	if err != nil {
		if strings.Trim(s, "0123456789") == "" {
			p.add(line, field, s, "needs a unit: write %ss for seconds, or minutes like 2m", s)
		} else {
			p.add(line, field, s, "not a duration: write it like 30s, 90s or 2m")
		}
		return 0
	}
	if d < MinTimeout || d > MaxTimeout {
		p.add(line, field, s, "must be from %v to %v", MinTimeout, shortDuration(MaxTimeout))
		return 0
	}
	return d
}

// shortDuration writes whole minutes as "10m" rather than "10m0s".
func shortDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// check reads a certificate binding's check.
func (p *parser) check(o object) *Check {
	v := o.val("check")
	if isNull(v) {
		return nil
	}
	field := join(o.field, "check")
	co, ok := p.object(v, field, "known keys of check", checkKeys)
	if !ok {
		return nil
	}
	addr, ok1 := p.str(co, "tls")
	name, ok2 := p.str(co, "server_name")
	if !ok1 || !ok2 {
		return nil
	}
	tf, line := join(field, "tls"), co.lineOf("tls")
	if addr == "" {
		p.add(line, tf, "", `required: the host:port of the service to check, like "127.0.0.1:443"`)
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil && strings.Contains(err.Error(), "missing port"):
		p.add(line, tf, addr, "has no port: write host:port, like %q", net.JoinHostPort(strings.Trim(addr, "[]"), "443"))
		return nil
	case err != nil && strings.Contains(err.Error(), "too many colons"):
		p.add(line, tf, addr, `write an IPv6 address in brackets, like "[::1]:443"`)
		return nil
	case err != nil:
		p.add(line, tf, addr, `must be host:port, like "127.0.0.1:443"`)
		return nil
	case host == "":
		p.add(line, tf, addr, `has no host: write host:port, like "127.0.0.1:443"`)
		return nil
	case !validPort(port):
		p.add(line, tf, addr, "the port must be a number from 1 to 65535")
		return nil
	}
	if name != "" && strings.ContainsAny(name, " \t/:[]") {
		p.add(co.lineOf("server_name"), join(field, "server_name"), name, "is not a host name: write the name the service's certificate is for, like www.example.com")
		return nil
	}
	if name == "" && net.ParseIP(host) == nil {
		name = host
	}
	return &Check{TLS: addr, ServerName: name}
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// across checks the bindings against each other and the top-level paths.
func (p *parser) across(c *Config, b *bindings) {
	// The installer keeps a binding's versions in DIR/.certvault/NAME,
	// DIR being a secret's file's directory: no two bindings may share it.
	type place struct {
		binding string
		line    int
	}
	places := map[[2]string]place{}
	seen := func(field, name, dir string, line int) {
		if name == "" || dir == "" {
			return
		}
		k := [2]string{name, dir}
		if first, dup := places[k]; dup {
			p.add(line, field, "", "%q in %q is already bound by %s (line %d): the agent keeps a binding's versions in %s, so give each binding in one directory its own name (for one certificate, list all its files in one binding)",
				name, dir, first.binding, first.line, filepath.Join(dir, reservedPrefix, name))
			b.skip[field] = true
			return
		}
		places[k] = place{field, line}
	}
	for i, cert := range c.Certificates {
		seen(fmt.Sprintf("certificates[%d]", i), cert.Name, cert.Dir, cert.Line)
	}
	for i, sec := range c.Secrets {
		if sec.File != "" {
			seen(fmt.Sprintf("secrets[%d]", i), sec.Name, filepath.Dir(sec.File), sec.Line)
		}
	}
	written := map[string]target{}
	for _, t := range b.targets {
		if b.skip[t.binding] {
			continue
		}
		if first, dup := written[t.path]; dup {
			p.add(t.line, t.field, t.path, "also written by %s (line %d): two bindings cannot write the same file", first.binding, first.bline)
			continue
		}
		written[t.path] = t
		if c.StateDir != "" && within(t.path, c.StateDir) {
			p.add(t.line, t.field, t.path, "is inside state_dir %q, where the agent keeps its own identity: install it elsewhere", c.StateDir)
		}
		if c.CAFile != "" && t.path == c.CAFile {
			p.add(t.line, t.field, t.path, "would overwrite ca_file, which the agent trusts to reach the vault: install it elsewhere")
		}
	}
	for _, d := range b.dirs {
		if b.skip[d.binding] {
			continue
		}
		if c.StateDir != "" && within(d.dir, c.StateDir) {
			p.add(d.line, d.field, d.dir, "is inside state_dir %q, where the agent keeps its own identity: install it elsewhere", c.StateDir)
		}
		for _, t := range b.targets {
			if t.binding != d.binding && within(d.dir, t.path) {
				p.add(d.line, d.field, d.dir, "is inside %q, which %s (line %d) writes as a file", t.path, t.binding, t.bline)
			}
		}
	}
	// The agent reads pfx_password_file when it loads the configuration.
	for _, t := range b.pfxPass {
		p.regularFile(t.line, t.field, t.path)
	}
}
