package store

// The store's side of the acknowledgement journal (ackjournal.go): what
// update, the sync loop and Close call at their hook points in store.go.

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
)

// pendingAck is a durable write on its way to the journal.
type pendingAck struct {
	key     string
	version uint64
	flags   byte
}

// ackPrepare finds the version Badger gave the node's newest change (a
// tombstone for Delete): from the record's entry in c when the commit wrote
// one (committedVersion), else by reading it back. update calls it under the
// node's lock, right after the commit, so no other writer of the node can
// come between. A write that is not durable is journaled here, unsynced, as
// a soft record; a durable one waits for ackCommit, after Badger's fsync.
func (s *Store) ackPrepare(m MAC, c *commit, durable bool, err error) pendingAck {
	if err != nil || s.acks == nil {
		return pendingAck{}
	}
	var p pendingAck
	key := nodeKey(m)
	if v, ok := committedVersion(c.entry, key); ok {
		p = pendingAck{key: string(key), version: v}
	} else {
		p = s.readVersion(key)
	}
	if p.key != "" {
		raiseTo(&s.acks.committed, p.version)
	}
	if p.key != "" && !durable {
		if err := s.acks.add(p.key, p.version, ackFlagSoft|p.flags, false); err != nil {
			s.log.Error("store: acknowledgement journal cannot be written", "path", s.path, "err", s.noteSync(err)) // a full journal's rewrite syncs
		}
		return pendingAck{}
	}
	return p
}

// committedVersion is the version Badger committed entry e of key at. A
// committed transaction leaves each entry's Key as the key followed by its
// version (badger's y.KeyWithTs): Badger turns the entries it was given
// into its internal keys in place, and the transaction keeps the entry it
// was given (Txn.SetEntry). This is not part of Badger's documented API, so
// anything else (no entry, or a key of another shape) returns false and
// ackPrepare reads the version back instead, one read transaction more;
// TestCommittedVersion checks both agree. It saves that read on every boot.
func committedVersion(e *badger.Entry, key []byte) (uint64, bool) {
	if e == nil || len(e.Key) != len(key)+8 || !bytes.Equal(e.Key[:len(key)], key) {
		return 0, false
	}
	return y.ParseTs(e.Key), true
}

// readVersion reads key's newest version back, a tombstone's included.
func (s *Store) readVersion(key []byte) pendingAck {
	var p pendingAck
	_ = s.db.View(func(txn *badger.Txn) error {
		if item, err := txn.Get(key); err == nil {
			p = pendingAck{key: string(key), version: item.Version()}
			return nil
		}
		// Deleted: the tombstone's version, the newest of the key's versions.
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: key})
		defer it.Close()
		it.Seek(key)
		if it.Valid() && bytes.Equal(it.Item().Key(), key) {
			p = pendingAck{key: string(key), version: it.Item().Version()}
			if it.Item().IsDeletedOrExpired() {
				p.flags = ackFlagDeleted
			}
		}
		return nil
	})
	return p
}

// ackCommit journals a durable write once Badger has synced it.
func (s *Store) ackCommit(p pendingAck) error {
	if p.key == "" {
		return nil
	}
	if err := s.acks.add(p.key, p.version, p.flags, true); err != nil {
		return s.noteSync(fmt.Errorf("database at %s: committed and synced, but its acknowledgement journal %s cannot be written: %w",
			s.path, ackFileName, err))
	}
	return nil
}

// syncAndMark is the sync loop's fsync: Badger's logs (syncWAL), then a
// sync mark for every version committed before it. After a failed sync
// (syncfail.go) it still syncs but marks nothing: a later sync that
// succeeds does not prove the earlier writes reached the disk.
func (s *Store) syncAndMark() error {
	if s.acks == nil {
		return s.syncWAL()
	}
	v := s.acks.committed.Load()
	if err := s.syncWAL(); err != nil {
		return err
	}
	if s.syncBroken() != nil {
		return nil
	}
	return s.noteSync(s.acks.add("", v, ackFlagSync, true))
}

// closeAndMark closes Badger, which flushes and fsyncs everything, then
// marks every version as synced and closes the journal.
func (s *Store) closeAndMark() error {
	if s.acks == nil {
		return s.db.Close()
	}
	v := s.acks.committed.Load()
	err := s.db.Close()
	if err == nil {
		err = s.acks.add("", v, ackFlagSync, true)
	}
	return errors.Join(err, s.acks.close())
}

// raiseTo sets a to v unless it already holds more.
func raiseTo(a *atomic.Uint64, v uint64) {
	for c := a.Load(); v > c; c = a.Load() {
		if a.CompareAndSwap(c, v) {
			return
		}
	}
}
