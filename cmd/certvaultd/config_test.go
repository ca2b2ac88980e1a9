package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/flagfile"
	"github.com/spf13/pflag"
)

// writeConfig writes a configuration file into a temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "certvaultd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatalf("write the configuration: %v", err)
	}
	return path
}

// TestEveryFlagIsAKey: each of certvaultd's flags can be set from the
// file with the same value it takes on the command line, but for the
// refused ones, which are exactly the file's own name, --version and the
// join token (a secret). A new flag joins the file by itself; one that
// cannot be set from it fails here.
func TestEveryFlagIsAKey(t *testing.T) {
	var refused []string
	for name := range fileOptions.Refused {
		refused = append(refused, name)
	}
	sort.Strings(refused)
	if want := []string{"config", "join-token", "version"}; !slices.Equal(refused, want) {
		t.Errorf("refused keys %v, want %v: every other flag must be a key of the file", refused, want)
	}
	newFlagSet(&settings{}).VisitAll(func(f *pflag.Flag) {
		if _, ok := fileOptions.Refused[f.Name]; ok {
			return
		}
		t.Run(f.Name, func(t *testing.T) {
			value := sampleValue(f)
			var fromFile settings
			fs := newFlagSet(&fromFile)
			fromFile.configPath = writeConfig(t, fmt.Sprintf("# certvaultd\n%s: %s\n", f.Name, strconv.Quote(value)))
			if err := fromFile.readConfig(fs); err != nil {
				t.Fatalf("the file cannot set %s: %v", f.Name, err)
			}
			if line := fromFile.origin.Line(f.Name); line != 2 {
				t.Errorf("origin of %s: line %d, want 2", f.Name, line)
			}
			var fromFlag settings
			if err := newFlagSet(&fromFlag).Parse([]string{"--" + f.Name + "=" + value}); err != nil {
				t.Fatalf("--%s=%s: %v", f.Name, value, err)
			}
			fromFile.configPath, fromFile.origin = "", flagfile.Origin{}
			fromFlag.configPath = ""
			if got, want := fmt.Sprintf("%+v", fromFile), fmt.Sprintf("%+v", fromFlag); got != want {
				t.Errorf("%s from the file gives %s, from the flag %s", f.Name, got, want)
			}
		})
	})
}

// sampleValue is a value unlike f's default that f takes.
func sampleValue(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "bool":
		return strconv.FormatBool(f.DefValue != "true")
	case "duration":
		return "7s"
	case "int", "uint64":
		return "7"
	default:
		return "sample-" + f.Name
	}
}

// TestNoInlineSecrets: a flag that holds a secret takes a file's name, or
// is not a key of the configuration file.
func TestNoInlineSecrets(t *testing.T) {
	secret := regexp.MustCompile(`password|pin|secret|token|passphrase`)
	newFlagSet(&settings{}).VisitAll(func(f *pflag.Flag) {
		_, refused := fileOptions.Refused[f.Name]
		if secret.MatchString(f.Name) && !strings.HasSuffix(f.Name, "-file") && !refused && f.Name != "pkcs11-token-label" {
			t.Errorf("--%s looks like a secret given inline: take a file (--%s-file) or refuse it in the file", f.Name, f.Name)
		}
	})
}

func TestFlagsWinOverFile(t *testing.T) {
	cfg := writeConfig(t, "data: /var/lib/from-file\nlisten: 10.0.0.1:8443\nraft-timeout: 3s\nui: false\n")
	var stderr bytes.Buffer
	s, code, ok := load([]string{"--config", cfg, "--listen", "127.0.0.1:9443", "--ui=true"}, &stderr)
	if !ok {
		t.Fatalf("load: exit %d: %s", code, stderr.String())
	}
	if s.o.Listen != "127.0.0.1:9443" || !s.o.UI {
		t.Errorf("listen %q, ui %v: want the flags' 127.0.0.1:9443 and true", s.o.Listen, s.o.UI)
	}
	if s.o.DataDir != "/var/lib/from-file" || s.o.RaftTimeout != 3*time.Second {
		t.Errorf("data %q, raft-timeout %v: want the file's /var/lib/from-file and 3s", s.o.DataDir, s.o.RaftTimeout)
	}
}

// TestDefaultConfigOptional: without --config a missing default file is
// no error, and --config "" reads none; a named file must exist.
func TestDefaultConfigOptional(t *testing.T) {
	if _, err := os.Stat(defaultConfig); err == nil {
		t.Skipf("%s exists on this machine", defaultConfig)
	}
	var stderr bytes.Buffer
	if s, code, ok := load(nil, &stderr); !ok || s.configPath != "" {
		t.Errorf("no --config: exit %d ok %v: %s", code, ok, stderr.String())
	}
	if s, code, ok := load([]string{"--config="}, &stderr); !ok || s.configPath != "" {
		t.Errorf("--config \"\": exit %d ok %v: %s", code, ok, stderr.String())
	}
	missing := filepath.Join(t.TempDir(), "none.yaml")
	stderr.Reset()
	if _, code, ok := load([]string{"--config", missing}, &stderr); ok || code != 2 || !strings.Contains(stderr.String(), "none.yaml: no such file") {
		t.Errorf("a missing --config file: exit %d ok %v: %q", code, ok, stderr.String())
	}
}

