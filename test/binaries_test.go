package test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// versionLine is what every binary prints for --version.
var versionLine = regexp.MustCompile(`^(certvaultd|certvault|certvault-agent) (\S+) \(commit (\S+), (go\S+)\)\n$`)

// checkVersion runs bin --version and checks the line names the binary,
// the version and commit wanted (any when empty) and this test's Go.
func checkVersion(t *testing.T, bin, wantVersion, wantCommit string) {
	t.Helper()
	name := filepath.Base(bin)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", name, err, out)
	}
	m := versionLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("%s --version: got %q, want %q", name, out, name+" VERSION (commit COMMIT, GOVERSION)\n")
	}
	if m[1] != name {
		t.Errorf("%s --version: names %q", name, m[1])
	}
	if wantVersion != "" && m[2] != wantVersion {
		t.Errorf("%s --version: version %q, want %q", name, m[2], wantVersion)
	}
	if wantCommit != "" && m[3] != wantCommit {
		t.Errorf("%s --version: commit %q, want %q", name, m[3], wantCommit)
	}
	if m[4] != runtime.Version() {
		t.Errorf("%s --version: Go %q, want %q", name, m[4], runtime.Version())
	}
}

// TestVersionFlag: the three binaries as the tests build them (no
// Makefile stamp) answer --version with "dev", a commit and the Go version.
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	daemon, cli := testcluster.Binaries(t)
	for _, bin := range []string{daemon, cli, testcluster.AgentBinary(t)} {
		checkVersion(t, bin, "dev", "")
	}
}

// TestMakeBuildInstall runs make build and make install as a user would
// (into temporary directories) and checks that the three binaries are
// there, stamped with the Makefile's version and commit, and that the
// agent is static.
func TestMakeBuildInstall(t *testing.T) {
	t.Parallel()
	root := makeRepo(t)
	bin, prefix := t.TempDir(), t.TempDir()
	const version, commit = "v9.9.9-test", "0123456789abcdef"
	for _, target := range []string{"build", "install"} {
		cmd := exec.Command("make", "-C", root, target, "BIN="+bin, "PREFIX="+prefix, "VERSION="+version, "COMMIT="+commit)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	for _, dir := range []string{bin, filepath.Join(prefix, "bin")} {
		for _, name := range []string{"certvaultd", "certvault", "certvault-agent"} {
			path := filepath.Join(dir, name)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatalf("after make build and install: %v", err)
			}
			if st.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s: mode %v, want executable", path, st.Mode())
			}
			checkVersion(t, path, version, commit)
		}
	}
	f, err := elf.Open(filepath.Join(bin, "certvault-agent"))
	if err != nil {
		t.Fatalf("open the agent binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("certvault-agent from make build is dynamically linked, want static (CGO_ENABLED=0)")
		}
	}
}

// TestSingleNodeStartBanner starts the embedded single node as make run
// does, then restarts it: each time the banner comes only once /readyz
// answers 200, it carries the PATH export of the binary's directory next
// to the other exports, and raft logs no warning (a lone voter's
// heartbeat timeout is how it elects itself, not a problem).
func TestSingleNodeStartBanner(t *testing.T) {
	t.Parallel()
	daemon, _ := testcluster.Binaries(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "certvault-data")
	api := testcluster.FreeAddr(t)
	args := []string{"--data", data, "--listen", api, "--raft-listen", testcluster.FreeAddr(t)}

	for _, run := range []string{"first start", "restart"} {
		var stderr lockedBuffer
		cmd := exec.Command(daemon, args...)
		cmd.Dir = dir
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		lines, exited := startLines(t, cmd, run+": certvaultd")
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

		// The first export: on the old code it came before the keyring
		// was open and a leader elected.
		var banner []string
		deadline := time.After(90 * time.Second)
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: certvaultd closed stdout before its banner; stdout %q, stderr:\n%s", run, banner, stderr.String())
				}
				banner = append(banner, l)
				if strings.Contains(l, "export CERTVAULT_ADDR=") {
					break wait
				}
			case <-deadline:
				t.Fatalf("%s: no banner with export CERTVAULT_ADDR within 90s; stdout %q, stderr:\n%s", run, banner, stderr.String())
			}
		}
		code, body, err := readyz(filepath.Join(data, "ca.pem"), "https://"+api+"/readyz")
		if err != nil {
			t.Fatalf("%s: GET /readyz right after the banner: %v", run, err)
		}
		if code != http.StatusOK {
			t.Errorf("%s: GET /readyz right after the banner: got %d %s, want 200 (the banner must wait for readiness)", run, code, body)
		}

		// The rest of the banner, up to the token export.
		for !strings.Contains(banner[len(banner)-1], "export CERTVAULT_TOKEN=") {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: stdout closed in the banner: %q", run, banner)
				}
				banner = append(banner, l)
			case <-deadline:
				t.Fatalf("%s: banner incomplete within 90s: %q", run, banner)
			}
		}
		wantPath := "export PATH=" + filepath.Dir(daemon) + ":$PATH"
		if !strings.Contains(strings.Join(banner, "\n"), wantPath) {
			t.Errorf("%s: banner %q lacks %q", run, banner, wantPath)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("%s: SIGTERM: %v", run, err)
		}
		go func() {
			for range lines { // drain, so that the process never blocks on stdout
			}
		}()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("%s: certvaultd exit after SIGTERM: %v\n%s", run, err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: certvaultd still running 60s after SIGTERM; stderr:\n%s", run, stderr.String())
		}
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]") {
				t.Errorf("%s: raft logged on a single node: %s", run, l)
			}
		}
	}
}

// readyz returns the status and body of GET url, trusting the CA in caFile.
func readyz(caFile, url string) (int, string, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return 0, "", fmt.Errorf("read the vault CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return 0, "", errors.New("read the vault CA: no certificate in " + caFile)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(url)
	if err != nil {
		return 0, "", fmt.Errorf("get readyz: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("read readyz: %w", err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// startLines starts cmd (what names it in a failure) and returns its
// standard output line by line, and its exit once the output has ended.
func startLines(t *testing.T, cmd *exec.Cmd, what string) (<-chan string, <-chan error) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: stdout: %v", what, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	lines := make(chan string, 64)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	return lines, exited
}

// makeRepo returns the repository's directory for a test that runs make
// in it, skipping the test where make is not installed.
func makeRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("repository directory: %v", err)
	}
	return root
}
