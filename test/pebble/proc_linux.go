package pebble

import "syscall"

// sysProcAttr has the kernel kill the child when the test process dies,
// so a test binary killed by -timeout leaves no Pebble behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
