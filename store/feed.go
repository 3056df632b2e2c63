package store

import (
	"sync"
	"sync/atomic"
)

// Change is one committed change to a node, as the change feed tells it.
type Change struct {
	MAC MAC
	// Node is the node after the change; nil when it was deleted.
	Node *Node
	// Event is the event the change recorded, if any (a boot, a report).
	Event *Event
}

// Feed fans committed changes out to subscribers; a backend embeds one. Publishing never
// blocks: a subscriber whose buffer is full misses the change and has its
// Lagged flag set, so it knows to re-read the store (a slow browser never
// slows /boot).
type Feed struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// Subscription is one reader of the change feed.
type Subscription struct {
	C      <-chan Change
	c      chan Change
	lagged atomic.Bool
	f      *Feed
	once   sync.Once
}

// Lagged reports (and clears) whether changes were dropped since the last
// call because C was full.
func (s *Subscription) Lagged() bool { return s.lagged.Swap(false) }

// Close ends the subscription; C is closed.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.f.mu.Lock()
		delete(s.f.subs, s)
		s.f.mu.Unlock()
		close(s.c)
	})
}

// Subscribe adds a subscriber with a buffer of buf changes (default 256).
func (f *Feed) Subscribe(buf int) *Subscription {
	if buf <= 0 {
		buf = 256
	}
	c := make(chan Change, buf)
	s := &Subscription{C: c, c: c, f: f}
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[*Subscription]struct{}{}
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

// Publish tells ch to every subscriber without blocking.
func (f *Feed) Publish(ch Change) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for s := range f.subs {
		select {
		case s.c <- ch:
		default:
			s.lagged.Store(true)
		}
	}
}

// MarkLagged sets every subscriber's Lagged flag: the backend lost track
// of some changes (a shared backend re-read its state after its watch was
// cut) and readers should re-read the store.
func (f *Feed) MarkLagged() {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for s := range f.subs {
		s.lagged.Store(true)
	}
}

// CloseAll ends every subscription (the store is closing).
func (f *Feed) CloseAll() {
	f.mu.Lock()
	subs := f.subs
	f.subs = nil
	f.mu.Unlock()
	for s := range subs {
		s.once.Do(func() { close(s.c) })
	}
}

// Subscribe returns a reader of every change committed from now on, with
// a buffer of buf changes (default 256). Close it when done.
func (s *Store) Subscribe(buf int) *Subscription { return s.feed.Subscribe(buf) }
