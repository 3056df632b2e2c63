package store

import (
	"sync/atomic"
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

// BenchmarkRecordBootStorm is bench/boot/run.sh's load without HTTP: 16
// concurrent boots, half of 10,000 known machines booting again, half new
// ones. cpu-ns/op is the whole process's CPU (Badger's writer, compactions
// and the collector included) per boot.
func BenchmarkRecordBootStorm(b *testing.B) {
	const known = 10000
	s := openT(b, b.TempDir(), Options{})
	facts := Facts{Platform: "pcbios", BuildArch: "x86_64", Manufacturer: "QEMU"}
	for i := 0; i < known; i++ {
		if _, _, err := s.RecordBoot(macN(i), Sighting{Time: t0, Facts: facts}, localDecision); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	defer reportCPU(b)()
	b.ReportAllocs()
	b.SetParallelism(8) // 16 goroutines on 2 CPUs, wrk's 16 connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			m := macN(known + i)
			if i%2 == 0 {
				m = macN(int(uint(i*7919) % known))
			}
			sg := Sighting{Time: t0.Add(time.Duration(i) * time.Microsecond), IP: "198.51.100.10", Facts: facts}
			if _, _, err := s.RecordBoot(m, sg, localDecision); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