// TestStartRefusesBadFile: the daemon does not start on a bad file, and
// says which line is wrong.
func TestStartRefusesBadFile(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"unknown key", "data: /x\nlisten: a:1\nlisen: b:2\n", `certvaultd: FILE:3: lisen: unknown key (did you mean "listen"?)`},
		{"bad duration", "data: /x\nrequest-deadline: 5\n", `certvaultd: FILE:2: request-deadline "5": not a duration`},
		{"bad int", "\n\nmax-unauthenticated-requests: lots\n", `certvaultd: FILE:3: max-unauthenticated-requests "lots": not a whole number`},
		{"out of range", "raft-timeout: 5ms\n", `certvaultd: FILE:1: raft-timeout "5ms": use 100ms to 1m`},
		{"bad level", "ui: true\nlog-level: loud\n", `certvaultd: FILE:2: log-level "loud": use debug, info, warn or error`},
		{"secret inline", "join-token: cvj.a.b\n", `certvaultd: FILE:1: join-token: is a secret and stays out of this file`},
		{"pprof not loopback", "pprof-listen: 0.0.0.0:6060\n", `certvaultd: FILE:1: pprof-listen "0.0.0.0:6060": not a loopback address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.file)
			var stderr bytes.Buffer
			_, code, ok := load([]string{"--config", cfg}, &stderr)
			if ok || code != 2 {
				t.Fatalf("got ok %v exit %d, want a refusal with exit 2", ok, code)
			}
			if want := strings.ReplaceAll(tc.want, "FILE", cfg); !strings.HasPrefix(stderr.String(), want) {
				t.Errorf("got %q, want it to start with %q", stderr.String(), want)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	good := writeConfig(t, "data: /var/lib/certvault\nlisten: 127.0.0.1:8443\n")
	bad := writeConfig(t, "data: /var/lib/certvault\nraft-timeout: forever\n")
	tls := writeConfig(t, "tls-cert: /nonexistent/cert.pem\ntls-key: /nonexistent/key.pem\n")
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		out, err   string
		errPattern string
	}{
		{"valid", []string{"--config", good}, 0, "configuration valid: " + good + ": 2 settings; data /var/lib/certvault, API 127.0.0.1:8443", "", ""},
		{"flag over file", []string{"--config", good, "--listen", "127.0.0.1:9"}, 0, "API 127.0.0.1:9,", "", ""},
		{"flags only", []string{"--config="}, 0, `configuration valid: flags only`, "", ""},
		{"bad value", []string{"--config", bad}, 1, "", "certvaultd check-config: " + bad + `:2: raft-timeout "forever": not a duration`, ""},
		{"bad flag value", []string{"--config", good, "--raft-timeout", "5ms"}, 1, "", `certvaultd check-config: --raft-timeout 5ms: use 100ms to 1m`, ""},
		{"missing files", []string{"--config", tls}, 1, "", "", `(?m)^certvaultd check-config: .*:1: tls-cert "/nonexistent/cert.pem": cannot be read: no such file or directory\n.*:2: tls-key "/nonexistent/key.pem": cannot be read`},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "x.yaml")}, 1, "", "certvaultd check-config: read the configuration file: open ", ""},
		{"unknown flag", []string{"--bogus"}, 2, "", "certvaultd check-config: unknown flag: --bogus", ""},
		{"argument", []string{"--config", good, "extra"}, 2, "", `certvaultd check-config: unexpected argument "extra"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := checkConfig(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.out) {
				t.Errorf("stdout %q, want %q in it", stdout.String(), tc.out)
			}
			if !strings.HasPrefix(stderr.String(), tc.err) {
				t.Errorf("stderr %q, want it to start with %q", stderr.String(), tc.err)
			}
			if tc.errPattern != "" && !regexp.MustCompile(tc.errPattern).MatchString(stderr.String()) {
				t.Errorf("stderr %q, want it to match %s", stderr.String(), tc.errPattern)
			}
			if tc.code == 0 && stderr.Len() > 0 {
				t.Errorf("a valid configuration wrote to stderr: %q", stderr.String())
			}
		})
	}
}

// TestPackagedConfig: the configuration file the .deb installs is valid
// and sets what the packaged unit relies on.
func TestPackagedConfig(t *testing.T) {
	path := filepath.Join("..", "..", "packaging", "certvaultd.yaml")
	var stderr bytes.Buffer
	s, code, ok := load([]string{"--config", path}, &stderr)
	if !ok {
		t.Fatalf("load %s: exit %d: %s", path, code, stderr.String())
	}
	if s.o.DataDir != "/var/lib/certvault" || s.logFormat != "json" {
		t.Errorf("data %q, log-format %q: want /var/lib/certvault and json", s.o.DataDir, s.logFormat)
	}
}

// TestUsage: --help explains the configuration file and check-config.
func TestUsage(t *testing.T) {
	var stderr bytes.Buffer
	if _, code, ok := load([]string{"--help"}, &stderr); ok || code != 0 {
		t.Fatalf("--help: ok %v exit %d", ok, code)
	}
	for _, want := range []string{"certvaultd check-config [--config FILE]", "/etc/certvault/certvaultd.yaml", "--config string", "A\nflag on the command line wins over the file", "CERTVAULT_JOIN_TOKEN"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
