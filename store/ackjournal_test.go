package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

// TestReadAcksDamage: a torn last append is the journal's end, but damage
// with a record after it is reported, never taken for the end (a flipped
// length or a zeroed block used to drop every later record without a word,
// and the rewrite at start-up then forgot them). After a power cut (another
// kernel boot) a hole may be followed by unsynced records the disk got
// first; a synced record after it still means damage.
func TestReadAcksDamage(t *testing.T) {
	this := bootID()
	type rec struct {
		key     string
		version uint64
		flags   byte
	}
	build := func(boot string, recs []rec) (b []byte, offs []int) {
		b = []byte(ackMagic + boot + "\n")
		for _, r := range recs {
			offs = append(offs, len(b))
			b = appendAck(b, r.key, r.version, r.flags)
		}
		return append(b, make([]byte, 1024)...), append(offs, len(b))
	}
	hard := func(i int) rec { return rec{string(nodeKey(macN(i))), uint64(10 + i), 0} }
	soft := func(i int) rec { return rec{string(nodeKey(macN(i))), uint64(100 + i), ackFlagSoft} }
	mark := rec{"", 50, ackFlagSync}
	var hards, softTail, syncTail []rec
	for i := 0; i < 10; i++ {
		hards = append(hards, hard(i))
	}
	softTail = append(append(softTail, hards...), soft(20), soft(21), soft(22))
	syncTail = append(append(syncTail, hards...), soft(20), mark, soft(21))
	zero := func(b []byte, from, to int) { copy(b[from:to], make([]byte, to-from)) }
	for _, tc := range []struct {
		name  string
		boot  string
		recs  []rec
		harm  func(b []byte, offs []int)
		keys  int    // keys read when accepted
		fault string // else the error says this
	}{
		{"clean", this, hards, func([]byte, []int) {}, 10, ""},
		{"torn last append", this, hards, func(b []byte, o []int) { zero(b, o[9]+12, o[10]) }, 9, ""},
		{"last length past the file", this, hards, func(b []byte, o []int) { b[o[9]] = 0x7f }, 9, ""},
		{"length flipped, records after", this, hards, func(b []byte, o []int) { b[o[0]] ^= 0x40 }, 0, "a length of"},
		{"zeroed block, records after", this, hards, func(b []byte, o []int) { zero(b, o[0], o[3]) }, 0, "zeros where a record should be"},
		{"checksum, records after", this, hards, func(b []byte, o []int) { b[o[4]+9] ^= 1 }, 0, "fails its checksum"},
		{"another boot: hole, then unsynced records", "another-boot", softTail, func(b []byte, o []int) { zero(b, o[10], o[11]) }, 10, ""},
		{"another boot: hole, then a sync mark", "another-boot", syncTail, func(b []byte, o []int) { zero(b, o[10], o[11]) }, 0, "a synced record follows"},
		{"this boot: hole, then unsynced records", this, softTail, func(b []byte, o []int) { zero(b, o[10], o[11]) }, 0, "written in this kernel boot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, offs := build(tc.boot, tc.recs)
			tc.harm(b, offs)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ackFileName), b, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := readAcks(dir)
			if tc.fault == "" {
				if err != nil || len(st.keys) != tc.keys {
					t.Fatalf("readAcks = %d keys, %v; want %d keys", len(st.keys), err, tc.keys)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.fault) {
				t.Fatalf("readAcks = %d keys, %v; want an error saying %q", len(st.keys), err, tc.fault)
			}
		})
	}
}

// FuzzParseAcks: any bytes are refused or read into a state that the
// journal's own encoding (what a rewrite writes) reads back unchanged,
// except what the encoding drops by design (a soft record no newer than the
// key's hard one; a key with neither). Seeds: testdata/fuzz/FuzzParseAcks,
// plus a journal written here.
func FuzzParseAcks(f *testing.F) {
	b := []byte(ackMagic + "boot\n")
	b = appendAck(b, string(nodeKey(macN(1))), 7, 0)
	b = appendAck(b, string(nodeKey(macN(2))), 9, ackFlagSoft|ackFlagDeleted)
	b = appendAck(b, "", 8, ackFlagSync)
	f.Add(append(b, make([]byte, 64)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseAcks(b)
		if err != nil {
			return
		}
		want := map[string]ackRec{}
		for k, r := range st.keys {
			if r.soft <= r.hard {
				r.soft, r.softDeleted = 0, false
			}
			if r.hard == 0 {
				r.deleted = false
			}
			if r.hard > 0 || r.soft > 0 {
				want[k] = r
			}
		}
		again, err := parseAcks(st.encode())
		if err != nil {
			t.Fatalf("the encoding of %+v is refused: %v", st, err)
		}
		if !reflect.DeepEqual(again.keys, want) || again.synced != st.synced || again.bootID != st.bootID {
			t.Fatalf("round trip changed the journal:\n%+v\n%+v", st, again)
		}
	})
}

// copyFiles copies the regular files of from (or only the one named) into
// to: what the disk holds after a power cut, page by page as it chose.
func copyFiles(t *testing.T, from, to string, only ...string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" || !e.Type().IsRegular() || (len(only) > 0 && e.Name() != only[0]) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A power cut may lose a boot's unsynced bookkeeping while the journal's
// soft record of it reached the disk. The first start after it (another
// kernel boot) accepts that; the start after that, in the same kernel boot
// (a plain restart), must too. It used to call the database damaged: the
// first start rewrote the journal with the soft record under its own boot
// id, so the next one required it.
func TestPowerCutThenRestart(t *testing.T) {
	live, disk := t.TempDir(), t.TempDir()
	s, err := Open(live, Options{Logger: quiet, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordBoot(macN(0), Sighting{Time: t0}, localDecision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetReinstall(macN(1), true, t0); err != nil { // durable: syncs all so far
		t.Fatal(err)
	}
	copyFiles(t, live, disk)
	if _, _, err := s.RecordBoot(macN(0), Sighting{Time: t0.Add(time.Second)}, localDecision); err != nil {
		t.Fatal(err)
	}
	copyFiles(t, live, disk, ackFileName) // the journal's page was written back, Badger's log was not
	s.Close()

	saved := bootID
	defer func() { bootID = saved }()
	bootID = func() string { return "the boot after the power cut" }
	for i := 1; i <= 2; i++ {
		r, err := Open(disk, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("start %d after the power cut: %v", i, err)
		}
		n, err := r.Get(macN(1))
		if err != nil || !n.Reinstall {
			t.Errorf("start %d: the acknowledged flag = %+v, %v", i, n, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
