package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
)

// cliEnv runs the CLI with the environment env (KEY=VALUE, replacing
// the CERTVAULT_ variables the cluster's CLI helper sets) and returns
// stdout, stderr and the exit code.
func cliEnv(t *testing.T, c *testcluster.Cluster, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(c.CLIBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTVAULT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("run certvault: %v", err)
	}
	return out.String(), errOut.String(), 0
}

// selfSigned writes a PEM file with a key and a self-signed certificate
// whose serial is serial, and returns its path and the certificate.
func selfSigned(t *testing.T, dir, name string, serial *big.Int) (string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name + ".example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	path := filepath.Join(dir, name+"-key-and-cert.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path, cert
}

// opensslSerial returns what `openssl x509 -noout -serial` prints for the
// PEM certificate in path, without the "serial=".
func opensslSerial(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("openssl", "x509", "-noout", "-serial", "-in", path).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -serial -in %s: %v\n%s", path, err, out)
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "serial=")
	if !ok {
		t.Fatalf("openssl x509 -serial: %q has no serial=", out)
	}
	return s
}

// TestNewcomerMessages runs, against a real vault, the messages and
// outputs a newcomer acts on (issue 15, item 4): the address once and
// what to do when the vault cannot be reached or is not trusted, an
// empty EAB key refused before anything is stored (CLI and API), an empty
// contact list, what download and --csr-out wrote, a join command ready
// to paste, serials as openssl prints them, and a snapshot restore that
// asks first and says what it restored.
func TestNewcomerMessages(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	node := c.Nodes[0]
	dir := t.TempDir()
	ctx := context.Background()
	cl := c.Client(node)

	t.Run("unreachable and untrusted", func(t *testing.T) {
		dead := "https://" + testcluster.FreeAddr(t)
		_, stderr, code := cliEnv(t, c, []string{"CERTVAULT_ADDR=" + dead, "CERTVAULT_TOKEN=" + c.Token, "CERTVAULT_CACERT=" + c.CACert}, "cert", "list")
		if want := "certvault: nothing answers at " + dead + ": is certvaultd running?\n"; code != 1 || stderr != want {
			t.Errorf("cert list with nothing at %s: exit %d, stderr %q; want exit 1 and %q", dead, code, stderr, want)
		}
		_, stderr, code = cliEnv(t, c, []string{"CERTVAULT_ADDR=" + node.URL(), "CERTVAULT_TOKEN=" + c.Token}, "cert", "list")
		want := "certvault: the vault's certificate is not trusted: set CERTVAULT_CACERT to its ca.pem (" + node.URL() + ": certificate signed by unknown authority \"CN=certvault CA "
		if code != 1 || !strings.HasPrefix(stderr, want) || strings.Count(stderr, node.URL()) != 1 {
			t.Errorf("cert list without CERTVAULT_CACERT: exit %d, stderr %q; want exit 1 and a line starting %q naming the address once", code, stderr, want)
		}
	})

	t.Run("empty EAB key", func(t *testing.T) {
		keyFile := filepath.Join(dir, "digicert.key")
		if err := os.WriteFile(keyFile, []byte(" \n\t\n"), 0o600); err != nil {
			t.Fatalf("write key file: %v", err)
		}
		_, stderr, code := c.CLI("issuer", "set", "eab-empty", "--provider", "acme", "--directory-url", "https://acme.example/directory",
			"--account-id", "kid-1", "--api-key-file", keyFile)
		if code != 1 || !strings.Contains(stderr, "--api-key-file "+keyFile+" is empty") || !strings.Contains(stderr, "EAB HMAC key") {
			t.Errorf("issuer set with a blank --api-key-file: exit %d, stderr %q; want exit 1 naming the file and saying to put the EAB HMAC key in it", code, stderr)
		}
		for _, pwd := range []string{"", " \n\t"} {
			body := map[string]any{"provider": "acme", "acme": map[string]any{"directory_url": "https://acme.example/directory"},
				"credentials": map[string]any{"account_id": "kid-1", "pwd": pwd}}
			var ae *client.Error
			err := cl.Do(ctx, http.MethodPut, "/certificates/issuers/eab-empty", body, nil)
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "BadParameter" || !strings.Contains(ae.Message, "credentials.pwd is empty") {
				t.Errorf("PUT issuer with pwd %q: got %v; want 400 BadParameter naming credentials.pwd", pwd, err)
			}
		}
		var ae *client.Error
		if err := cl.Do(ctx, http.MethodGet, "/certificates/issuers/eab-empty", nil, nil); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			t.Errorf("GET the refused issuer: got %v; want 404 (nothing stored)", err)
		}
		// An update that blanks the key of an existing issuer is refused too.
		good := map[string]any{"provider": "acme", "acme": map[string]any{"directory_url": "https://acme.example/directory"},
			"credentials": map[string]any{"account_id": "kid-1", "pwd": "c2VjcmV0LWhtYWMta2V5"}}
		testcluster.KnownSecret("c2VjcmV0LWhtYWMta2V5")
		if err := cl.Do(ctx, http.MethodPut, "/certificates/issuers/eab-good", good, nil); err != nil {
			t.Fatalf("PUT a valid EAB issuer: %v", err)
		}
		err := cl.Do(ctx, http.MethodPatch, "/certificates/issuers/eab-good", map[string]any{"credentials": map[string]any{"pwd": "  "}}, nil)
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "credentials.pwd is empty") {
			t.Errorf("PATCH issuer with a blank pwd: got %v; want 400 naming credentials.pwd", err)
		}
	})

	t.Run("empty contacts", func(t *testing.T) {
		for range 2 { // none ever set, then set and deleted
			stdout, stderr, code := c.CLI("contacts", "list")
			if code != 0 || !strings.HasPrefix(stdout, "no contacts set") {
				t.Errorf("contacts list with none: exit %d, stdout %q, stderr %q; want exit 0 and \"no contacts set\"", code, stdout, stderr)
			}
			stdout, stderr, code = c.CLI("contacts", "list", "-o", "json")
			var res struct{ Contacts []any }
			if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.Contacts == nil || len(res.Contacts) != 0 {
				t.Errorf("contacts list -o json with none: exit %d, stdout %q, stderr %q; want exit 0 and {\"contacts\": []}", code, stdout, stderr)
			}
			mustCLI(t, c, "contacts", "set", "pki@example.com")
			mustCLI(t, c, "contacts", "delete")
		}
	})

	// Two imported certificates with serials chosen so that the DER
	// integer starts with a zero nibble, and needs a zero sign byte.
	nibble, ok1 := new(big.Int).SetString("0A1B2C3D4E5F60718293A4B5C6D7E8F9", 16)
	highBit, ok2 := new(big.Int).SetString("8F0102030405060708090A0B0C0D0E0F", 16)
	if !ok1 || !ok2 {
		t.Fatal("the test's serial numbers are not hexadecimal")
	}
	webFile, webCert := selfSigned(t, dir, "web", nibble)
	web2File, _ := selfSigned(t, dir, "web2", highBit)
	mustCLI(t, c, "cert", "import", "web", "--file", webFile)
	mustCLI(t, c, "cert", "import", "web2", "--file", web2File)

	t.Run("download says what it wrote", func(t *testing.T) {
		var got struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(mustCLI(t, c, "cert", "get", "web", "-o", "json")), &got); err != nil {
			t.Fatalf("decode cert get: %v", err)
		}
		version := got.ID[strings.LastIndex(got.ID, "/")+1:]
		pemFile := filepath.Join(dir, "web.pem")
		stdout, stderr, code := c.CLI("cert", "download", "web", "--out", pemFile)
		if want := fmt.Sprintf("wrote certificate web (version %s, 1 certificate, PEM) to %s\n", version, pemFile); code != 0 || stdout != want {
			t.Errorf("cert download --out: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
		}
		wantPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: webCert.Raw})
		if data, err := os.ReadFile(pemFile); err != nil || !bytes.Equal(data, wantPEM) {
			t.Errorf("web.pem: %q (%v); want the imported certificate", data, err)
		}
		derFile := filepath.Join(dir, "web.der")
		stdout, stderr, code = c.CLI("cert", "download", "web", "--format", "der", "--out", derFile)
		if want := fmt.Sprintf("wrote certificate web (version %s, 1 certificate, DER) to %s\n", version, derFile); code != 0 || stdout != want {
			t.Errorf("cert download --format der: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
		}
		stdout, stderr, code = c.CLI("cert", "download", "web", "--out", "-")
		if code != 0 || stdout != string(wantPEM) || stderr != "" {
			t.Errorf("cert download --out -: exit %d, stdout %q, stderr %q; want only the PEM on stdout", code, stdout, stderr)
		}

		policy := filepath.Join(dir, "api-policy.json")
		mustCLI(t, c, "cert", "policy", "new", "--subject", "CN=api", "--issuer", "Unknown", "--kty", "EC", "--out", policy)
		mustCLI(t, c, "cert", "create", "api", "--policy", policy)
		csrFile := filepath.Join(dir, "api.csr")
		stdout, stderr, code = c.CLI("cert", "operation", "api", "--csr-out", csrFile)
		if want := "wrote the CSR of api (PEM) to " + csrFile + "\n"; code != 0 || !strings.HasSuffix(stdout, want) {
			t.Errorf("cert operation --csr-out: exit %d, stdout %q, stderr %q; want it to end with %q", code, stdout, stderr, want)
		}
		data, err := os.ReadFile(csrFile)
		if b, _ := pem.Decode(data); err != nil || b == nil || b.Type != "CERTIFICATE REQUEST" {
			t.Errorf("api.csr: %q (%v); want a PEM CSR", data, err)
		}
		stdout, stderr, code = c.CLI("cert", "operation", "api", "--csr-out", csrFile, "-o", "json")
		var op map[string]any
		if code != 0 || json.Unmarshal([]byte(stdout), &op) != nil || stderr != "wrote the CSR of api (PEM) to "+csrFile+"\n" {
			t.Errorf("cert operation --csr-out -o json: exit %d, stdout %q, stderr %q; want JSON on stdout and the confirmation on stderr", code, stdout, stderr)
		}
	})

	t.Run("serials as openssl prints them", func(t *testing.T) {
		var rep struct {
			Certificates []struct {
				Name     string
				Versions []struct{ Serial string }
			}
		}
		if err := json.Unmarshal([]byte(mustCLI(t, c, "report", "--format", "json")), &rep); err != nil {
			t.Fatalf("decode report: %v", err)
		}
		for _, name := range []string{"web", "web2"} {
			pemFile := filepath.Join(dir, name+"-serial.pem")
			mustCLI(t, c, "cert", "download", name, "--out", pemFile)
			want := opensslSerial(t, pemFile)
			m := regexp.MustCompile(`(?m)^serial:\s+(\S+)$`).FindStringSubmatch(mustCLI(t, c, "cert", "get", name))
			if m == nil || m[1] != want {
				t.Errorf("cert get %s: serial %v; openssl prints %s", name, m, want)
			}
			var inReport []string
			for _, rc := range rep.Certificates {
				if rc.Name == name {
					for _, v := range rc.Versions {
						inReport = append(inReport, v.Serial)
					}
				}
			}
			if len(inReport) != 1 || inReport[0] != want {
				t.Errorf("report: serials of %s %q; openssl prints %s", name, inReport, want)
			}
		}
		if want := "0A1B2C3D4E5F60718293A4B5C6D7E8F9"; opensslSerial(t, filepath.Join(dir, "web-serial.pem")) != want {
			t.Errorf("openssl does not print the crafted serial as %s: the comparison above proves less than it should", want)
		}
	})

	t.Run("join-token prints a command that joins", func(t *testing.T) {
		stdout := mustCLI(t, c, "agent", "join-token", "create", "--group", "web")
		var line string
		for _, l := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "certvault-agent join ") {
				line = strings.TrimSpace(l)
			}
		}
		if line == "" || !regexp.MustCompile(`--token cva\.[0-9a-f]+\.\S+ `).MatchString(line) || !strings.Contains(line, "--ca-fingerprint sha256:") || !strings.Contains(line, "--vault "+node.URL()+" ") {
			t.Fatalf("join-token create printed no whole join command with the token, fingerprint and vault:\n%s", stdout)
		}
		agentBin := testcluster.AgentBinary(t)
		state := filepath.Join(t.TempDir(), "agent-state")
		// The command as printed; only the state directory is moved
		// (a later --state-dir wins) since the test is not root.
		cmd := exec.Command("sh", "-c", line+" --state-dir "+state)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(agentBin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run the printed command %q: %v\n%s", line, err, out)
		}
		var id struct {
			AgentID string `json:"agent_id"`
		}
		data, err := os.ReadFile(filepath.Join(state, "identity.json"))
		if err != nil || json.Unmarshal(data, &id) != nil || id.AgentID == "" {
			t.Fatalf("identity.json after the printed join: %q (%v)", data, err)
		}
		m := regexp.MustCompile(`(?m)^Identity serial:\s+(\S+)$`).FindStringSubmatch(mustCLI(t, c, "agent", "status", id.AgentID))
		if want := opensslSerial(t, filepath.Join(state, "cert.pem")); m == nil || m[1] != want {
			t.Errorf("agent status: identity serial %v; openssl prints %s", m, want)
		}
	})

	t.Run("snapshot restore asks and says what it restored", func(t *testing.T) {
		mustCLI(t, c, "secret", "set", "db-pass", "--value", "hunter2-not-secret")
		snap := filepath.Join(dir, "vault.snap")
		before := time.Now().Add(-time.Second)
		mustCLI(t, c, "cluster", "snapshot", "save", snap)
		after := time.Now()
		// What the vault holds at this point: web and web2 (api has only
		// a pending operation), db-pass, eab-good and the agent.
		const certs, secrets, issuers = 2, 1, 1
		mustCLI(t, c, "cert", "delete", "web2") // changed after the snapshot: the restore brings it back

		stdout, stderr, code := c.CLI("cluster", "snapshot", "restore", snap)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || !strings.Contains(stderr, "pass --yes") || len(lines) != 2 || stdout != "" {
			t.Errorf("restore without a terminal or --yes: exit %d, stdout %q, stderr %q; want exit 2, a message saying to pass --yes and the --help hint", code, stdout, stderr)
		}
		if out := mustCLI(t, c, "cert", "list-deleted"); !strings.Contains(out, "web2") {
			t.Fatalf("the refused restore changed the state: web2 is no longer deleted:\n%s", out)
		}
		// On a terminal (script(1) gives the CLI a real one) it asks; any
		// answer but yes restores nothing.
		out, code := onTerminal(t, c, "no\n", "cluster", "snapshot", "restore", snap)
		if code != 1 || !strings.Contains(out, "Type yes to restore:") || !strings.Contains(out, "not restored") {
			t.Errorf("restore on a terminal answered no: exit %d, output %q; want the question, \"not restored\" and exit 1", code, out)
		}
		if out := mustCLI(t, c, "cert", "list-deleted"); !strings.Contains(out, "web2") {
			t.Fatalf("the restore answered no changed the state: web2 is no longer deleted:\n%s", out)
		}

		stdout, stderr, code = c.CLI("cluster", "snapshot", "restore", snap, "--yes", "-o", "json")
		var res struct {
			Restored      bool       `json:"restored"`
			SnapshotIndex uint64     `json:"snapshot_index"`
			SnapshotTime  *time.Time `json:"snapshot_time"`
			Objects       struct {
				Certificates, Secrets, Keys, Deleted, Issuers, Agents int
			} `json:"objects"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil {
			t.Fatalf("restore --yes -o json: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		o := res.Objects
		if !res.Restored || res.SnapshotIndex == 0 || res.SnapshotTime == nil || res.SnapshotTime.Before(before) || res.SnapshotTime.After(after) ||
			o.Certificates != certs || o.Secrets != secrets || o.Keys != 0 || o.Deleted != 0 || o.Issuers != issuers || o.Agents != 1 {
			t.Errorf("restore answer %s; want restored, an index, a time in [%v, %v], %d certificates, %d secrets, 0 keys, 0 deleted, %d issuers, 1 agent",
				stdout, before, after, certs, secrets, issuers)
		}
		if out := mustCLI(t, c, "cert", "list"); !strings.Contains(out, "web2") {
			t.Errorf("after the restore web2 is not back:\n%s", out)
		}

		stdout, stderr, code = c.CLI("cluster", "snapshot", "restore", snap, "--yes")
		want := fmt.Sprintf("restored %s: snapshot index %d, taken %s\n  2 certificates, 1 secret, 0 keys, 0 deleted objects (recoverable), 1 issuer, 1 agent\n",
			snap, res.SnapshotIndex, res.SnapshotTime.UTC().Format(time.RFC3339))
		if code != 0 || stdout != want {
			t.Errorf("restore --yes: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
		}
		out, code = onTerminal(t, c, "yes\n", "cluster", "snapshot", "restore", snap)
		if code != 0 || !strings.Contains(out, "Type yes to restore:") || !strings.Contains(strings.ReplaceAll(out, "\r\n", "\n"), want) {
			t.Errorf("restore on a terminal answered yes: exit %d, output %q; want the question, then %q", code, out, want)
		}
	})
}

// onTerminal runs the CLI with a terminal as its standard input and
// output (through script(1)), typing input, and returns what the
// terminal showed and the exit code.
func onTerminal(t *testing.T, c *testcluster.Cluster, input string, args ...string) (string, int) {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script(1) (util-linux) is needed to give the CLI a terminal: %v", err)
	}
	cmd := exec.Command("script", "-qec", c.CLIBin+" "+strings.Join(args, " "), "/dev/null")
	cmd.Env = append(os.Environ(), "CERTVAULT_ADDR="+c.Nodes[0].URL(), "CERTVAULT_TOKEN="+c.Token, "CERTVAULT_CACERT="+c.CACert)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("run certvault under script: %v", err)
	}
	return string(out), 0
}
