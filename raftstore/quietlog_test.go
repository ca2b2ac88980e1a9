package raftstore

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestSingleVoterLogger: the heartbeat timeout is a warning unless this
// node is the only voter; other warnings always stay warnings. (The
// end-to-end check on a real certvaultd is test.TestSingleNodeStartBanner.)
func TestSingleVoterLogger(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sole      bool
		msg       string
		wantLevel string
	}{
		{"lone voter, heartbeat timeout", true, msgHeartbeatElection, "[INFO]"},
		{"several voters, heartbeat timeout", false, msgHeartbeatElection, "[WARN]"},
		{"lone voter, another warning", true, "failed to contact", "[WARN]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := singleVoterLogger{
				Logger:    hclog.New(&hclog.LoggerOptions{Name: "raft", Output: &buf, Level: hclog.Info}),
				soleVoter: func() bool { return tc.sole },
			}
			l.Warn(tc.msg, "last-leader-id", "")
			l.Log(hclog.Warn, tc.msg)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("got %d lines %q, want 2", len(lines), lines)
			}
			for _, line := range lines {
				if !strings.Contains(line, tc.wantLevel) || !strings.Contains(line, tc.msg) {
					t.Errorf("got %q, want %s %s", line, tc.wantLevel, tc.msg)
				}
			}
		})
	}
}
