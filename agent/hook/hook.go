// Package hook runs a binding's reload command, the way consul-template
// runs its commands: one command, started directly (no shell unless its
// argv names one), in a process group of its own, with stdin from
// /dev/null, a time limit, and the tail of its output kept for the log.
//
// When the time limit passes, or the caller's context is done, the whole
// process group gets SIGTERM and, if anything in it is still running after
// a grace period, SIGKILL; so a reload script that started other programs
// does not leave them behind. A command that exits on its own within its
// time limit is not reaped further: whatever it left running in the
// background (a daemon it started, say) is left alone.
//
// The package owns only the running of one command and the report of how
// it went. It does not decide when a command runs, whether to retry it,
// which variables to give it or what to do with the result: that is the
// caller's. It needs a Unix system (process groups); the agent is built
// for Linux.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	// DefaultGrace is the wait between SIGTERM and SIGKILL when
	// Command.Grace is not set.
	DefaultGrace = 5 * time.Second
	// OutputLimit is how much output a Result keeps: the last bytes.
	OutputLimit = 4 << 10
	// outputDrain is how long Run keeps reading output after the command
	// has exited, for processes it left in the background that still hold
	// its stdout or stderr open.
	outputDrain = time.Second
	// pollEvery is how often Run checks whether a terminated process group
	// is gone.
	pollEvery = 10 * time.Millisecond
)

// Command is one command to run.
type Command struct {
	// Argv is the program and its arguments. Argv[0] is an absolute path
	// or a name looked up in the agent's PATH; a relative path is refused,
	// since what it names would depend on the working directory.
	Argv []string
	// Env holds KEY=VALUE entries added to the agent's environment; an
	// entry replaces an agent variable of the same name. Which variables
	// (CERTVAULT_NAME, CERTVAULT_CERT_FILE, ...) is the caller's choice.
	Env []string
	// Timeout limits how long the command may run; then its process group
	// gets SIGTERM, and SIGKILL after Grace. Zero means no limit other than
	// the context's.
	Timeout time.Duration
	// Grace is the wait between SIGTERM and SIGKILL; zero means
	// DefaultGrace.
	Grace time.Duration
	// Dir is the working directory; "" means "/".
	Dir string
}

// Result says how a command went.
type Result struct {
	// ExitCode is the command's exit status, or -1 if it was killed by a
	// signal or was not started.
	ExitCode int
	// Output is the command's stdout and stderr, interleaved as written,
	// cut to the last OutputLimit bytes; invalid UTF-8 is replaced with
	// U+FFFD.
	Output string
	// Duration is how long the command ran, from its start until it
	// exited or was killed.
	Duration time.Duration
	// TimedOut is set when the command was stopped because its Timeout
	// passed or the context was done.
	TimedOut bool
	// Err is nil when the command exited 0 within its time limit;
	// otherwise it says what happened: "exited 1", "killed by signal
	// segmentation fault", "timed out after 30s and was killed",
	// "not started: ...". When the context stopped the command, Err wraps
	// the context's error.
	Err error
}

