package pebble

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Pebble release the harness builds and runs.
const Version = "v2.10.3"

// modulePath is Pebble's module; its commands are cmd/pebble and
// cmd/pebble-challtestsrv.
const modulePath = "github.com/letsencrypt/pebble/v2"

var (
	buildMu      sync.Mutex
	builtDir     string
	buildElapsed time.Duration
)

// Build returns the paths of the pebble and pebble-challtestsrv binaries of
// Pebble Version, building them first with
//
//	GOBIN=<dir> go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3 \
//	    github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@v2.10.3
//
// when they are not in the per-user cache directory yet
// (os.UserCacheDir()/certvault-test/pebble-v2.10.3). The go command fetches
// the module through the module proxy (or the module cache); Pebble is not
// a requirement of certvault's go.mod. Concurrent test binaries each build
// into their own temporary directory and rename it into place, so the
// cache directory, when present, always holds both binaries; a losing
// builder throws its copy away. A cold build takes about 15 s, a cached
// one nothing.
func Build(t testing.TB) (pebble, challtestsrv string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtDir == "" {
		start := time.Now()
		dir, err := build()
		if err != nil {
			t.Fatalf("pebble: %v", err)
		}
		builtDir, buildElapsed = dir, time.Since(start)
	}
	return filepath.Join(builtDir, "pebble"), filepath.Join(builtDir, "pebble-challtestsrv")
}

// BuildDuration is how long this process's first Build took: the go
// install on a cold cache, a stat of the two binaries on a warm one. It is
// zero before Build.
func BuildDuration() time.Duration {
	buildMu.Lock()
	defer buildMu.Unlock()
	return buildElapsed
}

// CacheDir is the directory Build keeps the binaries in.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		// No $HOME nor $XDG_CACHE_HOME: fall back to a per-user
		// directory in the temporary directory.
		base = filepath.Join(os.TempDir(), fmt.Sprintf("certvault-cache-%d", os.Getuid()))
	}
	return filepath.Join(base, "certvault-test", "pebble-"+Version), nil
}

func build() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	if complete(dir) {
		return dir, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create the binary cache: %w", err)
	}
	if _, err := os.Stat(dir); err == nil {
		// A directory without both binaries is not one of ours (renames
		// are atomic): move it out of the way, then build again.
		junk := fmt.Sprintf("%s.broken-%d", dir, time.Now().UnixNano())
		if err := os.Rename(dir, junk); err == nil {
			os.RemoveAll(junk)
		}
	}
	tmp, err := os.MkdirTemp(parent, "pebble-"+Version+".tmp-")
	if err != nil {
		return "", fmt.Errorf("create the binary cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed

	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build Pebble: %w", err)
	}
	cmd := exec.Command(gobin, "install",
		modulePath+"/cmd/pebble@"+Version,
		modulePath+"/cmd/pebble-challtestsrv@"+Version)
	// Run outside any module so our go.mod and go.work play no part, and
	// drop GOFLAGS (a -race or -mod from the test environment must not
	// reach this build).
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off", "GO111MODULE=on")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install pebble %s: %v\n%s", Version, err, out)
	}
	if !complete(tmp) {
		return "", fmt.Errorf("go install pebble %s left no binaries in %s", Version, tmp)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test binary got there first: use its binaries.
		if complete(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("move the Pebble binaries into %s: %w", dir, err)
	}
	return dir, nil
}

// complete reports whether dir holds both executables.
func complete(dir string) bool {
	for _, name := range []string{"pebble", "pebble-challtestsrv"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// ExecSolver returns the absolute path of exec-solver.sh, the lego "exec"
// DNS solver for pebble-challtestsrv that sits beside this file (see the
// script for its usage). Give it Server.ExecSolverEnv as its environment.
// The script needs curl (make deps installs it); ExecSolver fails the test
// when curl is missing. When the checkout lost the script's executable
// bit, a 0755 copy in a temporary directory is returned instead.
func ExecSolver(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("pebble: exec-solver.sh needs curl (make deps installs it): %v", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "test", "pebble", "exec-solver.sh")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("pebble: %v", err)
	}
	if fi.Mode().Perm()&0o111 != 0 {
		return path
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "exec-solver.sh")
	if err := os.WriteFile(cp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return cp
}

// moduleRoot is the directory of certvault's go.mod, found from this
// source file's location.
func moduleRoot() (string, error) {
	dir, err := sourceDir()
	if err != nil {
		return "", err
	}
	root := filepath.Clean(filepath.Join(dir, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("pebble: no go.mod in %s: the harness needs certvault's source tree", root)
	}
	return root, nil
}

// tail is the end of s, at most n bytes, cut at a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "…\n" + s
}
