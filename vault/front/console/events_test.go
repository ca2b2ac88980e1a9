package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeChanges stands for the domain's wait for a change (one narrow
// interface): an index that moves when the test bumps it.
type fakeChanges struct {
	mu  sync.Mutex
	idx uint64
	ch  chan struct{}
}

func newFakeChanges(idx uint64) *fakeChanges { return &fakeChanges{idx: idx, ch: make(chan struct{})} }

func (c *fakeChanges) bump() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idx++
	close(c.ch)
	c.ch = make(chan struct{})
}

func (c *fakeChanges) now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idx
}

func (c *fakeChanges) wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		c.mu.Lock()
		idx, ch := c.idx, c.ch
		c.mu.Unlock()
		if idx > after {
			return idx, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return after, fmt.Errorf("wait: %w", ctx.Err())
		}
	}
}

// source is an event source over c whose data is {"n":INDEX}, alive
// while alive holds.
func (c *fakeChanges) source(alive *atomic.Bool) eventSource {
	return eventSource{name: "test", wait: c.wait, now: c.now, alive: alive.Load,
		data: func() ([]byte, bool, error) { return fmt.Appendf(nil, `{"n":%d}`, c.now()), alive.Load(), nil }}
}

// streamServer serves es with src at /events.
func streamServer(t *testing.T, es *eventStreams, src eventSource) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := es.serve(w, r, src); err != nil && r.Context().Err() == nil && err != errStreamsFull {
			t.Errorf("serve: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// sseMsg is one message of a stream: a comment, or an event's fields.
type sseMsg struct {
	comment, retry, id, event, data string
}

// stream is an open event stream read in the background.
type stream struct {
	status int
	header http.Header
	msgs   chan sseMsg
	// done is closed when the server ended the stream.
	done   chan struct{}
	cancel context.CancelFunc
}

// openStream opens url with the given Last-Event-ID ("" for none).
func openStream(t *testing.T, url, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &stream{status: resp.StatusCode, header: resp.Header, msgs: make(chan sseMsg, 64), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				s.msgs <- m
				m = sseMsg{}
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "":
				m.comment = v
			case "retry":
				m.retry = v
			case "id":
				m.id = v
			case "event":
				m.event = v
			case "data":
				m.data = v
			}
		}
	}()
	return s
}

// next returns the stream's next message, failing after d.
func (s *stream) next(t *testing.T, d time.Duration, what string) sseMsg {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-s.done:
		select {
		case m := <-s.msgs:
			return m
		default:
		}
		t.Fatalf("the stream ended while waiting for %s", what)
	case <-time.After(d):
		t.Fatalf("waited %v for %s", d, what)
	}
	return sseMsg{}
}

// nextEvent skips comments until an event comes.
func (s *stream) nextEvent(t *testing.T, d time.Duration) sseMsg {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := s.next(t, time.Until(deadline), "an event")
		if m.event != "" {
			return m
		}
	}
}

// ended waits until the server ends the stream, counting the events
// that came before.
func (s *stream) ended(t *testing.T, d time.Duration, what string) int {
	t.Helper()
	events := 0
	timeout := time.After(d)
	for {
		select {
		case m := <-s.msgs:
			if m.event != "" {
				events++
			}
		case <-s.done:
			for len(s.msgs) > 0 {
				if m := <-s.msgs; m.event != "" {
					events++
				}
			}
			return events
		case <-timeout:
			t.Fatalf("waited %v for %s", d, what)
		}
	}
}

func alive() *atomic.Bool {
	a := &atomic.Bool{}
	a.Store(true)
	return a
}

// TestEventStreamDelivers: a stream starts where the page was built
// (?index=) or where the browser left off (Last-Event-ID), sends one
// event per change with the index as its id, and says how soon to
// reconnect.
func TestEventStreamDelivers(t *testing.T) {
	ch := newFakeChanges(5)
	srv := streamServer(t, &eventStreams{heartbeat: time.Hour, gap: time.Millisecond}, ch.source(alive()))

	s := openStream(t, srv.URL+"/events?index=5", "")
	if s.status != http.StatusOK || s.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("got %d %q, want 200 text/event-stream", s.status, s.header.Get("Content-Type"))
	}
	if m := s.next(t, 10*time.Second, "the retry line"); m.retry != "5000" {
		t.Errorf("first message %+v, want retry: 5000", m)
	}
	ch.bump()
	if m := s.nextEvent(t, 10*time.Second); m.id != "6" || m.event != "test" || m.data != `{"n":6}` {
		t.Errorf("got %+v, want id 6, event test, data {\"n\":6}", m)
	}
	ch.bump()
	if m := s.nextEvent(t, 10*time.Second); m.id != "7" {
		t.Errorf("got %+v, want id 7", m)
	}

	// A browser that saw 6 comes back: 7 is sent at once.
	again := openStream(t, srv.URL+"/events?index=2", "6")
	if m := again.nextEvent(t, 10*time.Second); m.id != "7" {
		t.Errorf("after Last-Event-ID 6: got %+v, want id 7", m)
	}
}

