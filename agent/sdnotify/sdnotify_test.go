package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestSend(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	n := New()
	if !n.Enabled() {
		t.Fatal("not enabled with NOTIFY_SOCKET set")
	}
	if err := n.Ready("serving 2 bindings"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatalf("set read deadline: %v", err)
	}
	k, _, err := conn.ReadFromUnix(buf)
	if err != nil || string(buf[:k]) != "READY=1\nSTATUS=serving 2 bindings" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if New().Enabled() || New().Send("READY=1") != nil {
		t.Fatal("without NOTIFY_SOCKET: want a silent no-op")
	}
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	if WatchdogInterval() != time.Second {
		t.Fatalf("WatchdogInterval = %v, want 1s", WatchdogInterval())
	}
}
