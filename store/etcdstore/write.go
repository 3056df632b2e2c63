package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// attempts bounds the compare-and-swap retries of one write (Options.Timeout
// bounds them in time). Writers in one appliance queue on the local lock,
// so only other appliances make an attempt fail; but under a storm of
// boots of one machine on several appliances, the appliance nearest the
// etcd leader wins most races until its queue drains: 200 boots of one
// machine over 3 appliances measured over 32 lost races in a row for the
// farthest one. Each retry costs one round trip (the losing swap reads
// the node in its Else branch).
const attempts = 256

// snapshot is one node as read at one revision.
type snapshot struct {
	mac    store.MAC
	node   *store.Node // nil: no such node
	rev    int64       // the node key's ModRevision; 0 when absent
	events []string    // the node's event keys, oldest first
}

// write is what a mutation wants committed.
type write struct {
	node   *store.Node // nil: delete the node and its history
	event  *store.Event
	before store.State // the stored state, "" for a new node

	encoded  []byte // set by ops: the node as written
	newEvent string // set by ops: the key of the event written
}

// readOps read a node and its event keys: the read before a write, and
// the Else branch of a write that lost the race, so a retry needs no
// extra round trip. The read before a write is serializable (the member
// answers from its own copy, without asking the leader): a stale answer
// only makes the compare-and-swap fail, and its Else branch, applied by
// the leader's log, brings the node as committed. A refusal decided on
// such a copy is confirmed first (update), with linearizable reads: a
// transaction of reads alone, serializable ones, would be answered by the
// member alone and prove nothing.
func (s *Store) readOps(m store.MAC, serializable bool) []clientv3.Op {
	var opt []clientv3.OpOption
	if serializable {
		opt = append(opt, clientv3.WithSerializable())
	}
	return []clientv3.Op{
		clientv3.OpGet(s.nodeKey(m), opt...),
		clientv3.OpGet(s.eventPrefix(m), append(opt, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))...),
	}
}

func (s *Store) read(ctx context.Context, m store.MAC) (snapshot, error) {
	resp, err := s.cli.Txn(ctx).Then(s.readOps(m, true)...).Commit()
	if err != nil {
		return snapshot{}, s.unreachable(err)
	}
	return snapshotOf(m, resp)
}

// snapshotOf decodes the answers to readOps.
func snapshotOf(m store.MAC, resp *clientv3.TxnResponse) (snapshot, error) {
	snap := snapshot{mac: m}
	if len(resp.Responses) != 2 {
		return snap, fmt.Errorf("node %s: etcd answered %d reads, want 2", m, len(resp.Responses))
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var n store.Node
		if err := json.Unmarshal(kvs[0].Value, &n); err != nil {
			return snapshot{}, fmt.Errorf("node %s: stored record is unreadable: %w", m, err)
		}
		snap.node, snap.rev = &n, kvs[0].ModRevision
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		snap.events = append(snap.events, string(kv.Key))
	}
	return snap, nil
}

// update runs mutate against the node as stored and commits what it
// returns, guarded by the node's ModRevision; on a conflict it reads and
// mutates again. mutate returning a nil write commits nothing. The whole
// call, local queueing included, is bounded by Options.Timeout.
//
// The first copy of the node (the stripe's last write, or a serializable
// read) may be stale. A write on it is safe (the compare-and-swap fails),
// but a refusal or a nil write is not: another appliance may have
// re-created the node, served an install with a new token or set a flag
// meanwhile. So an answer that commits nothing is given only on a copy
// etcd's log vouched for: the Else branch of a failed swap, or a compare
// that the copy is still the node's newest revision.
func (s *Store) update(m store.MAC, mutate func(snapshot) (*write, error)) error {
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.lock(ctx, m)
	if err != nil {
		return err
	}
	defer st.unlock()
	var snap snapshot
	if st.last != nil && st.last.mac == m {
		snap = *st.last
	} else if snap, err = s.read(ctx, m); err != nil {
		return err
	}
	st.last = nil
	current := false // snap is known to be the node as committed
	for attempt := 0; attempt < attempts; attempt++ {
		w, err := mutate(snap)
		if err != nil || w == nil {
			if current {
				return err
			}
			resp, cerr := s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(s.nodeKey(m)), "=", snap.rev)).
				Else(s.readOps(m, false)...).Commit()
			if cerr != nil {
				return s.unreachable(cerr)
			}
			if resp.Succeeded {
				return err
			}
			if snap, err = snapshotOf(m, resp); err != nil {
				return err
			}
			current = true
			continue
		}
		ops, err := s.ops(m, snap, w)
		if err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.nodeKey(m)), "=", snap.rev)).
			Then(ops...).Else(s.readOps(m, true)...).Commit()
		if err != nil {
			return s.unreachable(err)
		}
		if resp.Succeeded {
			s.noteWrite(resp.Header.Revision)
			st.last = committed(snap, w, resp.Header.Revision, s.history)
			return nil
		}
		// Another appliance wrote the node: decide again on what it
		// wrote, which the Else branch read in the same round trip.
		if snap, err = snapshotOf(m, resp); err != nil {
			return err
		}
		current = true
		if attempt >= 8 { // a crowd: spread the retries out a little
			pause := time.Duration(rand.IntN(1000)) * time.Microsecond
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return s.unreachable(ctx.Err())
			}
		}
	}
	return fmt.Errorf("node %s: %d attempts: %w", m, attempts, ErrConflict)
}

