package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The keys of the managed_identity section and of one identity.
var (
	miKeys       = []string{"listen", "socket", "identities"}
	identityKeys = []string{"user", "service_principal", "client_id", "env_file"}
)

// EnvVarHeader is the variable an identity's env_file sets: the
// managed-identity libraries read the header secret from it.
const EnvVarHeader = "IDENTITY_HEADER"

// maxSocketPath is the longest path a Unix socket may have on Linux
// (sun_path holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// ManagedIdentity is the managed-identity endpoint the agent serves to
// the applications on its machine: the protocol of Azure App Service
// (IDENTITY_ENDPOINT and IDENTITY_HEADER) on a loopback port, a Unix
// socket, or both. At least one of Listen and Socket is set, and at
// least one identity.
type ManagedIdentity struct {
	// Listen is the loopback address (an IP literal and a port, like
	// 127.0.0.1:50342) of the HTTP endpoint; empty for none.
	Listen string
	// Socket is the absolute path of the Unix socket variant, where the
	// agent also checks the caller's uid (SO_PEERCRED); empty for none.
	Socket string
	// Identities are the identities served, in file order; one per Unix
	// user.
	Identities []Identity
	// Line is the line of the section in the file, for messages.
	Line int
}

// Identity is one identity the endpoint hands out tokens for, to the
// applications of one Unix user.
type Identity struct {
	// User is the Unix user as written in the file; UID is it resolved.
	// The env_file is owned by that user, and on the Unix socket only
	// that user's processes get this identity's tokens.
	User string
	UID  int
	// ServicePrincipal is the name (without "sp:") of the vault service
	// principal whose tokens are handed out; empty for the agent's own
	// identity.
	ServicePrincipal string
	// ClientID is the service principal's client id, as the vault shows
	// it; optional. A request that names a user-assigned identity by
	// client_id must name this one (or the service principal's name).
	ClientID string
	// EnvFile is the absolute path of the file that holds the header
	// secret, written by the agent as one line "IDENTITY_HEADER=SECRET",
	// mode 0400, owned by User: usable as a systemd EnvironmentFile.
	EnvFile string
	// Line is the line of the identity in the file, for messages.
	Line int
}

