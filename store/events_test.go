package store

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// liveEvents counts m's live event keys, as Badger has them.
func liveEvents(t *testing.T, s *Store, m MAC) int {
	t.Helper()
	var keys [][]byte
	if err := s.db.View(func(txn *badger.Txn) (err error) {
		keys, err = eventKeys(txn, m)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// The event sequence bounds what a node keeps: never more than History
// plus the trim slack, and Events shows exactly the newest History.
func TestEventSequenceBoundsHistory(t *testing.T) {
	const history = 4
	s := openT(t, t.TempDir(), Options{History: history})
	m := mustMAC(t, "52:54:00:00:01:01")
	for i := 0; i < 50; i++ {
		if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Duration(i) * time.Second)}, localDecision); err != nil {
			t.Fatal(err)
		}
		if n := liveEvents(t, s, m); n > history+s.trimSlack() {
			t.Fatalf("after boot %d: %d live events, want at most %d", i, n, history+s.trimSlack())
		}
		ev, err := s.Events(m)
		if err != nil || len(ev) != min(i+1, history) || !ev[0].Time.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("after boot %d: Events = %d (%v)", i, len(ev), err)
		}
	}
}

// A database written before the event sequence existed has events and no
// "q/" key: the next event still goes after the newest one, and trimming
// still works.
func TestEventSequenceMissing(t *testing.T) {
	const history = 3
	s := openT(t, t.TempDir(), Options{History: history})
	m := mustMAC(t, "52:54:00:00:01:02")
	for i := 0; i < history; i++ {
		if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Duration(i) * time.Minute)}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(eventSeqKey(m)) }); err != nil {
		t.Fatal(err)
	}
	// The clock stepped back: the new event still sorts newest.
	for i := 0; i < 10; i++ {
		if _, _, err := s.RecordBoot(m, Sighting{Time: t0, IP: "203.0.113.7"}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Events(m)
	if err != nil || len(ev) != history || ev[0].IP != "203.0.113.7" || ev[history-1].IP != "203.0.113.7" {
		t.Fatalf("Events = %+v, %v; want the %d newest boots", ev, err, history)
	}
	if n := liveEvents(t, s, m); n > history+s.trimSlack() {
		t.Fatalf("%d live events, want at most %d", n, history+s.trimSlack())
	}
	// Delete takes the sequence too: a re-learnt node starts afresh.
	if err := s.Delete(m); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(eventSeqKey(m)); err != badger.ErrKeyNotFound {
			t.Errorf("event sequence after Delete: %v, want ErrKeyNotFound", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
