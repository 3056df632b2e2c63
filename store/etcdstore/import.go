package etcdstore

import (
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// importChunk bounds the operations of one import transaction: etcd
// refuses a transaction of more than --max-txn-ops (128 by default).
const importChunk = 100

// Import writes a node read from another store, with its boot history
// (newest first, as store.Backend.Events returns it), only if etcd has no
// node of that MAC: a node that an appliance on etcd already learnt, or
// that an earlier import brought, is kept as etcd has it and Import
// reports false. Only the newest History events are written.
//
// The node, its installing index and its newest events are one
// transaction (compare-and-swap on the key's creation), so an appliance
// never sees the node without them. Older events, when the history is
// longer than one transaction takes, follow in further transactions, each
// guarded by the node's revision: if an appliance writes the node in
// between, the rest of its old history is left out. Every answer comes
// after etcd's quorum commit.
func (s *Store) Import(n store.Node, newestFirst []store.Event) (imported bool, err error) {
	m := n.MAC
	if pm, err := store.ParseMAC(string(m)); err != nil {
		return false, fmt.Errorf("import: %w", err)
	} else if pm != m {
		return false, fmt.Errorf("import: node %q is not written as the store writes MACs (%s)", m, pm)
	}
	v, err := json.Marshal(n)
	if err != nil {
		return false, fmt.Errorf("node %s: %w", m, err)
	}
	// Events are numbered oldest first from 1, as ops numbers them.
	events := newestFirst[:min(len(newestFirst), s.history)]
	evOps := make([]clientv3.Op, len(events)) // newest first
	for i, e := range events {
		ev, err := json.Marshal(e)
		if err != nil {
			return false, fmt.Errorf("node %s: %w", m, err)
		}
		evOps[i] = clientv3.OpPut(fmt.Sprintf("%s%016x", s.eventPrefix(m), len(events)-i), string(ev))
	}
	ops := []clientv3.Op{clientv3.OpPut(s.nodeKey(m), string(v))}
	if n.State == store.StateInstalling {
		ops = append(ops, clientv3.OpPut(s.installingKey(m), ""))
	}
	first := min(len(evOps), importChunk-len(ops))
	ops = append(ops, evOps[:first]...)
	evOps = evOps[first:]

	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.lock(ctx, m)
	if err != nil {
		return false, err
	}
	defer st.unlock()
	if st.last != nil && st.last.mac == m {
		st.last = nil // what this appliance last wrote of the node is stale now
	}
	nodeKey := s.nodeKey(m)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(nodeKey), "=", 0)).
		Then(ops...).Commit()
	if err != nil {
		return false, s.unreachable(err)
	}
	if !resp.Succeeded {
		return false, nil
	}
	rev := resp.Header.Revision
	s.noteWrite(rev)
	for len(evOps) > 0 {
		k := min(len(evOps), importChunk)
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(nodeKey), "=", rev)).
			Then(evOps[:k]...).Commit()
		if err != nil {
			return true, s.unreachable(err)
		}
		if !resp.Succeeded {
			break // written by an appliance since: its history goes on from there
		}
		s.noteWrite(resp.Header.Revision)
		evOps = evOps[k:]
	}
	return true, nil
}
