package store

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupRestore(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	for i := 0; i < 100; i++ {
		if _, err := s.SetReinstall(macN(i), i%3 == 0, t0); err != nil && i%3 == 0 {
			t.Fatal(err)
		}
		if _, _, err := s.RecordBoot(macN(i), Sighting{Time: t0, IP: "203.0.113.9"}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	want, _ := s.List()
	to := filepath.Join(t.TempDir(), "restored")
	n, err := Restore(bytes.NewReader(buf.Bytes()), to, quiet)
	if err != nil || n != len(want) {
		t.Fatalf("Restore = %d nodes, %v; want %d", n, err, len(want))
	}
	r := openT(t, to, Options{})
	got, _ := r.List()
	for i := range want {
		if got[i].MAC != want[i].MAC || got[i].State != want[i].State || got[i].Reinstall != want[i].Reinstall || got[i].BootCount != want[i].BootCount {
			t.Errorf("restored %+v, want %+v", got[i], want[i])
		}
		ev, err := r.Events(want[i].MAC)
		if err != nil || len(ev) != 1 {
			t.Errorf("restored events of %s: %d, %v", want[i].MAC, len(ev), err)
		}
	}
	// A target that is not empty is refused, and left alone.
	if _, err := Restore(bytes.NewReader(buf.Bytes()), to, quiet); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Restore into a used directory = %v", err)
	}
}
