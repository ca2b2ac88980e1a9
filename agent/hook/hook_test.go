package hook

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestRunSuccessCapturesOutput(t *testing.T) {
	res := Run(context.Background(), Command{Argv: sh("echo out; echo err >&2"), Timeout: 10 * time.Second})
	if res.Err != nil || res.ExitCode != 0 || res.TimedOut {
		t.Fatalf("Run = %+v, want exit 0 and no error", res)
	}
	if res.Output != "out\nerr\n" {
		t.Errorf("Output = %q, want %q", res.Output, "out\nerr\n")
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", res.Duration)
	}
}

func TestRunExitCode(t *testing.T) {
	res := Run(context.Background(), Command{Argv: sh("echo failing; exit 3")})
	if res.ExitCode != 3 {
		t.Errorf("ExitCode = %d, want 3", res.ExitCode)
	}
	if res.Err == nil || res.Err.Error() != "exited 3" {
		t.Errorf("Err = %v, want \"exited 3\"", res.Err)
	}
	if res.TimedOut {
		t.Error("TimedOut is set")
	}
	if res.Output != "failing\n" {
		t.Errorf("Output = %q", res.Output)
	}
}

func TestRunKilledBySignal(t *testing.T) {
	res := Run(context.Background(), Command{Argv: sh("kill -KILL $$")})
	if res.ExitCode != -1 || res.Err == nil || !strings.Contains(res.Err.Error(), "killed by signal") {
		t.Errorf("Run = %+v, want ExitCode -1 and \"killed by signal\"", res)
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("CERTVAULT_TEST_INHERITED", "from-agent")
	t.Setenv("CERTVAULT_TEST_REPLACED", "old")
	res := Run(context.Background(), Command{
		Argv: sh(`printf '%s|%s|%s' "$CERTVAULT_NAME" "$CERTVAULT_TEST_INHERITED" "$CERTVAULT_TEST_REPLACED"`),
		Env:  []string{"CERTVAULT_NAME=web", "CERTVAULT_TEST_REPLACED=new"},
	})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if want := "web|from-agent|new"; res.Output != want {
		t.Errorf("Output = %q, want %q", res.Output, want)
	}
}

func TestRunBadEnvironment(t *testing.T) {
	res := Run(context.Background(), Command{Argv: []string{"true"}, Env: []string{"NOEQUALS"}})
	if res.ExitCode != -1 || res.Err == nil || !strings.HasPrefix(res.Err.Error(), "not started: ") {
		t.Errorf("Run = %+v, want not started", res)
	}
}

func TestRunDirAndStdin(t *testing.T) {
	res := Run(context.Background(), Command{Argv: sh("pwd; cat")})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Output != "/\n" {
		t.Errorf("default Dir: Output = %q, want \"/\\n\" (and cat reading /dev/null)", res.Output)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res = Run(context.Background(), Command{Argv: []string{"pwd"}, Dir: dir})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Output != dir+"\n" {
		t.Errorf("Output = %q, want %q", res.Output, dir+"\n")
	}
}

func TestRunNotFound(t *testing.T) {
	res := Run(context.Background(), Command{Argv: []string{"certvault-no-such-command"}})
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
	if res.Err == nil || !strings.HasPrefix(res.Err.Error(), "not started: ") || !strings.Contains(res.Err.Error(), "not found") {
		t.Errorf("Err = %v, want \"not started: ...not found...\"", res.Err)
	}
	if res.TimedOut {
		t.Error("TimedOut is set")
	}
}

func TestRunRefusesBadArgv(t *testing.T) {
	for _, argv := range [][]string{nil, {""}, {"./reload.sh"}, {"bin/reload"}} {
		res := Run(context.Background(), Command{Argv: argv})
		if res.ExitCode != -1 || res.Err == nil || !strings.HasPrefix(res.Err.Error(), "not started: ") {
			t.Errorf("Run(%q) = %+v, want not started", argv, res)
		}
	}
}

// TestRunTimeoutKillsGroup runs a command that ignores SIGTERM and has a
// child of its own; both must be gone after SIGKILL.
func TestRunTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	timeout, grace := 200*time.Millisecond, 200*time.Millisecond
	res := Run(context.Background(), Command{
		Argv:    sh(`trap "" TERM; sleep 30 & echo $! > "$PIDFILE"; wait`),
		Env:     []string{"PIDFILE=" + pidFile},
		Timeout: timeout,
		Grace:   grace,
	})
	if !res.TimedOut {
		t.Errorf("TimedOut is not set: %+v", res)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
	if res.Err == nil || res.Err.Error() != "timed out after 200ms and was killed" {
		t.Errorf("Err = %v, want \"timed out after 200ms and was killed\"", res.Err)
	}
	if res.Duration < timeout+grace {
		t.Errorf("Duration = %v, want at least Timeout+Grace = %v", res.Duration, timeout+grace)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the command did not write its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("bad pid %q", b)
	}
	waitGone(t, pid, 30*time.Second)
}

// waitGone polls until process pid no longer exists; a zombie counts as
// gone, since an orphan is reaped by whatever runs as init, which in a
// container may never do it.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) || isZombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still runs %v after Run returned", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestRunTimeoutTerminates(t *testing.T) {
	res := Run(context.Background(), Command{
		Argv:    []string{"sleep", "30"},
		Timeout: 100 * time.Millisecond,
		Grace:   20 * time.Second,
	})
	if !res.TimedOut || res.Err == nil || res.Err.Error() != "timed out after 100ms and was terminated" {
		t.Errorf("Run = %+v, want \"timed out after 100ms and was terminated\"", res)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
	if res.Duration >= 10*time.Second {
		t.Errorf("Duration = %v: Run waited for the grace period although the command had exited", res.Duration)
	}
}

func TestRunContextCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res := Run(ctx, Command{Argv: []string{"sleep", "30"}, Grace: 200 * time.Millisecond})
	if !res.TimedOut {
		t.Error("TimedOut is not set")
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("Err = %v, want it to wrap context.DeadlineExceeded", res.Err)
	}

	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	res = Run(canceled, Command{Argv: []string{"true"}})
	if res.ExitCode != -1 || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("Run with a canceled context = %+v, want not started", res)
	}
}

