package raftstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// returnsWithin runs f and fails the test when it has not returned within
// limit; it returns f's error otherwise. The limit is generous: it tells a
// bounded wait from an unbounded one, not a fast machine from a slow one.
func returnsWithin(t *testing.T, limit time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f() }()
	select {
	case err := <-done:
		t.Logf("%s returned after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
		return err
	case <-time.After(limit):
		t.Fatalf("%s: still waiting after %v; want an error once the request timeout passed", what, limit)
		return nil
	}
}

// TestLinearizeOnIsolatedLeader: a leader cut off from both followers
// (who elect another leader) steps down; it must not serve a linearizable
// read, and must not wait for the partition to heal either: Linearize fails with
// ErrNoLeader or ErrUnreachable once the request timeout passed, even
// with a context that never ends.
func TestLinearizeOnIsolatedLeader(t *testing.T) {
	const timeout = 500 * time.Millisecond
	c := newTestClusterTimeout(t, 3, timeout)
	old := c.waitLeader()
	if _, err := old.Apply(ctx(t), (&Batch{}).Put("k", []byte("v1"))); err != nil {
		t.Fatal(err)
	}
	id := old.NodeID()
	c.trans[id].DisconnectAll()
	for oid, tr := range c.trans {
		if oid != id {
			tr.Disconnect(raft.ServerAddress(id))
		}
	}
	// Its lease runs out within a heartbeat timeout; before that a
	// heartbeat already in flight may still confirm it.
	waitFor(t, "the isolated leader "+id+" to step down", func() (bool, string) {
		return !old.IsLeader(), "it still reports itself leader"
	})
	err := returnsWithin(t, 20*timeout+5*time.Second, "Linearize on the isolated old leader", func() error {
		return old.Linearize(context.Background())
	})
	if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Linearize on the isolated old leader: got %v, want ErrNoLeader or ErrUnreachable", err)
	}
}

// TestForwardToStoppedLeader: a leader that accepts requests but never
// answers (a stopped process) holds a follower's read index and write
// only until the request timeout: the read fails as ErrUnreachable, the
// write, which may have reached the leader, as ErrAmbiguous. A write the
// Forwarder knows it never sent is ErrUnreachable, not ErrAmbiguous.
func TestForwardToStoppedLeader(t *testing.T) {
	const timeout = 500 * time.Millisecond
	c := newTestClusterTimeout(t, 3, timeout)
	f := c.follower()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	c.fwd.mu.Lock()
	c.fwd.hang = hang
	c.fwd.mu.Unlock()
	limit := 20*timeout + 5*time.Second

	err := returnsWithin(t, limit, "ReadIndex through a follower", func() error {
		_, err := f.ReadIndex(context.Background())
		return err
	})
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("ReadIndex through a follower whose leader does not answer: got %v, want ErrUnreachable", err)
	}
	err = returnsWithin(t, limit, "Linearize through a follower", func() error {
		return f.Linearize(context.Background())
	})
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Linearize through a follower whose leader does not answer: got %v, want ErrUnreachable", err)
	}
	err = returnsWithin(t, limit, "Apply through a follower", func() error {
		_, err := f.Apply(context.Background(), (&Batch{}).Put("k", []byte("v")))
		return err
	})
	if !errors.Is(err, ErrAmbiguous) {
		t.Errorf("write through a follower whose leader does not answer: got %v, want ErrAmbiguous", err)
	}

	c.fwd.mu.Lock()
	c.fwd.hang = nil
	c.fwd.broken = fmt.Errorf("post to leader: dial tcp: connection refused: %w", ErrUnreachable)
	c.fwd.mu.Unlock()
	_, err = f.Apply(ctx(t), (&Batch{}).Put("k", []byte("v")))
	if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrAmbiguous) {
		t.Errorf("write the forwarder never sent: got %v, want ErrUnreachable and not ErrAmbiguous", err)
	}
}

// TestHTTPForwarderNotSent: HTTPForwarder says when a request never left
// the node (the leader's port refuses connections) and does not claim so
// when it was sent and the answer did not come within the deadline.
func TestHTTPForwarderNotSent(t *testing.T) {
	// A closed port: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	answered := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-answered:
		}
	}))
	t.Cleanup(func() { close(answered); slow.Close() })

	fw := &HTTPForwarder{Client: &http.Client{}, Resolve: func(id string) (string, error) {
		if id == "closed" {
			return closed, nil
		}
		return slow.URL, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = fw.Forward(ctx, "closed", &ForwardRequest{Kind: ForwardApply, Data: []byte{1}})
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("forward to a closed port: got %v, want ErrUnreachable (never sent)", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	_, err = fw.Forward(sctx, "slow", &ForwardRequest{Kind: ForwardApply, Data: []byte{1}})
	if err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("forward to a leader that took it and did not answer: got %v, want a deadline error that does not claim the request was never sent", err)
	}
}
