package store

import (
	"testing"
	"time"
)

// BenchmarkRecordBoot: one boot of a new machine each time (distinct MACs),
// with facts; not fsynced (boot bookkeeping goes to disk with the sync loop).
func BenchmarkRecordBoot(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	facts := Facts{Platform: "efi", BuildArch: "x86_64", Manufacturer: "QEMU", Product: "Standard PC (Q35 + ICH9, 2009)"}
	defer reportCPU(b)()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sg := Sighting{Time: t0.Add(time.Duration(i) * time.Millisecond), IP: "198.51.100.10", Facts: facts}
		if _, _, err := s.RecordBoot(macN(i), sg, localDecision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordBootSameMAC: a machine that boots again and again (its
// history is trimmed at every boot).
func BenchmarkRecordBootSameMAC(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	m := macN(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sg := Sighting{Time: t0.Add(time.Duration(i) * time.Millisecond), IP: "198.51.100.10"}
		if _, _, err := s.RecordBoot(m, sg, localDecision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetReinstall: an admin write, fsynced before it returns, so this
// measures the disk's fsync as much as the store.
func BenchmarkSetReinstall(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	defer reportCPU(b)()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Sets 1,000 flags, clears them, sets them again…
		if _, err := s.SetReinstall(macN(i%1000), (i/1000)%2 == 0, t0); err != nil {
			b.Fatal(err)
		}
	}
}
