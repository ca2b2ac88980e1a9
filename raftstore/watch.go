package raftstore

import (
	"context"
)

// waiter is one blocked Watch call. It is registered under each of its
// prefixes and fired (its channel closed) by the first write under any of
// them.
type waiter struct {
	ch       chan struct{}
	prefixes []string
	fired    bool
}

// fire wakes and unregisters every waiter on prefix. Called with f.mu held.
func (f *fsm) fire(prefix string) {
	set := f.watchers[prefix]
	if len(set) == 0 {
		return
	}
	for w := range set {
		f.unregister(w)
		if !w.fired {
			w.fired = true
			close(w.ch)
		}
	}
}

// unregister removes w from every prefix it waits on. Called with f.mu held.
func (f *fsm) unregister(w *waiter) {
	for _, p := range w.prefixes {
		set := f.watchers[p]
		delete(set, w)
		if len(set) == 0 {
			delete(f.watchers, p)
		}
	}
}

// watch blocks until a key at or under one of prefixes is written or
// deleted at an index greater than after, or ctx is done. It returns the
// highest last-change index among the prefixes (which is > after when
// something changed). A prefix is an exact key or a directory ending in
// '/'. When the record of a deleted key is gone, its directory's index
// stands in for it, so a watch may wake once too often but never misses a
// change; callers pass the returned index as the next after.
//
// The cost of a write is O(depth of its key) regardless of how many
// watchers wait, and only the watchers of the touched prefixes wake.
func (f *fsm) watch(ctx context.Context, prefixes []string, after uint64) (uint64, error) {
	f.mu.Lock()
	if idx := f.maxChange(prefixes); idx > after {
		f.mu.Unlock()
		return idx, nil
	}
	w := &waiter{ch: make(chan struct{}), prefixes: prefixes}
	for _, p := range prefixes {
		set := f.watchers[p]
		if set == nil {
			set = make(map[*waiter]struct{})
			f.watchers[p] = set
		}
		set[w] = struct{}{}
	}
	f.mu.Unlock()

	select {
	case <-w.ch:
	case <-ctx.Done():
		f.mu.Lock()
		f.unregister(w)
		idx := f.maxChange(prefixes)
		f.mu.Unlock()
		return idx, ctx.Err()
	}
	f.mu.RLock()
	idx := f.maxChange(prefixes)
	f.mu.RUnlock()
	return idx, nil
}

// maxChange returns the largest lastChange over prefixes.
func (f *fsm) maxChange(prefixes []string) uint64 {
	var m uint64
	for _, p := range prefixes {
		if c := f.lastChange(p); c > m {
			m = c
		}
	}
	return m
}

// watcherCount returns the number of registered waiters (for metrics and
// tests); a waiter on several prefixes counts once per prefix.
func (f *fsm) watcherCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, set := range f.watchers {
		n += len(set)
	}
	return n
}
