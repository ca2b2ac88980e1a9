// Package sdnotify speaks systemd's notify protocol: READY, STATUS,
// WATCHDOG and STOPPING datagrams to $NOTIFY_SOCKET. Without the socket
// (not started by systemd with Type=notify) every call is a no-op. It does
// not decide when to notify; the agent's runner does.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends notifications to systemd.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a notifier for $NOTIFY_SOCKET (a no-op one when unset).
func New() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &Notifier{}
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Enabled reports whether systemd is listening.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends one notification such as "READY=1" or "STATUS=...".
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}

// Ready tells systemd the service is up, with a status line.
func (n *Notifier) Ready(status string) error { return n.Send("READY=1\nSTATUS=" + status) }

// Status updates the status line systemctl status shows.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + status) }

// Stopping tells systemd the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// WatchdogInterval returns how often to ping the watchdog (half of
// $WATCHDOG_USEC), or 0 when no watchdog is configured for this process.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Watchdog pings systemd's watchdog.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }
