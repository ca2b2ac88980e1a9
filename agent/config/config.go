// Package config is the agent's configuration file: the vault the agent
// talks to, and the certificates and secrets it installs, with where,
// under which owner and mode, how to reload the services that use them
// and how to check that a service took a new certificate.
//
// The file is YAML, edited by hand:
//
//	vault: https://vault.example:8443
//	ca_file: /etc/certvault/ca.pem
//	state_dir: /var/lib/certvault-agent
//	certificates:
//	  - name: www
//	    dir: /etc/nginx/tls/www
//	    files: {cert: cert.pem, chain: chain.pem, fullchain: fullchain.pem, key: key.pem}
//	    owner: root
//	    group: www-data
//	    mode: "0640"
//	    reload: ["systemctl", "reload", "nginx"]
//	    check: {tls: "127.0.0.1:443", server_name: www.example.com}
//	secrets:
//	  - name: db-password
//	    file: /etc/app/db-password
//	    owner: app
//	    mode: "0400"
//	    reload: ["systemctl", "restart", "app"]
//	managed_identity:
//	  listen: 127.0.0.1:50342
//	  socket: /run/certvault-agent/identity.sock
//	  identities:
//	    - user: app
//	      service_principal: billing
//	      env_file: /run/certvault-agent/identity/app.env
//
// The managed_identity section (optional) is the endpoint the agent
// serves to local applications in the protocol of Azure App Service
// managed identity; a file may have only that section and no bindings.
//
// Load reads and checks the whole file before it returns: unknown keys,
// missing or malformed values, users, groups and commands that do not
// exist on the machine, and bindings that would write the same file. It
// reports every problem at once, each with the file and line, and returns
// no Config at all when there is one, so that a bad file installs
// nothing. It does not install or watch anything, and serves nothing.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/certvault/certvault/internal/yamlfile"
)

// ErrInvalid is wrapped by every error that Load, Parse and ParseWith
// return for a file that is not a valid configuration (as opposed to a
// file that cannot be read). The error is an *Error listing the problems.
var ErrInvalid = errors.New("invalid agent configuration")

// Defaults and limits.
const (
	// DefaultMode is the mode of installed files when a binding sets none.
	DefaultMode os.FileMode = 0o600
	// DefaultTimeout bounds a binding's reload and check when it sets no
	// timeout.
	DefaultTimeout = 30 * time.Second
	// MinTimeout and MaxTimeout bound the timeout a binding may set.
	MinTimeout = time.Second
	// MaxTimeout is the longest timeout a binding may set.
	MaxTimeout = 10 * time.Minute
)

// Config is a loaded, valid configuration file.
type Config struct {
	// Path is the file the configuration came from.
	Path string
	// Vault is the vault's base URL, always https://.
	Vault string
	// CAFile is the PEM file of the CA(s) that the vault's API
	// certificate chains to.
	CAFile string
	// StateDir is the directory where the agent keeps its own state
	// (identity and the like). No binding may write inside it.
	StateDir string
	// Certificates are the certificate bindings, in file order.
	Certificates []Certificate
	// Secrets are the secret bindings, in file order.
	Secrets []Secret
	// ManagedIdentity is the managed-identity endpoint the agent serves
	// to local applications; nil when the file has no managed_identity
	// section.
	ManagedIdentity *ManagedIdentity
}

// Files names the files a certificate binding writes, as base names
// inside the binding's Dir. An empty name means that file is not written.
type Files struct {
	// Cert is the leaf certificate alone (PEM).
	Cert string
	// Chain is the intermediate certificates without the leaf (PEM).
	Chain string
	// Fullchain is the leaf followed by the intermediates (PEM).
	Fullchain string
	// Key is the private key (PEM).
	Key string
	// Combined is the key followed by the full chain (PEM), as HAProxy
	// and some others want it.
	Combined string
	// PFX is key and chain as PKCS #12.
	PFX string
}

// Check is a TLS check run after a reload: the agent connects and expects
// the new certificate.
type Check struct {
	// TLS is the host:port to connect to.
	TLS string
	// ServerName is the SNI name to send. When the file sets none it is
	// the host of TLS, or empty when that host is an IP address.
	ServerName string
}

// Certificate binds a vault certificate to files on this machine.
type Certificate struct {
	// Name is the certificate's name in the vault.
	Name string
	// Dir is the absolute, clean directory the files go in.
	Dir string
	// Files names the files written in Dir; at least one is set.
	Files Files
	// PFXPasswordFile, when set, is the file whose content protects the
	// PFX file. It is only allowed together with Files.PFX.
	PFXPasswordFile string
	// Owner and Group are as written in the file; empty when omitted.
	Owner, Group string
	// UID and GID are Owner and Group resolved on this machine, or the
	// agent process's own uid and gid when Owner or Group is omitted.
	UID, GID int
	// Mode is the permission of every file written, default 0600.
	Mode os.FileMode
	// Reload is the command run after the files change, as argv; empty
	// for none. A single string in the file becomes ["sh", "-c", string].
	Reload []string
	// Check, when not nil, is run after Reload.
	Check *Check
	// Timeout bounds the reload command (which then gets SIGTERM, and
	// SIGKILL 5 s later) and, separately, the health check; default 30s.
	Timeout time.Duration
	// Line is the line of the binding in the file, for messages.
	Line int
}

// Paths returns the absolute paths of the files c writes, in the order
// cert, chain, fullchain, key, combined, pfx.
func (c *Certificate) Paths() []string {
	var out []string
	for _, f := range c.Files.list() {
		out = append(out, joinPath(c.Dir, f.name))
	}
	return out
}

// Secret binds a vault secret to one file on this machine.
type Secret struct {
	// Name is the secret's name in the vault.
	Name string
	// File is the absolute, clean path the secret's value is written to.
	File string
	// Owner and Group are as written in the file; empty when omitted.
	Owner, Group string
	// UID and GID are Owner and Group resolved on this machine, or the
	// agent process's own uid and gid when Owner or Group is omitted.
	UID, GID int
	// Mode is the permission of the file, default 0600.
	Mode os.FileMode
	// Reload is the command run after the file changes, as argv; empty
	// for none. A single string in the file becomes ["sh", "-c", string].
	Reload []string
	// Timeout bounds Reload; default 30s.
	Timeout time.Duration
	// Line is the line of the binding in the file, for messages.
	Line int
}

// Load reads and checks the configuration file at path. It returns an
// error wrapping ErrInvalid, an *Error, when the file is not valid, and
// the error of reading it when it cannot be read; in both cases no
// Config.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent configuration: %w", err)
	}
	return Parse(data, path)
}

// Parse checks the configuration in data, using the machine's users,
// groups, PATH and files. path is only used in messages and Config.Path.
func Parse(data []byte, path string) (*Config, error) {
	return ParseWith(data, path, Env{})
}

// Objects returns the vault objects that c binds, each once and sorted:
// "certificates/NAME" and "secrets/NAME".
func (c *Config) Objects() []string {
	var out []string
	for _, b := range c.Certificates {
		out = append(out, "certificates/"+b.Name)
	}
	for _, b := range c.Secrets {
		out = append(out, "secrets/"+b.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Problem is one thing wrong in a configuration file: its line, field,
// value as written and what to write instead.
type Problem = yamlfile.Problem

// Error is an invalid configuration file: all its problems, sorted by
// line. It wraps ErrInvalid.
type Error = yamlfile.Error
