package solver_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/certvault/certvault/vault/acme/solver"
)

func TestParseTSIGKeyFromTsigKeygen(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"} {
		t.Run(alg, func(t *testing.T) {
			out := tsigKeygen(t, alg, "acme-"+alg+".example.test")
			k, err := solver.ParseTSIGKey(out)
			if err != nil {
				t.Fatalf("ParseTSIGKey(%q): %v", out, err)
			}
			if k.Name != "acme-"+alg+".example.test" || k.Algorithm != alg {
				t.Errorf("got name %q algorithm %q, want %q %q", k.Name, k.Algorithm, "acme-"+alg+".example.test", alg)
			}
			if !strings.Contains(string(out), `secret "`+k.Secret+`"`) {
				t.Errorf("secret %q is not the file's", k.Secret)
			}
		})
	}
}

func TestParseTSIGKeyFromDdnsConfgen(t *testing.T) {
	t.Parallel()
	// Its full output: comments, the key, an update-policy example and an
	// nsupdate command line.
	out, err := exec.Command(bindTool(t, "ddns-confgen"), "-z", "example.test").Output()
	if err != nil {
		t.Fatalf("ddns-confgen: %v", err)
	}
	k, err := solver.ParseTSIGKey(out)
	if err != nil {
		t.Fatalf("ParseTSIGKey(%q): %v", out, err)
	}
	if k.Name != "ddns-key.example.test" || k.Algorithm != "hmac-sha256" || !strings.Contains(string(out), k.Secret) {
		t.Errorf("got %v with secret %q, want ddns-key.example.test hmac-sha256 and the file's secret", k, k.Secret)
	}
}

const testSecret = "R3Vlc3NNZUlmWW91Q2FuLXRoaXMtaXMtdGhlLXNlY3JldA=="

func TestParseTSIGKeyVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, data, wantName, wantAlg string
	}{
		{"tsig-keygen layout", "key \"k1\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + testSecret + "\";\n};\n", "k1", "hmac-sha256"},
		{"one line", `key "k1" { algorithm hmac-sha512; secret "` + testSecret + `"; };`, "k1", "hmac-sha512"},
		{"bare words, no spaces", `key k1{algorithm hmac-sha1;secret ` + testSecret + `;};`, "k1", "hmac-sha1"},
		{"upper case, final dots", "KEY \"k1.example.\" {\r\n ALGORITHM HMAC-SHA384.;\r\n Secret \"" + testSecret + "\";\r\n}", "k1.example", "hmac-sha384"},
		{"comments", "# made by hand\n// for the vault\n/* multi\n line */ key \"k1\" { # the name\n algorithm /* inline */ hmac-sha224; // note\n secret \"" + testSecret + "\"; };\n", "k1", "hmac-sha224"},
		{"other statements skipped", "options { directory \"/var/cache/bind\"; };\nserver 192.0.2.1 { keys { k1; }; };\nkey \"k1\" { algorithm hmac-sha256; secret \"" + testSecret + "\"; };\nzone \"x\" { type primary; };", "k1", "hmac-sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := solver.ParseTSIGKey([]byte(tc.data))
			if err != nil {
				t.Fatalf("ParseTSIGKey: %v", err)
			}
			if k.Name != tc.wantName || k.Algorithm != tc.wantAlg || k.Secret != testSecret {
				t.Errorf("got %q %q secret ok=%v, want %q %q", k.Name, k.Algorithm, k.Secret == testSecret, tc.wantName, tc.wantAlg)
			}
		})
	}
}

func TestParseTSIGKeyErrors(t *testing.T) {
	t.Parallel()
	const s = testSecret
	for _, tc := range []struct{ name, data, want string }{
		{"empty", "", "no key statement"},
		{"only comments", "# key \"k\" { };\n", "no key statement"},
		{"no secret", `key "k" { algorithm hmac-sha256; };`, "no secret"},
		{"no algorithm", `key "k" { secret "` + s + `"; };`, "no algorithm"},
		{"md5", `key "k" { algorithm hmac-md5; secret "` + s + `"; };`, `"hmac-md5" is not supported`},
		{"secret not base64", `key "k" { algorithm hmac-sha256; secret "` + s[:20] + `!!` + s[20:] + `"; };`, "not standard base64"},
		{"secret not closed", "key \"k\" {\n algorithm hmac-sha256;\n secret \"" + s + ";\n};\n", "line 3: a quoted string is not closed"},
		{"secret without semicolon", `key "k" { algorithm hmac-sha256; secret "` + s + `" };`, "want ; after the secret"},
		{"secret in place of a statement", `key "k" { algorithm hmac-sha256; ` + s + `; };`, "unknown statement"},
		{"quoted secret in place of a statement", `key "k" { algorithm hmac-sha256; "` + s + `"; };`, "want a statement"},
		{"not closed", `key "k" { algorithm hmac-sha256; secret "` + s + `";`, "not closed"},
		{"two keys", `key "a" { algorithm hmac-sha256; secret "` + s + `"; }; key "b" { algorithm hmac-sha256; secret "` + s + `"; };`, `2 key statements ("a", "b")`},
		{"comment not closed", "/* " + s, "comment is not closed"},
		{"stray brace", "}", "closes nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := solver.ParseTSIGKey([]byte(tc.data))
			if err == nil {
				t.Fatalf("ParseTSIGKey: got %v, want an error", k)
			}
			if !errors.Is(err, solver.ErrBadKeyFile) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrBadKeyFile mentioning %q", err, tc.want)
			}
			for _, part := range []string{s, s[:20], s[20:]} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains the secret", err)
				}
			}
		})
	}
}

func TestTSIGKeyPrintsNoSecret(t *testing.T) {
	t.Parallel()
	k := &solver.TSIGKey{Name: "k1", Algorithm: "hmac-sha256", Secret: testSecret}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{k, *k} {
			if got := fmt.Sprintf(f, v); strings.Contains(got, testSecret) || !strings.Contains(got, "k1") {
				t.Errorf("Sprintf(%q, %T) = %q, want the name without the secret", f, v, got)
			}
		}
	}
	if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil {
		t.Fatal(err)
	}
}
