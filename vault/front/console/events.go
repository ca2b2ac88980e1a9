package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
)

// Live pages without polling: a page that changes while it is open (the
// rollouts' counts, the fleet) opens one Server-Sent Events stream, fed by
// the domain's wait for a change (the raftstore watch on this node's
// state), and its script updates the page in place. Each stream is
// bounded: it ends after a lifetime (the browser's EventSource comes back
// with Last-Event-ID, so nothing is missed), sends a comment as heartbeat
// so that proxies keep it open, sends at most one event per gap however
// fast the fleet reports (changes in between are folded into the next
// event), re-checks the session and access before every event and
// heartbeat, ends when the server shuts down, and a node serves only so
// many at once (503 beyond). The audit record is the middleware's one per
// stream, written when it ends.

// Defaults of the event streams (eventStreams documents each).
const (
	DefaultMaxEventStreams = 256
	DefaultStreamLifetime  = 10 * time.Minute
	DefaultHeartbeat       = 20 * time.Second
	DefaultEventGap        = time.Second
	// streamRetryMS is how long a browser waits before it reconnects.
	streamRetryMS = 5000
)

// eventStreams bounds a node's event streams. The zero value uses the
// defaults.
type eventStreams struct {
	open atomic.Int64
	// max is how many streams may be open at once (DefaultMaxEventStreams).
	max int64
	// lifetime ends a stream, give or take a tenth so that streams
	// opened together do not all come back together
	// (DefaultStreamLifetime).
	lifetime time.Duration
	// heartbeat is the time between comments on a quiet stream
	// (DefaultHeartbeat).
	heartbeat time.Duration
	// gap is the least time between two events (DefaultEventGap).
	gap time.Duration

	// closing is closed when the server shuts down, which ends every
	// stream at once instead of holding the server's drain until its
	// deadline; once registers that with the server.
	once    sync.Once
	closing chan struct{}
}

// closingOn returns a channel closed when the server serving r shuts down
// (registered with it at the first stream).
func (es *eventStreams) closingOn(r *http.Request) <-chan struct{} {
	es.once.Do(func() {
		es.closing = make(chan struct{})
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
			srv.RegisterOnShutdown(func() { close(es.closing) })
		}
	})
	return es.closing
}