func (s *Store) noteWrite(rev int64) {
	for {
		old := s.lastWrite.Load()
		if rev <= old || s.lastWrite.CompareAndSwap(old, rev) {
			return
		}
	}
}

// committed is the node as the write that just succeeded at rev left it.
func committed(before snapshot, w *write, rev int64, history int) *snapshot {
	after := &snapshot{mac: before.mac}
	if w.node == nil {
		return after
	}
	var n store.Node
	if json.Unmarshal(w.encoded, &n) != nil { // a private copy: callers own w.node
		return nil
	}
	after.node, after.rev = &n, rev
	after.events = before.events
	if w.newEvent != "" {
		keep := before.events[max(0, len(before.events)+1-history):]
		after.events = append(append([]string(nil), keep...), w.newEvent)
	}
	return after
}

// ops turns a write into the transaction's operations: the node, the
// installing index, the new event and the trimming of the history.
func (s *Store) ops(m store.MAC, snap snapshot, w *write) ([]clientv3.Op, error) {
	if w.node == nil {
		return []clientv3.Op{
			clientv3.OpDelete(s.nodeKey(m)),
			clientv3.OpDelete(s.eventPrefix(m), clientv3.WithPrefix()),
			clientv3.OpDelete(s.installingKey(m)),
		}, nil
	}
	v, err := json.Marshal(w.node)
	if err != nil {
		return nil, err
	}
	w.encoded = v
	ops := []clientv3.Op{clientv3.OpPut(s.nodeKey(m), string(v))}
	switch installing := store.StateInstalling; {
	case w.node.State == installing && w.before != installing:
		ops = append(ops, clientv3.OpPut(s.installingKey(m), ""))
	case w.node.State != installing && w.before == installing:
		ops = append(ops, clientv3.OpDelete(s.installingKey(m)))
	}
	if w.event == nil {
		return ops, nil
	}
	ev, err := json.Marshal(w.event)
	if err != nil {
		return nil, err
	}
	// Events are numbered after the newest kept: two boots in one clock
	// tick never overwrite each other, and the history stays in commit
	// order whatever the appliances' clocks say.
	seq := uint64(1)
	if k := len(snap.events); k > 0 {
		last := snap.events[k-1]
		n, err := strconv.ParseUint(last[len(last)-16:], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("node %s: event key %q is not ours: %w", m, last, err)
		}
		seq = n + 1
	}
	w.newEvent = fmt.Sprintf("%s%016x", s.eventPrefix(m), seq)
	ops = append(ops, clientv3.OpPut(w.newEvent, string(ev)))
	for _, k := range snap.events[:max(0, len(snap.events)+1-s.history)] {
		ops = append(ops, clientv3.OpDelete(k))
	}
	return ops, nil
}

// modify is the shape of every write but Delete: fn changes the node
// (fresh when the node is unknown and create is true, else ErrNotFound)
// and returns the event to record, if any.
func (s *Store) modify(m store.MAC, create bool, now time.Time, fn func(n *store.Node) (*store.Event, error)) (store.Node, error) {
	var out store.Node
	err := s.update(m, func(snap snapshot) (*write, error) {
		var n store.Node
		var before store.State
		switch {
		case snap.node != nil:
			n, before = *snap.node, snap.node.State
		case create:
			n = store.Node{MAC: m, State: store.StateLocal, CreatedAt: now, StateChangedAt: now}
		default:
			return nil, store.ErrNotFound
		}
		ev, err := fn(&n)
		if err != nil {
			return nil, err
		}
		out = n
		return &write{node: &n, event: ev, before: before}, nil
	})
	return out, err
}

// SetReinstall sets or clears the reinstall flag; see store.Store.
func (s *Store) SetReinstall(m store.MAC, on bool, now time.Time) (store.Node, error) {
	return s.modify(m, on, now, func(n *store.Node) (*store.Event, error) {
		switch {
		case on:
			setState(n, store.StateReinstall, now)
		case n.State == store.StateReinstall:
			setState(n, store.StateLocal, now)
		}
		return nil, nil
	})
}

func setState(n *store.Node, st store.State, now time.Time) {
	if n.State != st {
		n.State, n.StateChangedAt = st, now
	}
	n.Reinstall = st == store.StateReinstall
}

