package etcdstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// listBatch is how many nodes one range request reads while listing.
const listBatch = 500

// Get returns one node (a quorum read), or store.ErrNotFound.
func (s *Store) Get(m store.MAC) (store.Node, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Get(ctx, s.nodeKey(m))
	if err != nil {
		return store.Node{}, s.unreachable(err)
	}
	if len(resp.Kvs) == 0 {
		return store.Node{}, store.ErrNotFound
	}
	return decodeNode(resp.Kvs[0].Key, resp.Kvs[0].Value)
}

func decodeNode(key, v []byte) (store.Node, error) {
	var n store.Node
	if err := json.Unmarshal(v, &n); err != nil {
		return store.Node{}, fmt.Errorf("node %s: stored record is unreadable: %w", key, err)
	}
	return n, nil
}

// List returns every node in MAC order, read in batches at one revision.
func (s *Store) List() ([]store.Node, error) {
	nodes := []store.Node{}
	after := store.MAC("")
	for {
		page, next, err := s.ListPage(after, listBatch, store.Filter{})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, page...)
		if next == "" {
			return nodes, nil
		}
		after = next
	}
}

// ListPage returns up to limit nodes after the MAC after that pass f, and
// the cursor of the next page; see store.Store.ListPage. The pages of one
// call are read at one revision; a selective filter reads many batches.
func (s *Store) ListPage(after store.MAC, limit int, f store.Filter) ([]store.Node, store.MAC, error) {
	if limit <= 0 {
		limit = 100
	}
	ctx, cancel := s.ctx()
	defer cancel()
	nodes := make([]store.Node, 0, min(limit, 1024))
	from := s.prefix + "n/"
	if after != "" {
		from = s.nodeKey(after) + "\x00"
	}
	end := clientv3.GetPrefixRangeEnd(s.prefix + "n/")
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(min(limit+1, listBatch)))}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return nil, "", s.unreachable(err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			n, err := decodeNode(kv.Key, kv.Value)
			if err != nil {
				return nil, "", err
			}
			if !f.Match(&n) {
				continue
			}
			if len(nodes) == limit {
				return nodes, nodes[len(nodes)-1].MAC, nil
			}
			nodes = append(nodes, n)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nodes, "", nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Events returns the node's history, newest first, read with the node at
// one revision. An unknown node is store.ErrNotFound.
func (s *Store) Events(m store.MAC) ([]store.Event, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.nodeKey(m), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.eventPrefix(m), clientv3.WithPrefix(), clientv3.WithLimit(int64(s.history)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)),
	).Commit()
	if err != nil {
		return nil, s.unreachable(err)
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return nil, store.ErrNotFound
	}
	events := []store.Event{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var e store.Event
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("node %s: stored event is unreadable: %w", m, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// Installing calls fn for each node in StateInstalling, read from the
// installing index, until fn returns false.
func (s *Store) Installing(fn func(store.Node) bool) error {
	ctx, cancel := s.ctx()
	resp, err := s.cli.Get(ctx, s.prefix+"i/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return s.unreachable(err)
	}
	for _, kv := range resp.Kvs {
		m := store.MAC(strings.TrimPrefix(string(kv.Key), s.prefix+"i/"))
		n, err := s.Get(m)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if n.State == store.StateInstalling && !fn(n) {
			return nil
		}
	}
	return nil
}
