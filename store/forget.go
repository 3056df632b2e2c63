package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Forgetter is implemented by backends that can forget idle nodes
// (retention): ForgetIdle deletes, in batches of at most max, nodes that
// Idle says carry nothing an admin or an install put there and that were
// last active before seenBefore, and reports how many it deleted. It scans
// the nodes after the MAC after ("" from the first) and returns where the
// next batch goes on (next), "" once the scan reached the last node: a
// sweep is one pass over the nodes, however many batches (each batch used
// to scan from the first node again, so a sweep of a big fleet with many
// active nodes grew with the square of it). The condition is checked
// again inside each delete's transaction, so a node an admin touched after
// the scan is never forgotten.
type Forgetter interface {
	ForgetIdle(seenBefore time.Time, after MAC, max int) (forgot int, next MAC, err error)
}

var _ Forgetter = (*Store)(nil)

// Idle reports whether n only ever booted local and was last active
// before seenBefore: state local, no profile, hostname, labels, vars or
// local-boot script, never installed, and neither seen, created nor
// moved between states since. Such a node is what any boot of that
// machine would create again.
func (n *Node) Idle(seenBefore time.Time) bool {
	if n.State != StateLocal || n.Profile != "" || n.Hostname != "" || len(n.Labels) > 0 || len(n.Vars) > 0 ||
		n.LocalBootScript != "" || n.InstallCount != 0 || n.Install != nil {
		return false
	}
	last := n.CreatedAt
	if n.StateChangedAt.After(last) {
		last = n.StateChangedAt
	}
	if n.LastSeen != nil && n.LastSeen.After(last) {
		last = *n.LastSeen
	}
	return last.Before(seenBefore)
}

// ForgetIdle deletes up to max idle nodes (Node.Idle) and their history.
// It reads the nodes once (one pass over the records, which stops at max
// candidates), then deletes each in its own transaction under the node's
// lock, after checking the condition again on the node as stored. Deletes
// are boot bookkeeping, on disk within Options.SyncInterval: a node a
// power cut brings back is only forgotten again by the next sweep.
func (s *Store) ForgetIdle(seenBefore time.Time, after MAC, max int) (int, MAC, error) {
	if s.db.IsClosed() {
		return 0, "", ErrClosed
	}
	var (
		idle []MAC
		next MAC
	)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("n/"), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		it.Rewind()
		if after != "" {
			it.Seek(nodeKey(after))
			if it.Valid() && string(it.Item().Key()) == string(nodeKey(after)) {
				it.Next()
			}
		}
		for ; it.Valid(); it.Next() {
			if len(idle) == max {
				next = idle[len(idle)-1]
				return nil
			}
			var n Node
			if err := it.Item().Value(func(v []byte) error { return decodeRecord(v, &n) }); err != nil {
				return fmt.Errorf("node %s: stored record is unreadable: %w", it.Item().Key()[2:], err)
			}
			if n.Idle(seenBefore) {
				idle = append(idle, n.MAC)
			}
		}
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	forgot := 0
	for _, m := range idle {
		if s.forgetHook != nil {
			s.forgetHook(m)
		}
		var (
			c    commit
			gone bool
		)
		err := s.update(m, &c, func(txn *badger.Txn) (bool, error) {
			gone = false
			n, _, err := getNode(txn, m)
			if errors.Is(err, ErrNotFound) || err == nil && !n.Idle(seenBefore) {
				return false, nil // deleted or touched meanwhile: keep it
			}
			if err != nil {
				return false, err
			}
			gone = true
			return false, deleteNode(txn, m, n.State, &c)
		})
		if err != nil {
			return forgot, "", err
		}
		if gone {
			forgot++
		}
	}
	return forgot, next, nil
}
