package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSyncWALLeavesNoDirtyPage checks syncWAL against the kernel: Badger
// writes its logs through shared mappings of this process, and
// /proc/self/smaps counts, per mapping, the pages written since they last
// reached the disk. Boots are not synced when they are recorded (the sync
// loop is set to an hour here), so the logs' pages are dirty before
// syncWAL, and none may be after it; a syncWAL that missed a log, or
// synced the wrong files, leaves them dirty. It runs through a memtable
// switch, so a full memtable waiting for its flush is covered too.
func TestSyncWALLeavesNoDirtyPage(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{SyncInterval: time.Hour})
	for round := 0; round < 3; round++ {
		// About 0.7 MiB of records a round, so the 1 MiB memtables fill up.
		for i := 0; i < 2000; i++ {
			m := mustMAC(t, fmt.Sprintf("52:54:%02x:00:%02x:%02x", round, i>>8, i&0xff))
			sg := Sighting{Time: time.Now(), IP: "203.0.113.7", Facts: Facts{Serial: strings.Repeat("s", 100), Product: strings.Repeat("p", 100)}}
			if _, _, err := s.RecordBoot(m, sg, func(*Node) Event { return Event{Decision: DecisionLocal} }); err != nil {
				t.Fatal(err)
			}
		}
		before := dirtyLogKiB(t, dir)
		if before == 0 {
			t.Fatalf("round %d: no dirty page in Badger's logs after 2,000 unsynced boots; the test cannot tell a sync from none (smaps: %s)", round, logMappings(t, dir))
		}
		if err := s.syncWAL(); err != nil {
			t.Fatal(err)
		}
		if after := dirtyLogKiB(t, dir); after != 0 {
			t.Fatalf("round %d: %d KiB of Badger's logs still dirty after syncWAL (%d KiB before): %s", round, after, before, logMappings(t, dir))
		}
	}
}

// dirtyLogKiB sums Private_Dirty and Shared_Dirty over this process's
// mappings of *.mem and *.vlog files in dir.
func dirtyLogKiB(t *testing.T, dir string) int {
	t.Helper()
	total := 0
	for _, m := range smapsOf(t, dir) {
		total += m.dirty
	}
	return total
}

func logMappings(t *testing.T, dir string) string {
	var b strings.Builder
	for _, m := range smapsOf(t, dir) {
		fmt.Fprintf(&b, "%s dirty %d KiB; ", filepath.Base(m.path), m.dirty)
	}
	return b.String()
}

type mapping struct {
	path  string
	dirty int // KiB
}

func smapsOf(t *testing.T, dir string) []mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("this test reads the kernel's page accounting: %v", err)
	}
	defer f.Close()
	var (
		out []mapping
		cur *mapping
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: range perms offset dev inode [path].
			cur = nil
			if len(fields) >= 6 && filepath.Dir(fields[5]) == dir && (strings.HasSuffix(fields[5], ".mem") || strings.HasSuffix(fields[5], ".vlog")) {
				out = append(out, mapping{path: fields[5]})
				cur = &out[len(out)-1]
			}
			continue
		}
		if cur != nil && (fields[0] == "Private_Dirty:" || fields[0] == "Shared_Dirty:") && len(fields) >= 2 {
			n, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatalf("smaps line %q: %v", sc.Text(), err)
			}
			cur.dirty += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no mapping of a Badger log in %s found in /proc/self/smaps", dir)
	}
	return out
}
