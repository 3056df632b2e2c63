package store

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSetReinstallNoJournal is BenchmarkSetReinstall without the
// acknowledgement journal: the difference is what the journal costs a
// durable write (run both in one go test run).
func BenchmarkSetReinstallNoJournal(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	s.acks.close()
	s.acks = nil
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.SetReinstall(macN(i%1000), (i/1000)%2 == 0, t0); err != nil {
			b.Fatal(err)
		}
	}
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
	if len(acks) != 10 {
		t.Fatalf("journal holds %d keys, want 10", len(acks))
	}
	if !acks[string(nodeKey(macN(3)))].deleted {
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
	if again, err := readAcks(dir); err != nil || len(again) != 10 {
		t.Fatalf("after a torn append: %d keys, %v", len(again), err)
	}
}

// TestAckJournalStaysSmall: rewriting the journal keeps it near one record
// per key however many writes it saw.
func TestAckJournalStaysSmall(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	for i := 0; i < 1000; i++ {
		if _, err := s.SetReinstall(macN(i%10), (i/10)%2 == 0, t0); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, ackFileName))
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(2*(len(ackMagic)+10*40) + ackSlack); fi.Size() > max {
		t.Errorf("journal is %d bytes after 1,000 writes of 10 nodes, want at most %d", fi.Size(), max)
	}
}
