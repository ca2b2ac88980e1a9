package pebble

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a process has between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// proc is one started process whose output goes to a log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // Wait's result, set before done is closed
}

// start starts bin with args and env, its stdout and stderr going to
// logPath (truncated first), and records it for Stop.
func (s *Server) start(name, bin string, args, env []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy once started
	fmt.Fprintf(f, "# %s %s\n", bin, quoteArgs(args))
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// failed returns an error once the process has exited, or has logged
// that a port it was given is taken (pebble-challtestsrv only logs a
// failed DNS listener and runs on). A taken port wraps errPortTaken.
func (p *proc) failed() error {
	exited := false
	select {
	case <-p.done:
		exited = true
	default:
	}
	log, _ := os.ReadFile(p.logPath)
	if strings.Contains(string(log), "address already in use") {
		return fmt.Errorf("%s: %w:\n%s", p.name, errPortTaken, tail(string(log), 2000))
	}
	if exited {
		return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, tail(string(log), 2000))
	}
	return nil
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the
// process to end.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
