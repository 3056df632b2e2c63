package store

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The appliance budget: 1,000 nodes with their history take under 20 MiB
// of disk once the store is closed. Badger's untuned defaults would leave a
// 1 GiB (sparse) value log and 64 MiB memtables; see tunedOptions.
func TestDiskSizeThousandNodes(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		m := macN(i)
		if i%2 == 0 {
			if _, err := s.SetReinstall(m, true, t0); err != nil {
				t.Fatal(err)
			}
		}
		for b := 0; b < 3; b++ {
			sg := Sighting{Time: t0.Add(time.Duration(b) * time.Minute), IP: "198.51.100.7",
				Facts: Facts{Platform: "efi", BuildArch: "x86_64", UUID: fmt.Sprintf("4c4c4544-0042-3510-8051-%012x", i),
					Serial: fmt.Sprintf("SN%08d", i), Manufacturer: "Dell Inc.", Product: "PowerEdge R650"}}
			if _, _, err := s.RecordBoot(m, sg, localDecision); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var allocated, apparent int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		apparent += fi.Size()
		allocated += fi.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1,000 nodes after Close: %d KiB allocated (du), %d KiB apparent", allocated>>10, apparent>>10)
	const budget = 20 << 20
	if allocated > budget || apparent > budget {
		t.Fatalf("1,000 nodes take %d KiB allocated, %d KiB apparent; budget is %d KiB", allocated>>10, apparent>>10, budget>>10)
	}

	// And they are all there.
	s = openT(t, dir, Options{})
	c, err := s.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	if c[StateInstalling] != 500 || c[StateLocal] != 500 {
		t.Fatalf("CountByState after reopen = %v", c)
	}
}
