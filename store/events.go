package store

// Boot events: "e/<mac>/<be64 key>" records, the last Options.History kept
// per node (give or take trimSlack), and "q/<mac>", the node's event sequence.

import (
	"bytes"
	"encoding/binary"
	"errors"
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
		if _, _, err := getNode(txn, m); err != nil {
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
			if err := item.Value(func(v []byte) error { return decodeRecord(v, &e) }); err != nil {
				return fmt.Errorf("node %s: stored event is unreadable: %w", m, err)
			}
			events = append(events, e)
		}
		return nil
	})
	return events, err
}

// eventSeq is a node's event sequence: the suffix of its newest event key
// and how many of its events are live. It lets addEvent place and trim
// events without reading them, where it used to open a reverse iterator
// over the node's events on every boot (creating a Badger iterator visits
// every memtable and table: 12 % of a boot's CPU). It is kept in the node's
// record (storedNode), which every event's transaction writes anyway; it
// used to have a key of its own, q/<mac>, and reading that key was 6 % of
// the appliance's CPU in a boot storm (docs/performance-notes.md).
type eventSeq struct {
	Newest uint64 `json:"newest" cbor:"1,keyasint"` // suffix of the newest event key
	Count  int    `json:"count" cbor:"2,keyasint"`  // live events (an estimate after a recover: see trim)
	known  bool   // read from the record, or the node is new
}

// eventSeqKey is where versions before the sequence moved into the node
// record kept it: be64 newest, be32 count. addEvent reads it once for a
// node whose record has no sequence, and deletes it.
func eventSeqKey(m MAC) []byte { return []byte("q/" + string(m)) }

func getOldEventSeq(txn *badger.Txn, m MAC) (eventSeq, bool, error) {
	item, err := txn.Get(eventSeqKey(m))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return eventSeq{}, false, nil
	}
	if err != nil {
		return eventSeq{}, false, err
	}
	var q eventSeq
	err = item.Value(func(v []byte) error {
		if len(v) != 12 {
			return fmt.Errorf("node %s: stored event sequence has %d bytes, want 12", m, len(v))
		}
		q.Newest = binary.BigEndian.Uint64(v)
		q.Count = int(binary.BigEndian.Uint32(v[8:]))
		return nil
	})
	return q, err == nil, err
}

// trimSlack is how many events past Options.History a node may keep before
// addEvent trims it back: trimming needs an iterator, so it runs on one
// boot in History/2+1, not on every one. Events reads only the newest
// History, so the extra ones are never shown; Delete removes them all.
func (s *Store) trimSlack() int { return s.history/2 + 1 }

// addEvent appends ev to m's history in txn, trimming it to Options.History
// (give or take trimSlack), and advances q, the node's event sequence, which
// the caller then stores with the node (putNode). isNew says the node did
// not exist before this transaction, so it has no events.
//
// Events are keyed by time, so two boots in one clock tick (a firmware
// retrying, a coarse VM clock) would overwrite each other, and after a clock
// step backwards the newest event would sort first and be trimmed. Each
// event is keyed after the newest one kept; Event.Time still says when it
// happened. Writers of one node hold its lock, so this is exact.
func (s *Store) addEvent(txn *badger.Txn, m MAC, now time.Time, ev Event, isNew bool, q *eventSeq) error {
	v, err := encodeRecord(ev)
	if err != nil {
		return err
	}
	if isNew {
		*q = eventSeq{known: true}
	}
	if !q.known { // a record written before the sequence moved into it
		old, ok, err := getOldEventSeq(txn, m)
		if err != nil {
			return err
		}
		if ok {
			*q = old
			if err := txn.Delete(eventSeqKey(m)); err != nil {
				return err
			}
		} else { // written before the sequence existed at all
			newest, err := newestEventKeys(txn, m, s.history)
			if err != nil {
				return err
			}
			*q = eventSeq{Count: len(newest)}
			if len(newest) > 0 {
				q.Newest = keySuffix(newest[0])
			}
		}
		q.known = true
	}
	if q.Count >= s.history+s.trimSlack()-1 {
		// Keep the newest History-1; with this event, History.
		keys, err := newestEventKeys(txn, m, q.Count)
		if err != nil {
			return err
		}
		q.Count = len(keys)
		for _, k := range keys[min(s.history-1, len(keys)):] {
			if err := txn.Delete(k); err != nil {
				return err
			}
			q.Count--
		}
	}
	at := uint64(now.UnixNano())
	if at <= q.Newest {
		at = q.Newest + 1
	}
	if err := txn.Set(binary.BigEndian.AppendUint64(eventPrefix(m), at), v); err != nil {
		return err
	}
	q.Newest, q.Count = at, q.Count+1
	return nil
}

func keySuffix(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) }
