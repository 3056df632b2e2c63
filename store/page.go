package store

import (
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Filter selects nodes for ListPage; the zero Filter selects all.
type Filter struct {
	State     State
	Profile   string    // the node's assigned profile ("-": none assigned)
	Label     string    // "key" (has the label) or "key=value"
	SeenSince time.Time // last boot at or after
	// Query is a case-insensitive substring of the MAC, hostname, last IP,
	// manufacturer or product.
	Query string
}

// Match reports whether n passes f.
func (f Filter) Match(n *Node) bool {
	if f.State != "" && n.State != f.State {
		return false
	}
	switch {
	case f.Profile == "-" && n.Profile != "":
		return false
	case f.Profile != "" && f.Profile != "-" && n.Profile != f.Profile:
		return false
	}
	if f.Label != "" {
		k, v, hasV := strings.Cut(f.Label, "=")
		got, ok := n.Labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	if !f.SeenSince.IsZero() && (n.LastSeen == nil || n.LastSeen.Before(f.SeenSince)) {
		return false
	}
	if f.Query != "" {
		q := strings.ToLower(f.Query)
		hay := strings.ToLower(string(n.MAC) + " " + n.Hostname + " " + n.LastIP + " " + n.Facts.Manufacturer + " " + n.Facts.Product)
		if !strings.Contains(hay, q) {
			return false
		}
	}
	return true
}

// ListPage returns up to limit nodes after the MAC after ("" from the
// start), in MAC order, that pass f, and the cursor for the next page (""
// when this was the last). Memory is bounded by limit, whatever the store
// holds; a selective filter may read many records for one page.
func (s *Store) ListPage(after MAC, limit int, f Filter) ([]Node, MAC, error) {
	if limit <= 0 {
		limit = 100
	}
	nodes := make([]Node, 0, min(limit, 1024))
	var next MAC
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("n/"), PrefetchValues: true, PrefetchSize: min(limit, 64)})
		defer it.Close()
		start := []byte("n/")
		if after != "" {
			start = append(nodeKey(after), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			var n Node
			if err := it.Item().Value(func(v []byte) error { return decodeRecord(v, &n) }); err != nil {
				return fmt.Errorf("node %s: stored record is unreadable: %w", it.Item().Key()[2:], err)
			}
			if !f.Match(&n) {
				continue
			}
			if len(nodes) == limit {
				next = nodes[len(nodes)-1].MAC
				return nil
			}
			nodes = append(nodes, n)
		}
		return nil
	})
	return nodes, next, err
}