// SetLocalBootScript sets the node's own local-boot command.
func (s *Store) SetLocalBootScript(m store.MAC, script string, now time.Time) (store.Node, error) {
	return s.modify(m, true, now, func(n *store.Node) (*store.Event, error) {
		n.LocalBootScript = script
		return nil, nil
	})
}

// MarkInstalled is the admin's "installed"; see store.Store.
func (s *Store) MarkInstalled(m store.MAC, now time.Time) (store.Node, error) {
	return s.Update(m, false, now, func(n *store.Node) (*store.Event, error) {
		if n.State == store.StateInstalling || n.State == store.StateReinstall || n.State == store.StateFailed {
			ev, err := n.Report(store.EventInstalled, true, "", "admin", "marked installed by the admin", now)
			return &ev, err
		}
		setState(n, store.StateInstalled, now)
		return &store.Event{Type: store.EventInstalled, Reason: "marked installed by the admin", State: n.State}, nil
	})
}

// Update applies fn to the node in one transaction; see store.Store. fn
// runs again when another appliance wrote the node in between.
func (s *Store) Update(m store.MAC, create bool, now time.Time, fn func(n *store.Node) (*store.Event, error)) (store.Node, error) {
	return s.modify(m, create, now, func(n *store.Node) (*store.Event, error) {
		ev, err := fn(n)
		if err != nil || ev == nil {
			return nil, err
		}
		e := *ev
		e.Time = now
		if e.State == "" {
			e.State = n.State
		}
		return &e, nil
	})
}

// Delete forgets a node and its history.
func (s *Store) Delete(m store.MAC) error {
	return s.update(m, func(snap snapshot) (*write, error) {
		if snap.node == nil {
			return nil, store.ErrNotFound
		}
		return &write{before: snap.node.State}, nil
	})
}

// RecordBoot records one boot and commits decide's verdict; see
// store.Backend. decide runs against the node as stored at the revision
// the commit is guarded by, so when it consumes the reinstall flag no
// other boot, on any appliance, can consume it too.
func (s *Store) RecordBoot(m store.MAC, sg store.Sighting, decide func(*store.Node) store.Event) (store.Node, store.Event, error) {
	var ev store.Event
	now := sg.Time
	n, err := s.modify(m, true, now, func(n *store.Node) (*store.Event, error) {
		seen := now
		n.LastSeen = &seen
		n.BootCount++
		if sg.IP != "" {
			n.LastIP = sg.IP
		}
		mergeFacts(&n.Facts, sg.Facts)
		ev = decide(n)
		ev.Time = now
		if ev.IP == "" {
			ev.IP = sg.IP
		}
		if ev.State == "" {
			ev.State = n.State
		}
		e := ev
		return &e, nil
	})
	if err != nil {
		return store.Node{}, store.Event{}, err
	}
	return n, ev, nil
}

// mergeFacts keeps what the node told before when a boot does not repeat it.
func mergeFacts(dst *store.Facts, src store.Facts) {
	for _, f := range []struct {
		d *string
		s string
	}{
		{&dst.Platform, src.Platform}, {&dst.BuildArch, src.BuildArch}, {&dst.UUID, src.UUID},
		{&dst.Serial, src.Serial}, {&dst.Manufacturer, src.Manufacturer}, {&dst.Product, src.Product},
	} {
		if f.s != "" {
			*f.d = f.s
		}
	}
}

var _ store.Forgetter = (*Store)(nil)

// ForgetIdle deletes up to max idle nodes (store.Node.Idle) and their
// history; see store.Forgetter. It reads the nodes in pages at one
// revision each, stopping at max candidates, then deletes each in its own
// transaction guarded by the node's revision, after checking the condition
// again on the node as stored: a node another appliance or an admin wrote
// meanwhile fails the guard, is read again, and is kept if no longer idle.
// Several appliances may sweep at once; each node is deleted once.
func (s *Store) ForgetIdle(seenBefore time.Time, after store.MAC, max int) (int, store.MAC, error) {
	var idle []store.MAC
	resume := store.MAC("")
scan:
	for {
		page, next, err := s.ListPage(after, listBatch, store.Filter{})
		if err != nil {
			return 0, "", err
		}
		for i := range page {
			if len(idle) == max {
				resume = idle[len(idle)-1]
				break scan
			}
			if page[i].Idle(seenBefore) {
				idle = append(idle, page[i].MAC)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	forgot := 0
	for _, m := range idle {
		gone := false
		err := s.update(m, func(snap snapshot) (*write, error) {
			gone = false
			if snap.node == nil || !snap.node.Idle(seenBefore) {
				return nil, nil // deleted or touched meanwhile: keep it
			}
			gone = true
			return &write{before: snap.node.State}, nil
		})
		if err != nil {
			return forgot, "", err
		}
		if gone {
			forgot++
		}
	}
	return forgot, resume, nil
}