// TestEventStreamHeartbeatAndEnd: a quiet stream sends heartbeat
// comments, and ends when its source says the session is gone.
func TestEventStreamHeartbeatAndEnd(t *testing.T) {
	ch := newFakeChanges(1)
	ok := alive()
	srv := streamServer(t, &eventStreams{heartbeat: 20 * time.Millisecond}, ch.source(ok))
	s := openStream(t, srv.URL+"/events", "")
	s.next(t, 10*time.Second, "the retry line")
	if m := s.next(t, 10*time.Second, "a heartbeat"); m.comment != "heartbeat" {
		t.Errorf("got %+v, want a heartbeat comment", m)
	}
	ok.Store(false)
	if n := s.ended(t, 10*time.Second, "the stream to end once the session is gone"); n != 0 {
		t.Errorf("%d events after the session ended, want 0", n)
	}
}

// TestEventStreamLifetime: a stream ends by itself after its lifetime,
// and sends at most one event per gap.
func TestEventStreamLifetime(t *testing.T) {
	ch := newFakeChanges(1)
	srv := streamServer(t, &eventStreams{lifetime: 300 * time.Millisecond, heartbeat: time.Hour, gap: time.Hour}, ch.source(alive()))
	s := openStream(t, srv.URL+"/events?index=1", "")
	s.next(t, 10*time.Second, "the retry line")
	ch.bump()
	s.nextEvent(t, 10*time.Second)
	for range 5 {
		ch.bump()
	}
	if n := s.ended(t, 10*time.Second, "the stream's lifetime to end it"); n != 0 {
		t.Errorf("%d more events within the gap, want none", n)
	}
}

// TestEventStreamBound: beyond the bound a stream is refused with 503 and
// Retry-After; a closed stream frees its place.
func TestEventStreamBound(t *testing.T) {
	ch := newFakeChanges(1)
	es := &eventStreams{max: 2, heartbeat: time.Hour}
	srv := streamServer(t, es, ch.source(alive()))
	first := openStream(t, srv.URL+"/events", "")
	first.next(t, 10*time.Second, "the first stream's retry line")
	second := openStream(t, srv.URL+"/events", "")
	second.next(t, 10*time.Second, "the second stream's retry line")
	third := openStream(t, srv.URL+"/events", "")
	if third.status != http.StatusServiceUnavailable || third.header.Get("Retry-After") == "" {
		t.Fatalf("a third stream: %d, Retry-After %q, want 503 with Retry-After", third.status, third.header.Get("Retry-After"))
	}
	first.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for es.open.Load() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open 10 s after one was closed, want 1", es.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if again := openStream(t, srv.URL+"/events", ""); again.status != http.StatusOK {
		t.Errorf("a stream after one was closed: %d, want 200", again.status)
	}
}

// TestIsEventStream: only body-less GETs of the two streams are
// exempt from the node's bound on requests without a credential.
func TestIsEventStream(t *testing.T) {
	for _, tc := range []struct {
		method, path, body string
		want               bool
	}{
		{"GET", "/ui/rollouts/events", "", true},
		{"GET", "/ui/fleet/events", "", true},
		{"GET", "/ui/rollouts/events", "x", false},
		{"POST", "/ui/rollouts/events", "", false},
		{"GET", "/ui/rollouts", "", false},
		{"GET", "/ui/fleet/events/x", "", false},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req := httptest.NewRequest(tc.method, tc.path, body)
		if got := IsEventStream(req); got != tc.want {
			t.Errorf("%s %s body %q: got %v, want %v", tc.method, tc.path, tc.body, got, tc.want)
		}
	}
}

// TestEventStreamShutdown: a server that shuts down ends its streams
// instead of waiting for them until its deadline.
func TestEventStreamShutdown(t *testing.T) {
	ch := newFakeChanges(1)
	es := &eventStreams{heartbeat: time.Hour, lifetime: time.Hour}
	srv := streamServer(t, es, ch.source(alive()))
	s := openStream(t, srv.URL+"/events", "")
	s.next(t, 10*time.Second, "the retry line")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v, want the stream ended and the drain done", err)
	}
	s.ended(t, 10*time.Second, "the stream to end with the server")
}