// spNameRE is the vault's rule for a principal name.
var spNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// clientIDRE is what a client id may hold: no spaces or controls.
var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9._@:/-]{1,128}$`)

// managedIdentity reads the managed_identity section; nil when absent.
func (p *parser) managedIdentity(o object, b *bindings) *ManagedIdentity {
	v := o.val("managed_identity")
	if isNull(v) {
		return nil
	}
	const field = "managed_identity"
	mo, ok := p.object(v, field, "known keys of managed_identity", miKeys)
	if !ok {
		return nil
	}
	m := &ManagedIdentity{Line: mo.line}
	m.Listen = p.miListen(mo)
	if s, ok := p.str(mo, "socket"); ok && s != "" {
		f, line := join(field, "socket"), mo.lineOf("socket")
		if s, ok := p.absPath(line, f, s, "/run/certvault-agent/identity.sock"); ok {
			switch {
			case s == "/":
				p.add(line, f, s, "is a directory: write the socket's path, like /run/certvault-agent/identity.sock")
			case len(s) > maxSocketPath:
				p.add(line, f, s, "is longer than the %d bytes a Unix socket path may have: choose a shorter one", maxSocketPath)
			case reservedElem(s):
				p.add(line, f, s, "%s", reservedDirMsg)
			default:
				m.Socket = s
				b.miPaths = append(b.miPaths, target{path: s, field: f, line: line, binding: field, bline: mo.line})
			}
		}
	}
	if _, ok := mo.entries["listen"]; !ok && m.Socket == "" && !p.hasProblemIn(join(field, "socket")) {
		p.add(mo.line, field, "", `set listen (like "127.0.0.1:50342"), socket, or both`)
	}
	items, ok := p.list(mo, "identities", "identities", "user")
	if ok && len(items) == 0 {
		p.add(mo.lineOf("identities"), join(field, "identities"), "", "required: list at least one identity, like - {user: app, env_file: /run/certvault-agent/identity/app.env}")
	}
	users := map[int]Identity{}
	for i, n := range items {
		id := p.identity(fmt.Sprintf("%s.identities[%d]", field, i), n, b)
		if id.User == "" {
			continue
		}
		if first, dup := users[id.UID]; dup {
			p.add(id.Line, fmt.Sprintf("%s.identities[%d].user", field, i), id.User,
				"has an identity already (user %q, line %d): give each Unix user one identity", first.User, first.Line)
			continue
		}
		users[id.UID] = id
		m.Identities = append(m.Identities, id)
	}
	return m
}

// miListen checks managed_identity.listen: a loopback IP and a port.
func (p *parser) miListen(o object) string {
	s, ok := p.str(o, "listen")
	if !ok {
		return ""
	}
	f, line := join(o.field, "listen"), o.lineOf("listen")
	if s == "" {
		if _, set := o.entries["listen"]; set {
			p.add(line, f, "", `empty: write a loopback address like "127.0.0.1:50342", or leave listen out`)
		}
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.add(line, f, s, `must be a loopback IP address and a port, like "127.0.0.1:50342" or "[::1]:50342"`)
		return ""
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "localhost":
		p.add(line, f, s, `write the address, not a name: "127.0.0.1:%s"`, port)
	case err != nil || ip.Zone() != "":
		p.add(line, f, s, `the host must be a loopback IP address, like "127.0.0.1:50342"`)
	case !ip.IsLoopback():
		p.add(line, f, s, `is not a loopback address: the endpoint hands out tokens to whoever has the header, so it listens only on this machine; write "127.0.0.1:%s"`, port)
	case !validPort(port):
		p.add(line, f, s, "the port must be a number from 1 to 65535 (applications must know it: no 0)")
	default:
		n, _ := strconv.Atoi(port) // validPort accepted it
		return netip.AddrPortFrom(ip, uint16(n)).String()
	}
	return ""
}

// identity reads one entry of managed_identity.identities.
func (p *parser) identity(field string, n *yaml.Node, b *bindings) Identity {
	if isNull(n) {
		p.add(resolve(n).Line, field, "", "empty identity: give at least user and env_file")
		return Identity{}
	}
	o, ok := p.object(n, field, "known keys of an identity", identityKeys)
	if !ok {
		return Identity{}
	}
	id := Identity{Line: o.line}
	if s, ok := p.str(o, "user"); ok {
		if s == "" {
			p.add(o.lineOf("user"), join(field, "user"), "", "required: the Unix user whose applications use this identity, like app")
		} else if name, uid := p.ident(o, "user"); p.hasProblemIn(join(field, "user")) {
			id.User = ""
		} else {
			id.User, id.UID = name, uid
		}
	}
	if s, ok := p.str(o, "service_principal"); ok && s != "" {
		f, line := join(field, "service_principal"), o.lineOf("service_principal")
		switch {
		case strings.HasPrefix(s, "sp:"):
			p.add(line, f, s, "write the service principal's name without sp:, like %q", strings.TrimPrefix(s, "sp:"))
		case !spNameRE.MatchString(s):
			p.add(line, f, s, "a service principal name is up to 128 letters, digits and . _ @ -, starting with a letter or digit (see certvault sp list)")
		default:
			id.ServicePrincipal = s
		}
	}
	if s, ok := p.str(o, "client_id"); ok && s != "" {
		if !clientIDRE.MatchString(s) {
			p.add(o.lineOf("client_id"), join(field, "client_id"), s, "is not a client id: write it as certvault sp get shows it")
		} else {
			id.ClientID = s
		}
	}
	if s, ok := p.str(o, "env_file"); ok {
		f, line := join(field, "env_file"), o.lineOf("env_file")
		const example = "/run/certvault-agent/identity/app.env"
		if s == "" {
			p.add(line, f, "", "required: the absolute path of the file the agent writes the header secret to, like %s", example)
		} else if s, ok := p.absPath(line, f, s, example); ok {
			switch {
			case s == "/" || filepath.Dir(s) == "/":
				p.add(line, f, s, "must be in a directory of its own, like %s", example)
			case baseNameProblem(filepath.Base(s)) != "":
				p.add(line, f, s, "%s", baseNameProblem(filepath.Base(s)))
			case reservedElem(filepath.Dir(s)):
				p.add(line, f, s, "%s", reservedDirMsg)
			default:
				id.EnvFile = s
				b.miPaths = append(b.miPaths, target{path: s, field: f, line: line, binding: field, bline: o.line})
			}
		}
	}
	if id.User == "" || id.EnvFile == "" {
		return Identity{}
	}
	return id
}

// acrossMI checks the managed identity's files against each other, the
// bindings and the top-level paths.
func (p *parser) acrossMI(c *Config, b *bindings) {
	seen := map[string]target{}
	for _, t := range b.miPaths {
		if first, dup := seen[t.path]; dup {
			p.add(t.line, t.field, t.path, "is also %s (line %d): each needs its own file", first.field, first.line)
			continue
		}
		seen[t.path] = t
		if c.StateDir != "" && within(t.path, c.StateDir) {
			p.add(t.line, t.field, t.path, "is inside state_dir %q, which only root may read: choose another place, like /run/certvault-agent", c.StateDir)
		}
		if c.CAFile != "" && t.path == c.CAFile {
			p.add(t.line, t.field, t.path, "would overwrite ca_file: choose another place, like /run/certvault-agent")
		}
		for _, w := range b.targets {
			if within(t.path, w.path) || within(w.path, t.path) {
				p.add(t.line, t.field, t.path, "collides with %q, which %s (line %d) writes", w.path, w.binding, w.bline)
			}
		}
		for _, d := range b.dirs {
			if within(d.dir, t.path) {
				p.add(t.line, t.field, t.path, "would have to be a directory for %s (line %d), whose dir is %q: choose another place", d.binding, d.bline, d.dir)
			}
		}
	}
}
