package raftstore

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// msgHeartbeatElection is what hashicorp/raft warns when a follower hears
// from no leader within the heartbeat timeout and stands for election.
const msgHeartbeatElection = "heartbeat timeout reached, starting election"

// singleVoterLogger is raft's logger with one change: the heartbeat
// timeout warning is logged at Info when this node is the only voter. A
// lone voter never hears a heartbeat (there is nobody to send one), so on
// every start it times out and elects itself: that is how it becomes
// leader, not a problem. With more voters the warning stays a warning.
type singleVoterLogger struct {
	hclog.Logger
	// soleVoter reports whether the current configuration has exactly one
	// voter; false while raft is not started yet.
	soleVoter func() bool
}

// Warn implements hclog.Logger.
func (l singleVoterLogger) Warn(msg string, args ...interface{}) {
	if msg == msgHeartbeatElection && l.soleVoter() {
		l.Logger.Info(msg, append(args, "note", "single voter: it elects itself")...)
		return
	}
	l.Logger.Warn(msg, args...)
}

// Log implements hclog.Logger.
func (l singleVoterLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Warn {
		l.Warn(msg, args...)
		return
	}
	l.Logger.Log(level, msg, args...)
}

// soleVoter reports whether raft runs and its latest configuration has
// exactly one voter. GetConfiguration reads an atomic copy, so it is safe
// to call from raft's own goroutines (the logger does).
func (s *Store) soleVoter() bool {
	r := s.raftRef.Load()
	if r == nil {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	voters := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	return voters == 1
}
