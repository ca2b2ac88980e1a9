package solver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Defaults of Exec.
const (
	// DefaultExecTimeout bounds one run of an Exec program when
	// Exec.Timeout is zero.
	DefaultExecTimeout = 2 * time.Minute
	// execKillGrace is how long a program's process group has between
	// SIGTERM and SIGKILL once the timeout or the context has ended.
	execKillGrace = 5 * time.Second
	// execOutputMax is how much of the end of a program's combined output
	// is kept for the error.
	execOutputMax = 4 << 10
)

// Exec runs an operator's program as `PROGRAM present FQDN VALUE` and
// `PROGRAM cleanup FQDN VALUE` (lego's exec provider convention); fqdn ends
// with a dot ("_acme-challenge.www.example.com."). The program exits 0 once
// the record is published (or removed); any other exit is an *ExecError.
//
// The program runs in its own process group, in the directory /, with an
// empty standard input; when Timeout or the caller's context ends, the
// group gets SIGTERM and, 5 s later, SIGKILL. Its stdout and stderr are
// combined and the last 4 KiB are kept for the error, so a program should
// not print secrets.
//
// The zero value is not usable: Program is required. An Exec is not changed
// by its methods and is safe for concurrent use (each call runs the program
// once).
type Exec struct {
	// Program is the program to run: an absolute path, or a bare name
	// looked up in the vault's PATH. Relative paths ("./hook") are
	// refused, since they depend on the vault's working directory.
	Program string
	// Args are optional extra arguments put before the action, e.g.
	// ["--config", "/etc/dns-hook.conf"] runs
	// `PROGRAM --config /etc/dns-hook.conf present FQDN VALUE`.
	Args []string
	// Env is the program's environment, as KEY=VALUE entries. The vault's
	// own environment is not passed on (it may hold secrets); PATH is
	// added from the vault's environment when Env sets none.
	Env []string
	// Timeout bounds one run; zero means DefaultExecTimeout (2 minutes).
	Timeout time.Duration
}

// ExecError is a run of an Exec program that did not exit 0. Its message
// names the program, the action, the exit status (or the signal or timeout)
// and the last line of the program's output.
type ExecError struct {
	// Program is the resolved path of the program.
	Program string
	// Action is "present" or "cleanup".
	Action string
	// ExitCode is the exit status, or -1 when the program was killed by a
	// signal or did not start.
	ExitCode int
	// Output is the end (at most 4 KiB) of the combined stdout and stderr.
	Output []byte
	// Err is the cause: an *exec.ExitError, or the context's error when the
	// timeout or the caller's context ended the run.
	Err error
}

// Error implements error.
func (e *ExecError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "solver: %s %s: ", e.Program, e.Action)
	var exitErr *exec.ExitError
	switch {
	case errors.Is(e.Err, context.DeadlineExceeded):
		b.WriteString("timed out and was killed (raise Exec.Timeout, or the caller's deadline, or make the program faster)")
	case errors.Is(e.Err, context.Canceled):
		b.WriteString("canceled and was killed")
	case errors.As(e.Err, &exitErr) && e.ExitCode >= 0:
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	default:
		b.WriteString(e.Err.Error())
	}
	if line := lastLine(e.Output); line != "" {
		fmt.Fprintf(&b, ": %s", line)
	} else {
		b.WriteString(" (no output)")
	}
	return b.String()
}

// Unwrap returns ErrProgram and the cause, so errors.Is finds both, and
// context.DeadlineExceeded for a timeout.
func (e *ExecError) Unwrap() []error { return []error{ErrProgram, e.Err} }

// Present runs `PROGRAM [ARGS...] present FQDN VALUE`.
func (e *Exec) Present(ctx context.Context, fqdn, value string) error {
	return e.run(ctx, "present", fqdn, value)
}

// CleanUp runs `PROGRAM [ARGS...] cleanup FQDN VALUE`.
func (e *Exec) CleanUp(ctx context.Context, fqdn, value string) error {
	return e.run(ctx, "cleanup", fqdn, value)
}

func (e *Exec) run(ctx context.Context, action, fqdn, value string) error {
	path, err := e.programPath()
	if err != nil {
		return err
	}
	if fqdn == "" || value == "" {
		return fmt.Errorf("%w: %s needs a name and a value, got name %q value %q", ErrConfig, action, fqdn, value)
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	args := append(append(append([]string(nil), e.Args...), action), dns.Fqdn(fqdn), value)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = e.environ()
	cmd.Dir = "/"
	out := &tailBuffer{max: execOutputMax}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = execKillGrace

	err = cmd.Run()
	if cmd.Process != nil && ctx.Err() != nil {
		// Whatever of the group survived SIGTERM, or kept the output
		// open after the leader exited.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err == nil {
		return nil
	}
	xe := &ExecError{Program: path, Action: action, ExitCode: -1, Output: out.Bytes(), Err: err}
	if ctx.Err() != nil {
		xe.Err = ctx.Err()
	} else if cmd.ProcessState != nil {
		xe.ExitCode = cmd.ProcessState.ExitCode()
	}
	return xe
}

// programPath resolves Program: absolute, or a bare name on the vault's
// PATH.
func (e *Exec) programPath() (string, error) {
	p := e.Program
	switch {
	case p == "":
		return "", fmt.Errorf("%w: Exec.Program is empty: set it to the absolute path of the DNS hook program", ErrConfig)
	case !filepath.IsAbs(p) && strings.ContainsRune(p, '/'):
		return "", fmt.Errorf("%w: Exec.Program %q is a relative path: give an absolute path or a bare name found on PATH", ErrConfig, p)
	}
	path, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("%w: find Exec.Program %q (it must exist and be executable, as an absolute path or on PATH): %w", ErrConfig, p, err)
	}
	if !filepath.IsAbs(path) {
		// A PATH entry such as "." found it: refuse, as for "./hook".
		return "", fmt.Errorf("%w: Exec.Program %q was found in a relative PATH entry (%s): give an absolute path", ErrConfig, p, path)
	}
	return path, nil
}

// environ is Env plus the vault's PATH when Env has none.
func (e *Exec) environ() []string {
	env := append([]string(nil), e.Env...)
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return env
		}
	}
	if p, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+p)
	}
	return env
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

// Bytes returns a copy of the kept output.
func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf)
}

// lastLine is the last non-blank line of out, trimmed and cut to 300 bytes.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), " \t\r\n"), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return strings.ToValidUTF8(line, "?")
}
