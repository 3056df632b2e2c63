package store

import (
	"encoding/binary"
	"encoding/json"
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

// rewriteAsOld stores m's record as versions before the sequence moved into
// it wrote it (a plain Node) and returns the sequence it had.
func rewriteAsOld(t *testing.T, s *Store, m MAC) eventSeq {
	t.Helper()
	var q eventSeq
	if err := s.db.Update(func(txn *badger.Txn) error {
		n, seq, err := getNode(txn, m)
		if err != nil {
			return err
		}
		if !seq.known || seq.Count == 0 {
			t.Fatalf("record of %s holds no event sequence: %+v", m, seq)
		}
		q = seq
		v, err := json.Marshal(n)
		if err != nil {
			return err
		}
		return txn.Set(nodeKey(m), v)
	}); err != nil {
		t.Fatal(err)
	}
	return q
}

// steppedBackBoots boots m ten times at t0 (the clock stepped back) and
// checks that each new event still sorts newest and the history stays
// trimmed.
func steppedBackBoots(t *testing.T, s *Store, m MAC, history int) {
	t.Helper()
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
}

// A database written before the event sequence existed has events, no
// sequence in the node record and no "q/" key: the next event still goes
// after the newest one, and trimming still works.
func TestEventSequenceMissing(t *testing.T) {
	const history = 3
	s := openT(t, t.TempDir(), Options{History: history})
	m := mustMAC(t, "52:54:00:00:01:02")
	for i := 0; i < history; i++ {
		if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Duration(i) * time.Minute)}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	rewriteAsOld(t, s, m)
	steppedBackBoots(t, s, m, history)
}

// A database written while the sequence had a key of its own ("q/<mac>"):
// the next event takes the sequence from that key, moves it into the node
// record and deletes the key; Delete would take it too.
func TestEventSequenceOldKey(t *testing.T) {
	const history = 3
	s := openT(t, t.TempDir(), Options{History: history})
	m := mustMAC(t, "52:54:00:00:01:03")
	for i := 0; i < history; i++ {
		if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Duration(i) * time.Minute)}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	q := rewriteAsOld(t, s, m)
	old := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, q.Newest), uint32(q.Count))
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(eventSeqKey(m), old) }); err != nil {
		t.Fatal(err)
	}
	steppedBackBoots(t, s, m, history)
	if err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(eventSeqKey(m)); err != badger.ErrKeyNotFound {
			t.Errorf("q/ key after the next boot: %v, want ErrKeyNotFound", err)
		}
		_, seq, err := getNode(txn, m)
		if err != nil || !seq.known || seq.Count < history {
			t.Errorf("sequence in the record after the next boot: %+v, %v", seq, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A q/ key still there (the node did not boot since) goes with Delete.
	m2 := mustMAC(t, "52:54:00:00:01:04")
	if _, _, err := s.RecordBoot(m2, Sighting{Time: t0}, localDecision); err != nil {
		t.Fatal(err)
	}
	rewriteAsOld(t, s, m2)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(eventSeqKey(m2), old) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(m2); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(eventSeqKey(m2)); err != badger.ErrKeyNotFound {
			t.Errorf("q/ key after Delete: %v, want ErrKeyNotFound", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
