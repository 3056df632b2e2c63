package store

import (
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// counts keeps the number of nodes per state in memory, so /metrics and the
// console never scan the store. It is computed once when the store opens
// and moved by every commit (track), under the same per-node lock as the
// write; Recount recomputes it from the records (tests compare the two).
type counts struct {
	mu sync.Mutex
	n  map[State]int
}

func (c *counts) move(from, to State) {
	if from == to {
		return
	}
	c.mu.Lock()
	if from != "" {
		c.n[from]--
	}
	if to != "" {
		c.n[to]++
	}
	c.mu.Unlock()
}

func (c *counts) snapshot() map[State]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[State]int, len(States))
	for s, v := range c.n {
		if v != 0 {
			out[s] = v
		}
	}
	return out
}

// CountByState is the number of nodes per lifecycle state (states with
// none are left out), maintained as
// nodes change: its cost does not depend on how many nodes there are.
func (s *Store) CountByState() (map[State]int, error) {
	return s.counts.snapshot(), nil
}

// Recount counts the nodes per state by reading every record.
func (s *Store) Recount() (map[State]int, error) {
	c := make(map[State]int, len(States))
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("n/"), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var n stateOnly
			if err := it.Item().Value(func(v []byte) error { return decodeRecord(v, &n) }); err != nil {
				return fmt.Errorf("node %s: stored record is unreadable: %w", it.Item().Key()[2:], err)
			}
			c[n.State]++
		}
		return nil
	})
	return c, err
}

// StateNames lists the states as strings, for label values.
func StateNames() []string {
	out := make([]string, len(States))
	for i, s := range States {
		out[i] = string(s)
	}
	return out
}

// NamedCounts adapts a backend's CountByState to string keys, the form
// metrics.RegisterNodeGauge takes.
func NamedCounts(count func() (map[State]int, error)) func() (map[string]int, error) {
	return func() (map[string]int, error) {
		c, err := count()
		out := make(map[string]int, len(c))
		for k, v := range c {
			out[string(k)] = v
		}
		return out, err
	}
}
