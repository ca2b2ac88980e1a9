package install

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv tells the test binary, run by TestCrashDuringInstall, to be
// TestHelperInstall's child: "<dir>|<version>".
const helperEnv = "CERTVAULT_INSTALL_HELPER"

func crashTarget(dir string) Target {
	return Target{Dir: dir, Name: "www", UID: -1, GID: -1, Mode: 0o640}
}

// TestHelperInstall is the child of TestCrashDuringInstall: it says
// "ready" and installs one version, unless it is killed first.
func TestHelperInstall(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("the child process of TestCrashDuringInstall")
	}
	dir, version, _ := strings.Cut(spec, "|")
	os.Stdout.WriteString("ready\n")
	if _, err := Install(crashTarget(dir), version, testFiles(version)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(0)
}

// TestCrashDuringInstall SIGKILLs an Install of version N+1 over N at a
// random point, many times. After each kill every user-visible file must
// hold one version, N or N+1, and the next Install must succeed and leave
// nothing behind.
func TestCrashDuringInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 processes")
	}
	tg := crashTarget(filepath.Join(t.TempDir(), "tls"))
	names := []string{"cert.pem", "chain.pem", "key.pem"}
	// Kill within about the time an Install takes here, at most 5 ms.
	var took time.Duration
	for _, v := range []string{"w0", "w1", "v0"} {
		start := time.Now()
		mustInstall(t, tg, v, testFiles(v))
		took = time.Since(start)
	}
	maxDelay := min(5*time.Millisecond, max(2*took, 500*time.Microsecond))

	// A fixed number of kills, however long they take: a busy machine
	// makes each child slower, not the property weaker.
	const iterations = 50
	var seenOld, seenNew, dirty, finished int
	prev := "v0"
	i := 1
	for ; i <= iterations; i++ {
		next := fmt.Sprintf("v%d", i)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInstall$")
		cmd.Env = append(os.Environ(), helperEnv+"="+tg.Dir+"|"+next)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start: %q, %v, %s", line, err, stderr.String())
		}
		time.Sleep(time.Duration(rand.Int64N(int64(maxDelay))))
		cmd.Process.Kill()
		err = cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
			finished++
		case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
		default:
			t.Fatalf("child %s: %v: %s", next, err, stderr.String())
		}

		// What a reader sees now: one version, wholly.
		seen := map[string]string{}
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join(tg.Dir, n))
			if err != nil {
				t.Fatalf("after kill %d: read %s: %v", i, n, err)
			}
			if !bytes.Equal(data, testFiles(versionOf(data))[n]) {
				t.Fatalf("after kill %d: %s is torn", i, n)
			}
			seen[n] = versionOf(data)
		}
		v := seen[names[0]]
		for _, n := range names {
			if seen[n] != v {
				t.Fatalf("after kill %d: readers see mixed versions %v", i, seen)
			}
		}
		switch v {
		case prev:
			seenOld++
		case next:
			seenNew++
		default:
			t.Fatalf("after kill %d: readers see version %s, neither %s nor %s", i, v, prev, next)
		}
		if leftovers(t, tg) {
			dirty++
		}

		// The next Install works and cleans up.
		if _, err := Install(tg, next, testFiles(next)); err != nil {
			t.Fatalf("install after kill %d: %v", i, err)
		}
		assertVisible(t, tg, testFiles(next))
		if leftovers(t, tg) {
			t.Fatalf("install after kill %d left temporary files", i)
		}
		if dirs := versionDirs(t, tg); len(dirs) > keep {
			t.Fatalf("after kill %d: %d version directories: %v", i, len(dirs), dirs)
		}
		prev = next
	}
	i--
	t.Logf("%d kills within %v: readers saw the old version %d times, the new %d; %d left temporary files; %d children finished first",
		i, maxDelay, seenOld, seenNew, dirty, finished)
}

// leftovers tells whether temporary entries are in the binding's state
// directory or in Dir.
func leftovers(t *testing.T, tg Target) bool {
	t.Helper()
	for _, d := range []string{tg.Dir, stateDirOf(tg)} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				return true
			}
		}
	}
	return false
}
