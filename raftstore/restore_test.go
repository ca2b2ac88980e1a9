package raftstore

import (
	"bytes"
	"context"
	"testing"

	"github.com/hashicorp/raft"
)

// A linearizable read after a restore sees the restored state on every
// replica, also on one that missed the last write before the restore (it
// used to wait for that write's index forever: the restored state kept
// the file's older applied index).
func TestRestoreThenLinearizeOnLaggingFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader()
	if _, err := leader.Apply(ctx(t), (&Batch{}).Put("a", []byte("saved"))); err != nil {
		t.Fatal(err)
	}
	var saved bytes.Buffer
	if err := leader.SaveSnapshot(ctx(t), &saved); err != nil {
		t.Fatal(err)
	}
	lag := c.follower()
	if err := lag.Linearize(ctx(t)); err != nil {
		t.Fatal(err)
	}
	id := raft.ServerAddress(lag.NodeID())
	setLinks := func(connect bool) {
		for oid, tr := range c.trans {
			if raft.ServerAddress(oid) == id {
				continue
			}
			if connect {
				tr.Connect(id, c.trans[string(id)])
				c.trans[string(id)].Connect(raft.ServerAddress(oid), tr)
			} else {
				tr.Disconnect(id)
				c.trans[string(id)].Disconnect(raft.ServerAddress(oid))
			}
		}
	}
	setLinks(false)
	if _, err := leader.Apply(ctx(t), (&Batch{}).Put("a", []byte("missed"))); err != nil {
		t.Fatal(err)
	}
	if err := leader.RestoreSnapshot(ctx(t), bytes.NewReader(saved.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	setLinks(true)

	rctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := lag.Linearize(rctx); err != nil {
		t.Fatalf("linearize on the lagging follower after a restore: %v", err)
	}
	if e, _ := lag.Get("a"); string(e.Value) != "saved" {
		t.Fatalf("a on the lagging follower: got %q, want the restored %q", e.Value, "saved")
	}
}
