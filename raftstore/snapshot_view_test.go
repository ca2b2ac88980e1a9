package raftstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// TestSnapshotViewIndexAndTime checks that the view a restore's check gets
// tells the snapshot's own applied index and when it was taken, and that
// a file of format 01 (no time) still restores, with a zero time.
func TestSnapshotViewIndexAndTime(t *testing.T) {
	c := newTestCluster(t, 1)
	leader := c.waitLeader()
	idx, err := leader.Apply(ctx(t), (&Batch{}).Put("a", []byte("1")))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	before := time.Now().Truncate(time.Second)
	var buf bytes.Buffer
	if err := leader.SaveSnapshot(ctx(t), &buf); err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	after := time.Now()
	if _, err := leader.Apply(ctx(t), (&Batch{}).Put("a", []byte("2"))); err != nil {
		t.Fatalf("apply: %v", err)
	}

	var gotIndex uint64
	var gotTime time.Time
	look := func(v SnapshotView) error {
		gotIndex, gotTime = v.Index(), v.Taken()
		return nil
	}
	if err := leader.RestoreSnapshot(ctx(t), bytes.NewReader(buf.Bytes()), look); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if gotIndex != idx || gotTime.Before(before) || gotTime.After(after) {
		t.Errorf("view of the saved snapshot: index %d, taken %v; want index %d and a time in [%v, %v]", gotIndex, gotTime, idx, before, after)
	}

	v1, err := asFormat01(buf.Bytes())
	if err != nil {
		t.Fatalf("rewrite as format 01: %v", err)
	}
	gotIndex, gotTime = 0, time.Now()
	if err := leader.RestoreSnapshot(ctx(t), bytes.NewReader(v1), look); err != nil {
		t.Fatalf("restore a format 01 snapshot: %v", err)
	}
	if gotIndex != idx || !gotTime.IsZero() {
		t.Errorf("view of a format 01 snapshot: index %d, taken %v; want index %d and a zero time", gotIndex, gotTime, idx)
	}
	if e, ok := leader.Get("a"); !ok || string(e.Value) != "1" {
		t.Errorf("after restoring the format 01 snapshot: a=%q (found %v), want \"1\"", e.Value, ok)
	}
}

// asFormat01 rewrites a snapshot of the current format as format 01: the
// old magic, no time, a new checksum.
func asFormat01(data []byte) ([]byte, error) {
	if len(data) < len(snapshotMagic)+sha256.Size || !bytes.Equal(data[:len(snapshotMagic)], snapshotMagic) {
		return nil, errors.New("not a current snapshot")
	}
	body := data[len(snapshotMagic) : len(data)-sha256.Size]
	_, n1 := binary.Uvarint(body)
	_, n2 := binary.Uvarint(body[n1:])
	if n1 <= 0 || n2 <= 0 {
		return nil, errors.New("bad header")
	}
	out := append([]byte{}, snapshotMagicV1...)
	out = append(out, body[:n1]...)
	out = append(out, body[n1+n2:]...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}
