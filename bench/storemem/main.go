// Command storemem measures what the store costs an appliance: it opens a
// fresh store in a temporary directory, creates 1,000 nodes (reinstall set on
// half, three boots each with hardware facts), then prints the process's peak
// and current resident memory (VmHWM, VmRSS from /proc/self/status) and,
// after Close, the directory's size on disk as du counts it (allocated
// blocks: Badger's files are sparse while open).
//
// The budget (issue: appliance sizing): whole process under 64 MiB RSS,
// under 20 MiB on disk after close.
//
//	go run ./bench/storemem [-nodes 1000] [-dir DIR] [-memprofile FILE]
//
// -memprofile writes a heap profile after the run (every allocation sampled:
// go tool pprof -sample_index=alloc_space shows where the bytes came from,
// the peaks included).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

func main() {
	nodes := flag.Int("nodes", 1000, "number of nodes to create")
	dir := flag.String("dir", "", "database directory (default: a new temporary directory, removed afterwards)")
	memprofile := flag.String("memprofile", "", "write a heap profile of the run to this file")
	flag.Parse()
	if *memprofile != "" {
		runtime.MemProfileRate = 4096
	}
	err := run(*nodes, *dir)
	if err == nil && *memprofile != "" {
		err = writeHeapProfile(*memprofile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "storemem:", err)
		os.Exit(1)
	}
}

func run(nodes int, dir string) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "storemem-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp + "/pxe.db"
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := store.Open(dir, store.Options{Logger: log})
	if err != nil {
		return err
	}
	start := time.Now()
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	for i := 0; i < nodes; i++ {
		m := store.MAC(fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i)))
		if i%2 == 0 {
			if _, err := s.SetReinstall(m, true, now); err != nil {
				return err
			}
		}
		for b := 0; b < 3; b++ {
			sg := store.Sighting{
				Time: now.Add(time.Duration(b) * time.Minute),
				IP:   fmt.Sprintf("198.51.100.%d", 1+i%250),
				Facts: store.Facts{Platform: "efi", BuildArch: "x86_64",
					UUID:   fmt.Sprintf("4c4c4544-0042-3510-8051-%012x", i),
					Serial: fmt.Sprintf("SN%08d", i), Manufacturer: "Dell Inc.", Product: "PowerEdge R650"},
			}
			if _, _, err := s.RecordBoot(m, sg, decide); err != nil {
				return err
			}
		}
	}
	elapsed := time.Since(start)
	if _, err := s.List(); err != nil { // a full scan, as GET /nodes does
		return err
	}
	hwm, rss := status("VmHWM"), status("VmRSS")
	if err := s.Close(); err != nil {
		return err
	}
	du, err := exec.Command("du", "-sk", dir).Output()
	if err != nil {
		return fmt.Errorf("du: %w", err)
	}
	kib := strings.Fields(string(du))[0]
	fmt.Printf("nodes %d, %d writes in %v\n", nodes, nodes/2+3*nodes, elapsed.Round(time.Millisecond))
	fmt.Printf("VmHWM %s\nVmRSS %s\n", hwm, rss)
	fmt.Printf("disk after close: %s KiB (du -sk)\n", kib)
	return nil
}

// decide is httpapi's decision reduced to its lifecycle effect.
func decide(n *store.Node) store.Event {
	if n.StartInstall(*n.LastSeen, "default", "default", "ipxe", "t") {
		return store.Event{Decision: store.DecisionReinstall}
	}
	return store.Event{Decision: store.DecisionLocal}
}

func status(key string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
