package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// view is the nodes' states as the watch has seen them, up to revision
// applied: the per-state counts without a scan per call.
type view struct {
	mu      sync.Mutex
	ready   bool
	applied int64
	states  map[store.MAC]store.State
	counts  map[store.State]int
	moved   chan struct{} // closed and replaced whenever applied moves
}

func (v *view) init() {
	v.states = map[store.MAC]store.State{}
	v.counts = map[store.State]int{}
	v.moved = make(chan struct{})
}

// set records m's state (to "" for a deleted node); v.mu is held.
func (v *view) set(m store.MAC, to store.State) {
	from := v.states[m]
	if from == to {
		return
	}
	if from != "" {
		v.counts[from]--
	}
	if to == "" {
		delete(v.states, m)
	} else {
		v.states[m] = to
		v.counts[to]++
	}
}

// advance moves applied to rev; v.mu is held.
func (v *view) advance(rev int64) {
	if rev > v.applied {
		v.applied = rev
		close(v.moved)
		v.moved = make(chan struct{})
	}
}

// CountByState is the number of nodes per state (states with none left
// out), kept by the watch: its cost does not depend on the number of
// nodes. It first waits (at most Options.Timeout) until the watch has
// seen this client's own latest write, so a caller reads its writes.
func (s *Store) CountByState() (map[store.State]int, error) {
	want := s.lastWrite.Load()
	deadline := time.NewTimer(s.timeout)
	defer deadline.Stop()
	for {
		s.view.mu.Lock()
		ready, applied, moved := s.view.ready, s.view.applied, s.view.moved
		if ready && applied >= want {
			out := make(map[store.State]int, len(s.view.counts))
			for st, n := range s.view.counts {
				if n != 0 {
					out[st] = n
				}
			}
			s.view.mu.Unlock()
			return out, nil
		}
		s.view.mu.Unlock()
		select {
		case <-moved:
		case <-deadline.C:
			if !ready {
				return nil, s.unreachable(errors.New("the node counts are not loaded yet: etcd has not answered since start-up"))
			}
			return nil, s.unreachable(errors.New("the node counts lag behind this appliance's own writes: the watch on etcd is stalled"))
		}
	}
}

// watchLoop lists the nodes, then follows the watch from the listing's
// revision; when the watch fails (compaction, lost leader, cut-off) it
// lists again. It ends when ctx does (Close).
func (s *Store) watchLoop(ctx context.Context) {
	defer close(s.done)
	pause := 100 * time.Millisecond
	failing := false
	for ctx.Err() == nil {
		rev, err := s.relist(ctx)
		if err == nil {
			if failing {
				s.log.Info("etcd: watching nodes again", "endpoints", s.eps, "revision", rev)
			}
			failing, pause = false, 100*time.Millisecond
			err = s.follow(ctx, rev+1)
		}
		if ctx.Err() != nil {
			return
		}
		if !failing {
			s.log.Warn("etcd: the watch on nodes stopped; listing them again", "endpoints", s.eps, "err", err)
			failing = true
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// relist reads every node's state at one revision and replaces the view.
func (s *Store) relist(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*s.timeout)
	defer cancel()
	states := map[store.MAC]store.State{}
	base := s.prefix + "n/"
	from, end := base, clientv3.GetPrefixRangeEnd(base)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listBatch)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(lctx, from, opts...)
		if err != nil {
			return 0, err
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var n struct{ State store.State }
			if err := json.Unmarshal(kv.Value, &n); err != nil {
				s.log.Error("etcd: unreadable node record; not counted", "key", string(kv.Key), "err", err)
				continue
			}
			states[store.MAC(strings.TrimPrefix(string(kv.Key), base))] = n.State
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	s.view.mu.Lock()
	wasReady := s.view.ready
	s.view.states, s.view.counts = map[store.MAC]store.State{}, map[store.State]int{}
	for m, st := range states {
		s.view.set(m, st)
	}
	s.view.ready = true
	s.view.applied = 0 // a fresh listing may be older than what a lost watch saw
	s.view.advance(rev)
	s.view.mu.Unlock()
	if wasReady {
		s.feed.MarkLagged() // changes between the lost watch and this listing were not told
	}
	s.syncedOnce.Do(func() { close(s.synced) })
	return rev, nil
}

// follow applies watch responses from revision from until the watch fails.
func (s *Store) follow(ctx context.Context, from int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return errors.New("watch revision compacted")
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Canceled {
			return errors.New("watch canceled by the server")
		}
		s.apply(resp.Events)
	}
	return ctx.Err()
}

// apply moves the view and tells the feed. The operations of one
// transaction share a revision and come in one response, so a boot's
// node and event become one Change.
func (s *Store) apply(events []*clientv3.Event) {
	nodes, evs := s.prefix+"n/", s.prefix+"e/"
	var changes []store.Change
	var last int64
	var cur *store.Change
	flush := func() {
		if cur != nil {
			changes = append(changes, *cur)
			cur = nil
		}
	}
	s.view.mu.Lock()
	for _, e := range events {
		rev := e.Kv.ModRevision
		if rev != last {
			flush()
			last = rev
		}
		key := string(e.Kv.Key)
		switch {
		case strings.HasPrefix(key, nodes):
			m := store.MAC(key[len(nodes):])
			ch := store.Change{MAC: m}
			if e.Type == mvccpb.PUT {
				n, err := decodeNode(e.Kv.Key, e.Kv.Value)
				if err != nil {
					s.log.Error("etcd: unreadable node record in the watch", "key", key, "err", err)
					continue
				}
				ch.Node = &n
				s.view.set(m, n.State)
			} else {
				s.view.set(m, "")
			}
			if cur != nil && cur.Event != nil && cur.MAC == m {
				ch.Event = cur.Event
			}
			cur = &ch
		case strings.HasPrefix(key, evs) && e.Type == mvccpb.PUT:
			var ev store.Event
			if json.Unmarshal(e.Kv.Value, &ev) != nil {
				continue
			}
			if cur != nil {
				cur.Event = &ev
			} else {
				cur = &store.Change{Event: &ev} // node put comes after; MAC filled then
			}
		}
	}
	flush()
	s.view.advance(last)
	s.view.mu.Unlock()
	for _, ch := range changes {
		if ch.MAC != "" {
			s.feed.Publish(ch)
		}
	}
}
