package test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// TestReadmeTour does what README.md tells a newcomer: make run, then the
// exports its banner prints, then the quick start's check and the CLI
// tour, every sh block in order. The vault runs on free ports with its
// data in a temporary directory that stands for the repository (bin/ and
// certvault-data/ in it); otherwise it is make run unchanged. It also
// checks that the README's export lines are the banner's, read from the
// repository's directory on the default port, so the two cannot drift
// apart.
func TestReadmeTour(t *testing.T) {
	t.Parallel()
	root := makeRepo(t)
	// The Makefile runs ./$(BIN)/certvaultd, so BIN is relative to the
	// repository.
	repo, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := filepath.Rel(root, filepath.Join(repo, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	api := testcluster.FreeAddr(t)
	args := "--data " + filepath.Join(repo, "certvault-data") + " --listen " + api + " --raft-listen " + testcluster.FreeAddr(t)

	var stderr lockedBuffer
	cmd := exec.Command("make", "-C", root, "run", "BIN="+bin, "ARGS="+args)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	lines, exited := startLines(t, cmd, "make run")
	t.Cleanup(func() {
		// make and certvaultd are one process group.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Logf("stop make run: %v", err)
		}
		go func() {
			for range lines { // drain, so that nothing blocks on stdout
			}
		}()
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			t.Errorf("make run still running 60s after SIGTERM; killing it")
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})

	// The banner: make builds first, so allow for a slow build.
	var out, exports []string
	deadline := time.After(5 * time.Minute)
	for len(exports) == 0 || !strings.HasPrefix(exports[len(exports)-1], "export CERTVAULT_TOKEN=") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended before its banner's export CERTVAULT_TOKEN line; stdout:\n%s\nstderr:\n%s", strings.Join(out, "\n"), stderr.String())
			}
			out = append(out, l)
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "export ") {
				exports = append(exports, l)
			}
		case <-deadline:
			t.Fatalf("no banner with export CERTVAULT_TOKEN from make run within 5 minutes; stdout:\n%s\nstderr:\n%s", strings.Join(out, "\n"), stderr.String())
		}
	}

	readme := filepath.Join(root, "README.md")
	// The README's exports are the banner's, from the repository's
	// directory on the default address.
	var documented []string
	for _, l := range docExports(t, readme) {
		documented = append(documented, strings.ReplaceAll(l, "$PWD/", ""))
	}
	var printed []string
	for _, l := range exports {
		l = strings.ReplaceAll(l, repo+"/", "")
		printed = append(printed, strings.ReplaceAll(l, "https://"+api, "https://127.0.0.1:8443"))
	}
	if !slices.Equal(documented, printed) {
		t.Errorf("README.md's export lines (with $PWD/ dropped):\n%s\nare not what make run prints (from the repository, on 127.0.0.1:8443):\n%s",
			strings.Join(documented, "\n"), strings.Join(printed, "\n"))
	}

	// After the exports, certvault is the one make run built (once,
	// it was "certvault: command not found").
	prefix := strings.Join(exports, "\n") + "\n"
	which := exec.Command("bash", "-c", prefix+"command -v certvault")
	which.Dir, which.Env = repo, docEnv()
	got, err := which.CombinedOutput()
	if want := filepath.Join(repo, "bin", "certvault"); err != nil || strings.TrimSpace(string(got)) != want {
		t.Fatalf("after the banner's exports, command -v certvault: %q (%v), want %s", got, err, want)
	}

	transcript := runDocBlocks(t, readme, shBlocks(t, readme), repo, docEnv(), prefix)
	if !regexp.MustCompile(`(?m)^certvault \S+ \(commit \S+, go\S+\)$`).MatchString(transcript) {
		t.Errorf("the README's transcript lacks certvault --version's line:\n%s", transcript)
	}
	if !strings.Contains(transcript, `"ready":true`) {
		t.Errorf("the README's transcript lacks a ready /readyz:\n%s", transcript)
	}
}
