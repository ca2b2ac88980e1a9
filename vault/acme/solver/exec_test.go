package solver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/acme/solver"
)

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecArguments(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "args")
	hook := script(t, dir, "hook.sh", `for a in "$@"; do printf '%s\n' "$a"; done >> "$RECORD"
printf 'FOO=%s VAULT_SECRET=%s PATH=%s\n' "$FOO" "${CERTVAULT_TEST_SECRET-unset}" "${PATH:+set}" >> "$RECORD"
`)
	t.Setenv("CERTVAULT_TEST_SECRET", "must-not-reach-the-hook")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	for _, tc := range []struct {
		name    string
		program string
	}{
		{"absolute path", hook},
		{"name on PATH", "hook.sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(record)
			e := &solver.Exec{Program: tc.program, Args: []string{"--config", "/etc/hook conf"}, Env: []string{"RECORD=" + record, "FOO=bar"}}
			ctx := ctxTimeout(t, 30*time.Second)
			if err := e.Present(ctx, "_acme-challenge.www.example.com", val1); err != nil {
				t.Fatalf("Present: %v", err)
			}
			if err := e.CleanUp(ctx, "_acme-challenge.www.example.com.", val1); err != nil {
				t.Fatalf("CleanUp: %v", err)
			}
			got, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Join([]string{
				"--config", "/etc/hook conf", "present", "_acme-challenge.www.example.com.", val1,
				"FOO=bar VAULT_SECRET=unset PATH=set",
				"--config", "/etc/hook conf", "cleanup", "_acme-challenge.www.example.com.", val1,
				"FOO=bar VAULT_SECRET=unset PATH=set",
			}, "\n") + "\n"
			if string(got) != want {
				t.Errorf("recorded arguments:\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestExecFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hook := script(t, dir, "fail.sh", `echo "looking up zone for $2"
echo "zone example.com is not managed by this hook" >&2
exit 3
`)
	err := (&solver.Exec{Program: hook}).Present(ctxTimeout(t, 30*time.Second), "_acme-challenge.example.com.", val1)
	want := hook + " present: exit status 3: zone example.com is not managed by this hook"
	if err == nil || err.Error() != "solver: "+want {
		t.Fatalf("Present: got %v, want %q", err, "solver: "+want)
	}
	var xe *solver.ExecError
	if !errors.As(err, &xe) || xe.ExitCode != 3 || !errors.Is(err, solver.ErrProgram) {
		t.Fatalf("got %#v, want an *ExecError with ExitCode 3 wrapping ErrProgram", err)
	}
	if got := string(xe.Output); !strings.Contains(got, "looking up zone for _acme-challenge.example.com.\n") {
		t.Errorf("Output: got %q, want both streams", got)
	}
	if solver.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = true, want false", err)
	}
}

func TestExecOutputBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hook := script(t, dir, "loud.sh", `i=0
while [ $i -lt 2000 ]; do echo "line $i of noise, padded to be long enough"; i=$((i+1)); done
echo "the last word" >&2
exit 1
`)
	err := (&solver.Exec{Program: hook}).CleanUp(ctxTimeout(t, 30*time.Second), "x.example.com", val1)
	var xe *solver.ExecError
	if !errors.As(err, &xe) {
		t.Fatalf("CleanUp: got %v, want an *ExecError", err)
	}
	if len(xe.Output) > 4096 {
		t.Errorf("Output: got %d bytes, want at most 4096", len(xe.Output))
	}
	if !strings.HasSuffix(err.Error(), "cleanup: exit status 1: the last word") {
		t.Errorf("error %q does not end with the action, status and last line", err)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	hook := script(t, dir, "slow.sh", `sleep 60 &
echo $! > "`+pidFile+`"
echo "waiting for the DNS API"
wait
`)
	start := time.Now()
	err := (&solver.Exec{Program: hook, Timeout: 300 * time.Millisecond}).Present(context.Background(), "x.example.com", val1)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "waiting for the DNS API") {
		t.Fatalf("Present: got %v, want a timeout error with the last output line", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Present returned after %v, want soon after the 300ms timeout", d)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The background sleep was in the program's process group: it must be
	// gone (or a zombie waiting for its reaper).
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for the program's child %d to be gone after the timeout: it still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (exists and is not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestExecCanceled(t *testing.T) {
	t.Parallel()
	hook := script(t, t.TempDir(), "slow.sh", "exec sleep 60\n")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := (&solver.Exec{Program: hook}).Present(ctx, "x.example.com", val1)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Present: got %v, want context.Canceled", err)
	}
}

func TestExecProgramPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ program, want string }{
		{"", "empty"},
		{"./hook.sh", "relative path"},
		{"hooks/dns.sh", "relative path"},
		{"certvault-no-such-hook", "certvault-no-such-hook"},
		{filepath.Join(dir, "missing"), "missing"},
		{notExec, "executable"},
	} {
		err := (&solver.Exec{Program: tc.program}).Present(context.Background(), "x.example.com", val1)
		if !errors.Is(err, solver.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Program %q: got %v, want ErrConfig mentioning %q", tc.program, err, tc.want)
		}
	}
}

func TestNone(t *testing.T) {
	t.Parallel()
	var s solver.Solver = solver.None{}
	if err := s.Present(context.Background(), "x.example.com.", val1); err != nil {
		t.Errorf("Present: %v", err)
	}
	if err := s.CleanUp(context.Background(), "x.example.com.", val1); err != nil {
		t.Errorf("CleanUp: %v", err)
	}
}