func orDefault[T int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// eventSource is what one stream sends.
type eventSource struct {
	// name is the events' type ("rollouts", "fleet").
	name string
	// wait blocks until what the page shows may have changed after the
	// index after, and returns the index of the change; an error ends
	// the stream (ctx's when it ends).
	wait func(ctx context.Context, after uint64) (uint64, error)
	// now is the index of the state now, where a stream starts when the
	// browser names none.
	now func() uint64
	// data is the event's payload as the state is now (one line of
	// JSON); ok false ends the stream (the session ended or the access
	// is gone), an error too.
	data func() (payload []byte, ok bool, err error)
	// alive reports whether the stream may go on (the session is still
	// valid, access still granted); checked at each heartbeat.
	alive func() bool
}

// errStreamsFull refuses a stream over the node's bound.
var errStreamsFull = errors.New("console: too many open event streams")

// serve streams src's events to the browser until the lifetime ends,
// the browser goes away, or src says to stop.
func (es *eventStreams) serve(w http.ResponseWriter, r *http.Request, src eventSource) error {
	if n := es.open.Add(1); n > orDefault(es.max, DefaultMaxEventStreams) {
		es.open.Add(-1)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "this node serves as many live updates as it can; refresh the page later", http.StatusServiceUnavailable)
		return errStreamsFull
	}
	defer es.open.Add(-1)
	rc := http.NewResponseController(w)
	after, ok := startIndex(r)
	if !ok {
		after = src.now()
	}
	life := orDefault(es.lifetime, DefaultStreamLifetime)
	life += time.Duration(rand.Int64N(int64(life)/5+1)) - life/10
	ctx, cancel := context.WithTimeout(r.Context(), life)
	defer cancel()
	// Registered with the server before the stream starts, so that a
	// shutdown that follows the first byte always ends it.
	closing := es.closingOn(r)
	go func() {
		select {
		case <-closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", streamRetryMS); err != nil {
		return fmt.Errorf("start event stream: %w", err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("start event stream: %w", err)
	}
	heartbeat := orDefault(es.heartbeat, DefaultHeartbeat)
	gap := orDefault(es.gap, DefaultEventGap)
	for {
		wctx, wcancel := context.WithTimeout(ctx, heartbeat)
		idx, err := src.wait(wctx, after)
		beat := err != nil && wctx.Err() != nil && ctx.Err() == nil
		wcancel()
		switch {
		case ctx.Err() != nil:
			return nil // the lifetime ended or the browser went away
		case beat:
			if !src.alive() {
				return nil
			}
			if err := es.write(w, rc, ": heartbeat\n\n"); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("event stream: %w", err)
		}
		payload, ok, err := src.data()
		if err != nil || !ok {
			return err
		}
		after = idx
		if err := es.write(w, rc, "id: "+strconv.FormatUint(idx, 10)+"\nevent: "+src.name+"\ndata: "+string(payload)+"\n\n"); err != nil {
			return err
		}
		// Fold what changes during the gap into the next event.
		t := time.NewTimer(gap)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// write sends one message and flushes it.
func (es *eventStreams) write(w http.ResponseWriter, rc *http.ResponseController, msg string) error {
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// startIndex is where a stream starts: the browser's Last-Event-ID when
// it reconnects, else the index the page was built at (?index=N).
func startIndex(r *http.Request) (uint64, bool) {
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("index")} {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}

// IsEventStream reports whether r opens one of the console's event
// streams: a GET without a body to /ui/…/events. The node does not count
// such a request among those without a credential (it would hold a slot
// for its whole life, and the browser's cookie is not a credential the
// node sees): the console checks its session before anything else and
// bounds the streams itself.
func IsEventStream(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) &&
		(r.URL.Path == rolloutEventsPath || r.URL.Path == fleetEventsPath)
}

// changeSource is the event source of a live page: an event of type name
// whenever a record of scope changes, with payload(caller) as its JSON
// data, for as long as the session s is valid and allowed(caller) holds
// (nil: any caller), both checked again before every event and heartbeat.
func (f *Front) changeSource(name string, scope fleet.ChangeScope, s session, allowed func(core.Caller) bool,
	payload func(core.Caller) (any, error)) eventSource {
	caller := s.caller
	alive := func() bool {
		c, ok := f.sessionStill(s)
		caller = c
		return ok && (allowed == nil || allowed(c))
	}
	return eventSource{
		name: name,
		wait: func(ctx context.Context, after uint64) (uint64, error) {
			return f.WaitChange(ctx, scope, after)
		},
		now:   f.ChangeIndex,
		alive: alive,
		data: func() ([]byte, bool, error) {
			if !alive() {
				return nil, false, nil
			}
			v, err := payload(caller)
			if err != nil {
				return nil, false, err
			}
			b, err := json.Marshal(v)
			return b, err == nil, err
		},
	}
}

// sessionStill reads a stream's session again: its caller now, and
// whether it is still valid (not signed out or expired, its token not
// revoked).
func (f *Front) sessionStill(s session) (core.Caller, bool) {
	c, _, ok, err := f.SessionCaller(s.secret, time.Now())
	return c, err == nil && ok
}

// stream serves an event stream, logging why it ended when that was not
// the browser going away or the node's bound.
func (f *Front) stream(w http.ResponseWriter, r *http.Request, src eventSource) {
	err := f.events.serve(w, r, src)
	if err != nil && !errors.Is(err, errStreamsFull) && r.Context().Err() == nil {
		f.Log.Warn("console: event stream ended", "path", r.URL.Path, "err", err)
	}
}
