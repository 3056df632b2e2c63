package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkSetReinstallNoJournal is BenchmarkSetReinstall without the
// acknowledgement journal: the difference is what the journal costs a
// durable write (run both in one go test run).
func BenchmarkSetReinstallNoJournal(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	s.acks.close()
	s.acks = nil
	defer reportCPU(b)()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.SetReinstall(macN(i%1000), (i/1000)%2 == 0, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordBootNoJournal is BenchmarkRecordBoot without the journal:
// the difference is what a soft record (an unsynced write) costs a boot.
func BenchmarkRecordBootNoJournal(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	s.acks.close()
	s.acks = nil
	defer reportCPU(b)()
	facts := Facts{Platform: "efi", BuildArch: "x86_64", Manufacturer: "QEMU", Product: "Standard PC (Q35 + ICH9, 2009)"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sg := Sighting{Time: t0.Add(time.Duration(i) * time.Millisecond), IP: "198.51.100.10", Facts: facts}
		if _, _, err := s.RecordBoot(macN(i), sg, localDecision); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU adds the process's CPU time (user + system) per operation to a
// benchmark: on a shared, loaded machine wall time says more about the
// neighbours than about the code.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}

func TestAckJournalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	for i := 0; i < 10; i++ {
		if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(macN(3)); err != nil {
		t.Fatal(err)
	}
	acks, err := readAcks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks.keys) != 10 {
		t.Fatalf("journal holds %d keys, want 10", len(acks.keys))
	}
	if !acks.keys[string(nodeKey(macN(3)))].deleted {
		t.Errorf("the deletion of %s is not journaled", macN(3))
	}
	// A torn last record (a crash during the append) is ignored.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ackFileName), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0, 0, 0, 40, 1, 2}, s.acks.off)
	f.Close()
	if again, err := readAcks(dir); err != nil || len(again.keys) != 10 {
		t.Fatalf("after a torn append: %d keys, %v", len(again.keys), err)
	}
}

// TestAckJournalStaysSmall: rewriting the journal keeps it near one record
// per key however many writes it saw.
func TestAckJournalStaysSmall(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	for i := 0; i < 100; i++ {
		if _, err := s.SetReinstall(macN(i%10), (i/10)%2 == 0, t0); err != nil {
			t.Fatal(err)
		}
	}
	// Boots write soft records, unsynced: enough to fill the slack twice.
	for i := 0; i < 2*ackSlack/40; i++ {
		if _, _, err := s.RecordBoot(macN(i%10), Sighting{Time: t0}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, ackFileName))
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(2*(64+20*40) + ackSlack); fi.Size() > max {
		t.Errorf("journal is %d bytes after 100 admin writes and 3,276 boots of 10 nodes, want at most %d", fi.Size(), max)
	}
}

// TestJournalConcurrentWritersReopen: admin writes, boots and deletions
// from many goroutines, enough to rewrite the journal, then clean and
// crash-free reopens: never a false refusal.
func TestJournalConcurrentWritersReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SyncInterval: time.Millisecond})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				m := macN(g*1000 + i%40)
				var err error
				switch i % 10 {
				case 0:
					_, err = s.SetReinstall(m, true, t0)
				case 9:
					err = s.Delete(m)
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				default:
					_, _, err = s.RecordBoot(m, Sighting{Time: t0.Add(time.Duration(i) * time.Second)}, localDecision)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	want, _ := s.List()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		r, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("reopen %d: %v", round, err)
		}
		got, _ := r.List()
		if len(got) != len(want) {
			t.Errorf("reopen %d: %d nodes, want %d", round, len(got), len(want))
		}
		r.Close()
	}
}

// TestOpenWithoutJournal: a database written by a version without the
// journal (or whose journal was removed) opens, and gets one.
func TestOpenWithoutJournal(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if _, err := s.SetReinstall(macN(1), true, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ackFileName)); err != nil {
		t.Fatal(err)
	}
	r := openT(t, dir, Options{})
	if n, err := r.Get(macN(1)); err != nil || !n.Reinstall {
		t.Fatalf("%+v %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ackFileName)); err != nil {
		t.Errorf("no journal after the open: %v", err)
	}
}

// TestCommittedVersion: the version ackPrepare takes from a committed
// entry is the one Badger's read gives, for new and existing nodes, boots
// and admin writes; an entry that was not committed gives none.
func TestCommittedVersion(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := macN(1)
	key := nodeKey(m)
	check := func(what string, c *commit) {
		t.Helper()
		got, ok := committedVersion(c.entry, key)
		want := s.readVersion(key)
		if !ok || got != want.version || want.version == 0 {
			t.Errorf("%s: version from the entry %d (%v), read back %d", what, got, ok, want.version)
		}
	}
	for i, what := range []string{"new node", "existing node", "again"} {
		var c commit
		err := s.update(m, &c, func(txn *badger.Txn) (bool, error) {
			n, q, err := getNode(txn, m)
			before := n.State
			if errors.Is(err, ErrNotFound) {
				n, before, err = newNode(m, t0), "", nil
			}
			if err != nil {
				return false, err
			}
			n.BootCount = uint64(i)
			return i == 2, c.put(txn, before, n, q)
		})
		if err != nil {
			t.Fatal(err)
		}
		check(what, &c)
	}
	// A write between two commits of the node moves the version on.
	var c1, c2 commit
	put := func(c *commit) func(*badger.Txn) (bool, error) {
		return func(txn *badger.Txn) (bool, error) {
			n, q, err := getNode(txn, m)
			if err != nil {
				return false, err
			}
			return false, c.put(txn, n.State, n, q)
		}
	}
	if err := s.update(m, &c1, put(&c1)); err != nil {
		t.Fatal(err)
	}
	if err := s.update(m, &c2, put(&c2)); err != nil {
		t.Fatal(err)
	}
	v1, _ := committedVersion(c1.entry, key)
	v2, _ := committedVersion(c2.entry, key)
	if v2 <= v1 {
		t.Errorf("second commit's version %d is not after the first's %d", v2, v1)
	}
	if _, ok := committedVersion(badger.NewEntry(key, nil), key); ok {
		t.Error("an entry never committed gave a version")
	}
	if _, ok := committedVersion(nil, key); ok {
		t.Error("no entry gave a version")
	}
}
