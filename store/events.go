package store

// Boot events: "e/<mac>/<be64 key>" records, the last Options.History kept per node.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func eventPrefix(m MAC) []byte { return []byte("e/" + string(m) + "/") }

func eventKey(m MAC, t time.Time) []byte {
	k := eventPrefix(m)
	return binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
}

// newestEventKeys returns up to max of the node's event keys, newest first,
// stepping over as few trimmed events as it can. Trimmed events stay behind
// as tombstones until a compaction drops them, and a machine stuck in a PXE
// boot loop leaves thousands. Badger's iterator always reads one live item
// ahead, so even a bounded scan walked every tombstone on every boot
// (measured: 1 ms a boot after 10,000 boots of one machine, and growing).
// With AllVersions the iterator stops at each version instead, and this
// walk ends one version after the max-th live key.
//
// Walking backwards, Badger yields a key's versions oldest first, so the
// last version seen for a key says whether it is live.
func newestEventKeys(txn *badger.Txn, m MAC, max int) ([][]byte, error) {
	var (
		keys [][]byte
		cur  []byte
		live bool
	)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: eventPrefix(m), Reverse: true, AllVersions: true})
	defer it.Close()
	for it.Seek(eventSeekLast(m)); it.Valid(); it.Next() {
		item := it.Item()
		if cur == nil || !bytes.Equal(item.Key(), cur) {
			if cur != nil && live {
				keys = append(keys, cur)
			}
			if len(keys) == max {
				return keys, nil
			}
			cur = item.KeyCopy(nil)
		}
		live = !item.IsDeletedOrExpired()
	}
	if cur != nil && live && len(keys) < max {
		keys = append(keys, cur)
	}
	return keys, nil
}

// eventSeekLast sorts after every event key of m.
func eventSeekLast(m MAC) []byte {
	return append(eventPrefix(m), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

func eventKeys(txn *badger.Txn, m MAC) ([][]byte, error) {
	var keys [][]byte
	it := txn.NewIterator(badger.IteratorOptions{Prefix: eventPrefix(m)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	return keys, nil
}

// Events returns the node's recorded boots, newest first. An unknown node is
// ErrNotFound.
func (s *Store) Events(m MAC) ([]Event, error) {
	events := []Event{}
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := getNode(txn, m); err != nil {
			return err
		}
		// Newest first, and no further than History: see newestEventKeys.
		keys, err := newestEventKeys(txn, m, s.history)
		if err != nil {
			return err
		}
		for _, k := range keys {
			item, err := txn.Get(k)
			if err != nil {
				return err
			}
			var e Event
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("node %s: stored event is unreadable: %w", m, err)
			}
			events = append(events, e)
		}
		return nil
	})
	return events, err
}

// addEvent appends ev to m's history in txn, trimming it to Options.History.
//
// Events are keyed by time, so two boots in one clock tick (a firmware
// retrying, a coarse VM clock) would overwrite each other, and after a clock
// step backwards the newest event would sort first and be trimmed. Each
// event is keyed after the newest one kept; Event.Time still says when it
// happened. Writers of one node hold its lock, so this is exact.
func (s *Store) addEvent(txn *badger.Txn, m MAC, now time.Time, ev Event) error {
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	newest, err := newestEventKeys(txn, m, s.history)
	if err != nil {
		return err
	}
	key := eventKey(m, now)
	if len(newest) > 0 && string(newest[0]) >= string(key) {
		next := binary.BigEndian.Uint64(newest[0][len(newest[0])-8:]) + 1
		key = binary.BigEndian.AppendUint64(eventPrefix(m), next)
	}
	if err := txn.Set(key, v); err != nil {
		return err
	}
	if len(newest) == s.history {
		return txn.Delete(newest[s.history-1])
	}
	return nil
}