// Run runs c and waits until it has finished, or been stopped because
// c.Timeout passed or ctx was done (see the package documentation), and
// any output it wrote is read. It never panics on a bad Command: what was
// wrong is in Result.Err.
func Run(ctx context.Context, c Command) Result {
	cmd, err := prepare(c)
	if err != nil {
		return Result{ExitCode: -1, Err: fmt.Errorf("not started: %w", err)}
	}
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1, Err: fmt.Errorf("not started: %w", err)}
	}
	grace := c.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}

	// The output goes through a pipe of our own rather than one exec
	// makes, so that waiting for the process and reading its output are
	// separate: a background process holding the pipe open must not make
	// an exited command look as if it were still running.
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{ExitCode: -1, Err: fmt.Errorf("not started: create output pipe: %w", err)}
	}
	defer pr.Close()
	cmd.Stdout = pw
	cmd.Stderr = pw

	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return Result{ExitCode: -1, Err: fmt.Errorf("not started: %w", err)}
	}
	pgid := cmd.Process.Pid // Setpgid with Pgid 0: the group is the child's pid.

	out := &tail{max: OutputLimit}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _ = io.Copy(out, pr)
	}()
	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	var limit <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		limit = t.C
	}

	var (
		waitErr  error
		timedOut bool  // c.Timeout passed
		ctxErr   error // ctx was done
		killed   bool
	)
	select {
	case waitErr = <-waitDone:
	case <-limit:
		timedOut = true
	case <-ctx.Done():
		ctxErr = ctx.Err()
	}
	if timedOut || ctxErr != nil {
		waitErr, killed = terminate(pgid, grace, waitDone)
	}
	duration := time.Since(start)

	// Read what is left in the pipe; give up after a while if processes
	// left in the background keep it open.
	drain := time.NewTimer(outputDrain)
	select {
	case <-readDone:
	case <-drain.C:
		pr.Close() // unblocks the reader
		<-readDone
	}
	drain.Stop()

	res := Result{ExitCode: -1, Output: out.String(), Duration: duration}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.Err = describe(cmd.ProcessState, waitErr)
	how := "terminated"
	if killed {
		how = "killed"
	}
	switch {
	case timedOut:
		res.TimedOut = true
		res.Err = fmt.Errorf("timed out after %v and was %s", c.Timeout, how)
	case ctxErr != nil:
		res.TimedOut = true
		res.Err = fmt.Errorf("stopped after %v and was %s: %w", duration.Round(time.Millisecond), how, ctxErr)
	}
	return res
}

// prepare checks c and makes the exec.Cmd for it.
func prepare(c Command) (*exec.Cmd, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return nil, errors.New("empty command")
	}
	name := c.Argv[0]
	if !filepath.IsAbs(name) && strings.ContainsRune(name, filepath.Separator) {
		return nil, fmt.Errorf("command %q is a relative path; use an absolute path or a name in PATH", name)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("environment entry %q is not KEY=VALUE", kv)
		}
	}
	cmd := exec.Command(name, c.Argv[1:]...)
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	cmd.Env = append(os.Environ(), c.Env...) // later entries win
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Stdin stays nil: exec connects it to /dev/null.
	return cmd, nil
}

// terminate sends SIGTERM to process group pgid and waits for the group to
// be gone; after grace it sends SIGKILL. It returns the error from waiting
// for the group's leader, and whether SIGKILL had to be sent.
func terminate(pgid int, grace time.Duration, waitDone <-chan error) (waitErr error, killed bool) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	exited := false
	for {
		select {
		case waitErr = <-waitDone:
			exited = true
			waitDone = nil
			if groupGone(pgid) {
				return waitErr, false
			}
		case <-tick.C:
			// The leader counts until it is reaped, so this can only
			// succeed once it has been.
			if exited && groupGone(pgid) {
				return waitErr, false
			}
		case <-deadline.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			if !exited {
				waitErr = <-waitDone
			}
			return waitErr, true
		}
	}
}

// groupGone reports whether no process is left in process group pgid.
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// describe turns the outcome of cmd.Wait into Result.Err.
func describe(ps *os.ProcessState, waitErr error) error {
	if ps == nil {
		if waitErr == nil {
			return errors.New("no exit status")
		}
		return fmt.Errorf("wait for command: %w", waitErr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Errorf("killed by signal %v", ws.Signal())
	}
	if code := ps.ExitCode(); code != 0 {
		return fmt.Errorf("exited %d", code)
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return fmt.Errorf("wait for command: %w", waitErr)
	}
	return nil
}

// tail is an io.Writer that keeps the last max bytes written to it. It is
// written by one goroutine and read after that one is done.
type tail struct {
	buf       []byte
	max       int
	truncated bool
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		t.truncated = true
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		k := copy(t.buf, t.buf[len(t.buf)-t.max:])
		t.buf = t.buf[:k]
		t.truncated = true
	}
	return n, nil
}

// String returns the last max bytes as valid UTF-8: a rune cut by the
// truncation is dropped, invalid bytes become U+FFFD.
func (t *tail) String() string {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
		t.truncated = true
	}
	if t.truncated {
		b = trimRuneStart(b)
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for len(s) > t.max { // replacements can make it longer
		s = string(trimRuneStart([]byte(s[len(s)-t.max:])))
	}
	return s
}

// trimRuneStart drops the continuation bytes of a rune whose start was
// cut off (at most utf8.UTFMax-1 of them).
func trimRuneStart(b []byte) []byte {
	for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
		b = b[1:]
	}
	return b
}
