package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// mi is head and a managed_identity section: lines 4 to 10.
const mi = head + `managed_identity:
  listen: 127.0.0.1:50342
  socket: /run/certvault-agent/identity.sock
  identities:
    - user: app
      service_principal: billing
      env_file: /run/certvault-agent/identity/app.env
`

func TestManagedIdentity(t *testing.T) {
	r := files(t)
	c, err := ParseWith([]byte(r.Replace(mi+"    - {user: nginx, client_id: 7f3c-11, env_file: /run/certvault-agent/identity/nginx.env}\n")), "agent.yaml", fakeEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := &ManagedIdentity{
		Listen: "127.0.0.1:50342",
		Socket: "/run/certvault-agent/identity.sock",
		Identities: []Identity{
			{User: "app", UID: 1001, ServicePrincipal: "billing", EnvFile: "/run/certvault-agent/identity/app.env", Line: 8},
			{User: "nginx", UID: 101, ClientID: "7f3c-11", EnvFile: "/run/certvault-agent/identity/nginx.env", Line: 11},
		},
		Line: 5,
	}
	if !reflect.DeepEqual(c.ManagedIdentity, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c.ManagedIdentity, want)
	}
	if len(c.Certificates)+len(c.Secrets) != 0 {
		t.Errorf("bindings from nowhere: %+v %+v", c.Certificates, c.Secrets)
	}

	for _, tc := range []struct{ name, yaml, listen, socket string }{
		{"IPv6 loopback", head + "managed_identity:\n  listen: \"[::1]:50342\"\n  identities: [{user: app, env_file: /run/x/a.env}]\n", "[::1]:50342", ""},
		{"socket only", head + "managed_identity:\n  socket: /run/x/id.sock\n  identities: [{user: 1001, env_file: /run/x/a.env}]\n", "", "/run/x/id.sock"},
		{"another loopback address", head + "managed_identity:\n  listen: 127.0.0.2:80\n  identities: [{user: root, env_file: /run/x/a.env}]\n", "127.0.0.2:80", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseWith([]byte(r.Replace(tc.yaml)), "agent.yaml", fakeEnv())
			if err != nil {
				t.Fatal(err)
			}
			if m := c.ManagedIdentity; m == nil || m.Listen != tc.listen || m.Socket != tc.socket || len(m.Identities) != 1 {
				t.Errorf("got %+v, want listen %q socket %q and one identity", m, tc.listen, tc.socket)
			}
		})
	}
	if c, err := ParseWith([]byte(r.Replace(cert)), "agent.yaml", fakeEnv()); err != nil || c.ManagedIdentity != nil {
		t.Errorf("a file without managed_identity: %+v, %v; want a nil ManagedIdentity", c, err)
	}
}

func TestManagedIdentityInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"not loopback", strings.Replace(mi, "127.0.0.1:50342", "0.0.0.0:50342", 1),
			[]string{`agent.yaml:5: managed_identity.listen "0.0.0.0:50342": is not a loopback address`}},
		{"a name", strings.Replace(mi, "127.0.0.1:50342", "localhost:50342", 1),
			[]string{`:5: managed_identity.listen "localhost:50342": write the address, not a name: "127.0.0.1:50342"`}},
		{"no port", strings.Replace(mi, "127.0.0.1:50342", "127.0.0.1", 1),
			[]string{`:5: managed_identity.listen "127.0.0.1": must be a loopback IP address and a port`}},
		{"port 0", strings.Replace(mi, "127.0.0.1:50342", "127.0.0.1:0", 1),
			[]string{`:5: managed_identity.listen "127.0.0.1:0": the port must be a number from 1 to 65535`}},
		{"zone", strings.Replace(mi, "127.0.0.1:50342", `"[fe80::1%lo]:1"`, 1),
			[]string{`:5: managed_identity.listen "[fe80::1%lo]:1": the host must be a loopback IP address`}},
		{"relative socket", strings.Replace(mi, "/run/certvault-agent/identity.sock", "identity.sock", 1),
			[]string{`:6: managed_identity.socket "identity.sock": must be an absolute path`}},
		{"socket path too long", strings.Replace(mi, "/run/certvault-agent/identity.sock", "/run/"+strings.Repeat("x", 110), 1),
			[]string{`:6: managed_identity.socket`, `is longer than the 107 bytes a Unix socket path may have`}},
		{"neither listen nor socket", head + "managed_identity:\n  identities: [{user: app, env_file: /run/x/a.env}]\n",
			[]string{`:5: managed_identity: set listen (like "127.0.0.1:50342"), socket, or both`}},
		{"no identities", head + "managed_identity:\n  listen: 127.0.0.1:50342\n  identities: []\n",
			[]string{`:6: managed_identity.identities: required: list at least one identity`}},
		{"identities a mapping", head + "managed_identity:\n  listen: 127.0.0.1:50342\n  identities: {user: app}\n",
			[]string{`:6: managed_identity.identities: must be a list of identities, each starting with "- user:"`}},
		{"unknown key", mi + "      header_file: /run/x\n",
			[]string{`:11: managed_identity.identities[0].header_file: unknown key; known keys of an identity: user, service_principal, client_id, env_file`}},
		{"unknown section key", mi + "  port: 50342\n", []string{`:11: managed_identity.port: unknown key`}},
		{"missing user", head + "managed_identity:\n  listen: 127.0.0.1:1\n  identities:\n    - env_file: /run/x/a.env\n",
			[]string{`:7: managed_identity.identities[0].user: required`}},
		{"no such user", strings.Replace(mi, "user: app", "user: ghost", 1),
			[]string{`:8: managed_identity.identities[0].user "ghost": no such user on this machine`}},
		{"missing env_file", head + "managed_identity:\n  listen: 127.0.0.1:1\n  identities:\n    - user: app\n",
			[]string{`:7: managed_identity.identities[0].env_file: required`}},
		{"env_file relative", strings.Replace(mi, "/run/certvault-agent/identity/app.env", "app.env", 1),
			[]string{`:10: managed_identity.identities[0].env_file "app.env": must be an absolute path`}},
		{"env_file in /", strings.Replace(mi, "/run/certvault-agent/identity/app.env", "/app.env", 1),
			[]string{`:10: managed_identity.identities[0].env_file "/app.env": must be in a directory of its own`}},
		{"service principal with sp:", strings.Replace(mi, "billing", "sp:billing", 1),
			[]string{`:9: managed_identity.identities[0].service_principal "sp:billing": write the service principal's name without sp:, like "billing"`}},
		{"bad service principal", strings.Replace(mi, "billing", "bill ing", 1),
			[]string{`:9: managed_identity.identities[0].service_principal "bill ing": a service principal name is`}},
		{"bad client id", mi + "      client_id: \"a b\"\n",
			[]string{`:11: managed_identity.identities[0].client_id "a b": is not a client id`}},
		{"same user twice", mi + "    - {user: \"1001\", env_file: /run/x/b.env}\n",
			[]string{`:11: managed_identity.identities[1].user "1001": has an identity already (user "app", line 8)`}},
		{"same env_file twice", mi + "    - {user: nginx, env_file: /run/certvault-agent/identity/app.env}\n",
			[]string{`:11: managed_identity.identities[1].env_file "/run/certvault-agent/identity/app.env": is also managed_identity.identities[0].env_file (line 10)`}},
		{"env_file is the socket", mi + "    - {user: nginx, env_file: /run/certvault-agent/identity.sock}\n",
			[]string{`:11: managed_identity.identities[1].env_file "/run/certvault-agent/identity.sock": is also managed_identity.socket (line 6)`}},
		{"env_file in state_dir", strings.Replace(mi, "/run/certvault-agent/identity/app.env", "/var/lib/certvault-agent/app.env", 1),
			[]string{`:10: managed_identity.identities[0].env_file "/var/lib/certvault-agent/app.env": is inside state_dir`}},
		{"socket in state_dir", strings.Replace(mi, "/run/certvault-agent/identity.sock", "/var/lib/certvault-agent/id.sock", 1),
			[]string{`:6: managed_identity.socket "/var/lib/certvault-agent/id.sock": is inside state_dir`}},
		{"env_file is a secret binding's file", mi + "secrets:\n  - {name: a, file: /run/certvault-agent/identity/app.env}\n",
			[]string{`:10: managed_identity.identities[0].env_file "/run/certvault-agent/identity/app.env": collides with "/run/certvault-agent/identity/app.env", which secrets[0] (line 12) writes`}},
		{"env_file is ca_file", strings.Replace(mi, "/run/certvault-agent/identity/app.env", "{{CA}}", 1),
			[]string{`:10: managed_identity.identities[0].env_file`, `would overwrite ca_file`}},
		{"env_file in .certvault", strings.Replace(mi, "/run/certvault-agent/identity/app.env", "/etc/x/.certvault/app.env", 1),
			[]string{`:10: managed_identity.identities[0].env_file "/etc/x/.certvault/app.env": is inside a directory of the agent's own`}},
		{"section a list", head + "managed_identity: [a]\n", []string{`:4: managed_identity: must be a mapping of keys (listen, socket, identities), not a list`}},
		{"empty config names managed_identity", head, []string{`nothing to install: add a certificates: or secrets: list (or a managed_identity: section)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := files(t)
			c, err := ParseWith([]byte(r.Replace(tt.yaml)), "agent.yaml", fakeEnv())
			if err == nil {
				t.Fatalf("no error; config %+v", c.ManagedIdentity)
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