// TestRunBackgroundChildHoldsOutput checks that a command that exits 0
// while a process it started in the background keeps its output open is
// reported as soon as output stops being worth waiting for, and that the
// background process is left alone.
func TestRunBackgroundChildHoldsOutput(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	res := Run(context.Background(), Command{
		Argv:    sh(`sleep 30 & echo $! > "$PIDFILE"; echo done`),
		Env:     []string{"PIDFILE=" + pidFile},
		Timeout: 20 * time.Second,
	})
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("bad pid %q", b)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if res.Err != nil || res.ExitCode != 0 || res.TimedOut {
		t.Fatalf("Run = %+v, want exit 0", res)
	}
	if res.Output != "done\n" {
		t.Errorf("Output = %q", res.Output)
	}
	if res.Duration >= 10*time.Second {
		t.Errorf("Duration = %v, want the command's own run time", res.Duration)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("background process %d was not left alone: %v", pid, err)
	}
}

func TestRunOutputTruncated(t *testing.T) {
	// 10000 'a', then END.
	res := Run(context.Background(), Command{Argv: sh(`head -c 10000 /dev/zero | tr '\000' a; printf END`)})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Output) != OutputLimit {
		t.Errorf("len(Output) = %d, want %d", len(res.Output), OutputLimit)
	}
	if !strings.HasSuffix(res.Output, "aaaEND") {
		t.Errorf("Output ends %q, want the last bytes", res.Output[len(res.Output)-10:])
	}

	// 3000 two-byte runes then END: the cut falls inside a rune.
	res = Run(context.Background(), Command{Argv: sh(`i=0; while [ $i -lt 3000 ]; do printf '\303\251'; i=$((i+1)); done; printf END`)})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if !utf8.ValidString(res.Output) {
		t.Error("Output is not valid UTF-8")
	}
	if want := strings.Repeat("é", (OutputLimit-3)/2) + "END"; res.Output != want {
		t.Errorf("Output = %d bytes, want %d bytes of é then END", len(res.Output), len(want))
	}
}

func TestRunOutputInvalidUTF8(t *testing.T) {
	res := Run(context.Background(), Command{Argv: sh(`printf 'a\377b'`)})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Output != "a\uFFFDb" {
		t.Errorf("Output = %q, want %q", res.Output, "a\uFFFDb")
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	for _, s := range []string{"abc", "defgh", "ij", strings.Repeat("x", 20), "yz"} {
		if _, err := tl.Write([]byte(s)); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	}
	if got := tl.String(); got != "xxxxxxyz" {
		t.Errorf("String = %q, want %q", got, "xxxxxxyz")
	}
	tl = &tail{max: 8}
	if _, err := tl.Write([]byte("0123")); err != nil {
		t.Fatalf("write %q: %v", "0123", err)
	}
	if got := tl.String(); got != "0123" {
		t.Errorf("String = %q", got)
	}
	// Replacements that would make the result longer than max.
	tl = &tail{max: 4}
	if _, err := tl.Write([]byte("a\xffb\xff")); err != nil {
		t.Fatalf("write %q: %v", "a\xffb\xff", err)
	}
	if got := tl.String(); len(got) > 4 || !utf8.ValidString(got) {
		t.Errorf("String = %q, want at most 4 bytes of valid UTF-8", got)
	}
}
