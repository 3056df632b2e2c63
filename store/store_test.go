package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// quiet keeps Badger's start-up chatter out of test output; errors still show.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openT(t testing.TB, dir string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustMAC(t testing.TB, s string) MAC {
	t.Helper()
	m, err := ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// macN is the i-th MAC of a test fleet, in QEMU's prefix.
func macN(i int) MAC {
	return MAC(fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)))
}

var t0 = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

// localDecision is httpapi's decision reduced to its lifecycle effect: a node
// waiting for a reinstall gets the installer (once), every other boots local.
func localDecision(n *Node) Event {
	if n.StartInstall(n.LastSeen.UTC(), "p", "default", "ipxe", "tok") {
		return Event{Decision: DecisionReinstall}
	}
	return Event{Decision: DecisionLocal}
}

func TestOpenEmptyPath(t *testing.T) {
	_, err := Open("", Options{Logger: quiet})
	if err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func TestSetReinstall(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := mustMAC(t, "52:54:00:00:00:01")

	if err := s.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if _, err := s.Get(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.SetReinstall(m, false, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("clearing an unknown node: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("clearing an unknown node created it: %v", err)
	}

	n, err := s.SetReinstall(m, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	if n.MAC != m || n.State != StateReinstall || !n.Reinstall || !n.CreatedAt.Equal(t0) || !n.StateChangedAt.Equal(t0) || n.LastSeen != nil {
		t.Fatalf("SetReinstall on unknown = %+v", n)
	}
	got, err := s.Get(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateReinstall || !got.Reinstall || got.MAC != m {
		t.Fatalf("Get after SetReinstall = %+v", got)
	}

	// Setting again changes nothing, not even the time of the change.
	n, err = s.SetReinstall(m, true, t0.Add(time.Minute))
	if err != nil || !n.StateChangedAt.Equal(t0) || !n.CreatedAt.Equal(t0) {
		t.Fatalf("second SetReinstall = %+v, %v", n, err)
	}

	n, err = s.SetReinstall(m, false, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateLocal || n.Reinstall || !n.StateChangedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("cleared = %+v", n)
	}
	if got, _ := s.Get(m); got.State != StateLocal || got.Reinstall {
		t.Fatalf("Get after clear = %+v", got)
	}

	// Clearing a node that is not waiting keeps its state: an installed
	// node stays installed.
	if _, err := s.MarkInstalled(m, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	n, err = s.SetReinstall(m, false, t0.Add(4*time.Minute))
	if err != nil || n.State != StateInstalled {
		t.Fatalf("clearing an installed node = %+v, %v", n, err)
	}
}

func TestListSortedAndCount(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	if nodes, err := s.List(); err != nil || nodes == nil || len(nodes) != 0 {
		t.Fatalf("List on empty store = %#v, %v; want an empty, non-nil slice (JSON [])", nodes, err)
	}
	// Inserted out of order, in every spelling.
	for _, in := range []string{"ff-00-00-00-00-01", "0A00.0000.0002", "52:54:00:00:00:03", "00:00:00:00:00:04", "525400000002"} {
		if _, err := s.SetReinstall(mustMAC(t, in), true, t0); err != nil {
			t.Fatal(err)
		}
	}
	nodes, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []MAC{"00:00:00:00:00:04", "0a:00:00:00:00:02", "52:54:00:00:00:02", "52:54:00:00:00:03", "ff:00:00:00:00:01"}
	if len(nodes) != len(want) {
		t.Fatalf("List has %d nodes, want %d", len(nodes), len(want))
	}
	for i, n := range nodes {
		if n.MAC != want[i] {
			t.Errorf("List[%d] = %s, want %s", i, n.MAC, want[i])
		}
	}

	if _, err := s.SetReinstall(want[1], false, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkInstalled(want[2], t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordBoot(want[3], Sighting{Time: t0}, localDecision); err != nil {
		t.Fatal(err)
	}
	c, err := s.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	wantC := map[State]int{StateReinstall: 2, StateLocal: 1, StateInstalled: 1, StateInstalling: 1}
	if len(c) != len(wantC) {
		t.Errorf("CountByState = %v, want %v", c, wantC)
	}
	for st, w := range wantC {
		if c[st] != w {
			t.Errorf("CountByState[%s] = %d, want %d (all: %v)", st, c[st], w, c)
		}
	}
}

func TestSetLocalBootScript(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := mustMAC(t, "52:54:00:00:00:05")
	n, err := s.SetLocalBootScript(m, "sanboot --no-describe --drive 0x81", t0)
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateLocal || n.LocalBootScript != "sanboot --no-describe --drive 0x81" {
		t.Fatalf("SetLocalBootScript on unknown = %+v", n)
	}
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	// The script is independent of the lifecycle.
	if got, _ := s.Get(m); got.LocalBootScript != "sanboot --no-describe --drive 0x81" || got.State != StateReinstall {
		t.Fatalf("after SetReinstall = %+v", got)
	}
	if n, err := s.SetLocalBootScript(m, "", t0); err != nil || n.LocalBootScript != "" || n.State != StateReinstall {
		t.Fatalf("restoring the default = %+v, %v", n, err)
	}
	if got, _ := s.Get(m); got.LocalBootScript != "" {
		t.Fatalf("Get after restoring the default = %+v", got)
	}
}

func TestMarkInstalled(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := mustMAC(t, "52:54:00:00:00:06")
	if _, err := s.MarkInstalled(m, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkInstalled on unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(m); !errors.Is(err, ErrNotFound) {
		t.Fatal("MarkInstalled on unknown created the node")
	}
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Second)}, localDecision); err != nil {
		t.Fatal(err)
	}
	n, err := s.MarkInstalled(m, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateInstalled || n.Reinstall || !n.StateChangedAt.Equal(t0.Add(time.Hour)) || n.InstallCount != 1 {
		t.Fatalf("MarkInstalled = %+v", n)
	}
	if got, _ := s.Get(m); got.State != StateInstalled {
		t.Fatalf("Get after MarkInstalled = %+v", got)
	}
	// An installer that came from elsewhere may call back while the flag is
	// still set: the node is installed and the flag is gone.
	m2 := mustMAC(t, "52:54:00:00:00:07")
	if _, err := s.SetReinstall(m2, true, t0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MarkInstalled(m2, t0); err != nil || n.State != StateInstalled || n.Reinstall {
		t.Fatalf("MarkInstalled from reinstall = %+v, %v", n, err)
	}
}

func TestDeleteRemovesNodeAndEvents(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m, other := mustMAC(t, "52:54:00:00:00:08"), mustMAC(t, "52:54:00:00:00:09")
	if err := s.Delete(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete unknown: %v, want ErrNotFound", err)
	}
	for i := 0; i < 3; i++ {
		for _, mm := range []MAC{m, other} {
			if _, _, err := s.RecordBoot(mm, Sighting{Time: t0.Add(time.Duration(i) * time.Second), IP: "203.0.113.9"}, localDecision); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Delete(m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := s.Events(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Events after Delete: %v", err)
	}
	if err := s.Delete(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	// No event key of the deleted node is left behind: a node re-learnt
	// under the same MAC starts with an empty history.
	// Same instant as a deleted event: its key has a live version, a
	// tombstone, and now a live version again.
	if n, _, err := s.RecordBoot(m, Sighting{Time: t0}, localDecision); err != nil || n.BootCount != 1 {
		t.Fatalf("re-learnt node = %+v, %v", n, err)
	}
	if ev, err := s.Events(m); err != nil || len(ev) != 1 {
		t.Fatalf("events of the re-learnt node = %+v, %v; want one", ev, err)
	}
	// The neighbour is untouched.
	if ev, err := s.Events(other); err != nil || len(ev) != 3 {
		t.Fatalf("events of the other node = %d, %v; want 3", len(ev), err)
	}
	if nodes, _ := s.List(); len(nodes) != 2 {
		t.Fatalf("List after Delete and re-learn has %d nodes", len(nodes))
	}
}

func TestEventsNewestFirstAndTrimmed(t *testing.T) {
	const history = 5
	s := openT(t, t.TempDir(), Options{History: history})
	m := mustMAC(t, "52:54:00:00:00:0a")
	if _, err := s.Events(m); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Events of unknown: %v, want ErrNotFound", err)
	}
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	if ev, err := s.Events(m); err != nil || ev == nil || len(ev) != 0 {
		t.Fatalf("Events of a node never booted = %#v, %v; want empty, non-nil", ev, err)
	}
	const boots = 12
	for i := 0; i < boots; i++ {
		sg := Sighting{Time: t0.Add(time.Duration(i) * time.Minute), IP: fmt.Sprintf("203.0.113.%d", 10+i)}
		if _, _, err := s.RecordBoot(m, sg, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Events(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != history {
		t.Fatalf("Events has %d, want the last %d", len(ev), history)
	}
	for i, e := range ev {
		k := boots - 1 - i
		if !e.Time.Equal(t0.Add(time.Duration(k)*time.Minute)) || e.IP != fmt.Sprintf("203.0.113.%d", 10+k) || e.Decision != DecisionLocal {
			t.Errorf("Events[%d] = %+v, want boot %d", i, e, k)
		}
	}
	// The installer boot was the first: trimmed away, but the node keeps
	// the count.
	if n, _ := s.Get(m); n.BootCount != boots || n.InstallCount != 1 {
		t.Fatalf("node = %+v", n)
	}

	// Default history is 20.
	s2 := openT(t, t.TempDir(), Options{})
	for i := 0; i < 25; i++ {
		if _, _, err := s2.RecordBoot(m, Sighting{Time: t0.Add(time.Duration(i) * time.Second)}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	if ev, err := s2.Events(m); err != nil || len(ev) != 20 || !ev[0].Time.Equal(t0.Add(24*time.Second)) {
		t.Fatalf("default history: %d events (newest %v), %v", len(ev), ev[0].Time, err)
	}
}

func TestRecordBootLifecycle(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := mustMAC(t, "52:54:00:00:00:0b")

	// Unknown machine: created, boots local.
	full := Facts{Platform: "pcbios", BuildArch: "i386", UUID: "8b4ad8b6-0f2e-4d3c-9a53-5c6f3e0f9a11", Serial: "SN123", Manufacturer: "QEMU", Product: "Standard PC"}
	n, ev, err := s.RecordBoot(m, Sighting{Time: t0, IP: "203.0.113.20", Facts: full}, localDecision)
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateLocal || n.BootCount != 1 || n.LastIP != "203.0.113.20" || n.Facts != full || n.LastSeen == nil || !n.LastSeen.Equal(t0) || !n.CreatedAt.Equal(t0) {
		t.Fatalf("first boot = %+v", n)
	}
	if ev.Decision != DecisionLocal || !ev.Time.Equal(t0) || ev.IP != "203.0.113.20" {
		t.Fatalf("first event = %+v", ev)
	}

	if _, err := s.SetReinstall(m, true, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	// The next boot serves the installer: the flag is consumed.
	t2 := t0.Add(2 * time.Minute)
	n, ev, err = s.RecordBoot(m, Sighting{Time: t2, IP: "203.0.113.21", Facts: Facts{Platform: "efi", BuildArch: "x86_64"}}, localDecision)
	if err != nil {
		t.Fatal(err)
	}
	wantFacts := full
	wantFacts.Platform, wantFacts.BuildArch = "efi", "x86_64"
	if n.State != StateInstalling || n.Reinstall || n.InstallCount != 1 || n.BootCount != 2 || n.LastIP != "203.0.113.21" || !n.StateChangedAt.Equal(t2) || !n.LastSeen.Equal(t2) {
		t.Fatalf("installer boot = %+v", n)
	}
	if n.Facts != wantFacts {
		t.Fatalf("facts after a partial report = %+v, want %+v (empty facts must not erase known ones)", n.Facts, wantFacts)
	}
	if ev.Decision != DecisionReinstall {
		t.Fatalf("installer event = %+v", ev)
	}
	if got, _ := s.Get(m); got.State != StateInstalling || got.InstallCount != 1 || got.Facts != wantFacts {
		t.Fatalf("stored after installer boot = %+v", got)
	}

	// One-shot: the installer reboots the machine, which now boots local,
	// however often it comes back. A boot without an IP keeps the last one.
	for i := 0; i < 3; i++ {
		n, ev, err = s.RecordBoot(m, Sighting{Time: t2.Add(time.Duration(i+1) * time.Minute)}, localDecision)
		if err != nil {
			t.Fatal(err)
		}
		if n.State != StateInstalling || n.InstallCount != 1 || ev.Decision != DecisionLocal {
			t.Fatalf("boot %d after the installer = %+v, %+v", i, n, ev)
		}
	}
	if n.BootCount != 5 || n.LastIP != "203.0.113.21" || n.Facts != wantFacts || !n.StateChangedAt.Equal(t2) {
		t.Fatalf("after five boots = %+v", n)
	}

	// The installer calls back; a new request goes round again.
	if _, err := s.MarkInstalled(m, t2.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetReinstall(m, true, t2.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, ev, err = s.RecordBoot(m, Sighting{Time: t2.Add(3 * time.Hour)}, localDecision)
	if err != nil || n.State != StateInstalling || n.InstallCount != 2 || ev.Decision != DecisionReinstall {
		t.Fatalf("second reinstall = %+v, %+v, %v", n, ev, err)
	}

	events, err := s.Events(m)
	if err != nil {
		t.Fatal(err)
	}
	var decisions []string
	for _, e := range events {
		decisions = append(decisions, e.Type+e.Decision) // a boot has no Type, a report no Decision
	}
	if fmt.Sprint(decisions) != "[reinstall installed local local local reinstall local]" {
		t.Fatalf("decisions newest first = %v", decisions)
	}
}

// A decide that says "error" (the appliance cannot serve the installer)
// leaves the flag set, and its reason is kept in the event.
func TestRecordBootKeepsFlagWhenNotServed(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	m := mustMAC(t, "52:54:00:00:00:0c")
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	n, ev, err := s.RecordBoot(m, Sighting{Time: t0.Add(time.Second), IP: "203.0.113.5"}, func(n *Node) Event {
		return Event{Decision: DecisionError, Reason: "reinstall requested but PXE_UBUNTU_KERNEL_URL is unset"}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.State != StateReinstall || !n.Reinstall || n.InstallCount != 0 || n.BootCount != 1 {
		t.Fatalf("node = %+v", n)
	}
	evs, _ := s.Events(m)
	if len(evs) != 1 || evs[0] != ev || ev.Reason == "" || ev.IP != "203.0.113.5" {
		t.Fatalf("events = %+v (returned %+v)", evs, ev)
	}
}

// Many requests for one machine at once (a firmware retrying, a BMC and the
// machine itself, a load balancer's health check): every boot is counted,
// the flag is consumed exactly once, and Badger's conflict errors never reach
// the caller.
func TestRecordBootConcurrentSameMAC(t *testing.T) {
	const (
		workers = 16
		each    = 8
	)
	s := openT(t, t.TempDir(), Options{History: workers * each})
	m := mustMAC(t, "52:54:00:00:00:0d")
	if _, err := s.SetReinstall(m, true, t0); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		installs int
	)
	start := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < each; i++ {
				// Distinct times: events are keyed by time.
				sg := Sighting{Time: t0.Add(time.Duration(1+w*each+i) * time.Millisecond), IP: fmt.Sprintf("203.0.113.%d", w+1)}
				_, ev, err := s.RecordBoot(m, sg, localDecision)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if ev.Decision == DecisionReinstall {
					installs++
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("RecordBoot: %v", err)
	}
	n, err := s.Get(m)
	if err != nil {
		t.Fatal(err)
	}
	if n.BootCount != workers*each {
		t.Errorf("BootCount = %d, want %d", n.BootCount, workers*each)
	}
	if n.InstallCount != 1 || installs != 1 || n.State != StateInstalling {
		t.Errorf("installer served %d times (node says %d, state %s), want exactly once", installs, n.InstallCount, n.State)
	}
	if ev, err := s.Events(m); err != nil || len(ev) != workers*each {
		t.Errorf("%d events, %v; want %d", len(ev), err, workers*each)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	m := mustMAC(t, "52:54:00:00:00:0e")
	if err := s.Ping(); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	if _, err := s.SetReinstall(m, true, t0); !errors.Is(err, ErrClosed) {
		t.Errorf("SetReinstall after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.RecordBoot(m, Sighting{Time: t0}, localDecision); !errors.Is(err, ErrClosed) {
		t.Errorf("RecordBoot after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Get(m); err == nil {
		t.Errorf("Get after Close succeeded")
	}
	if _, err := s.List(); err == nil {
		t.Errorf("List after Close succeeded")
	}
}

// Two boots of one machine in the same clock tick are two events.
func TestRecordBootSameInstant(t *testing.T) {
	s := openT(t, t.TempDir(), Options{History: 3})
	m := mustMAC(t, "52:54:00:00:00:0f")
	for i := 0; i < 5; i++ {
		if _, _, err := s.RecordBoot(m, Sighting{Time: t0, IP: fmt.Sprintf("203.0.113.%d", i)}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Events(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 3 || ev[0].IP != "203.0.113.4" || ev[2].IP != "203.0.113.2" {
		t.Fatalf("events = %+v; want the last three boots, newest first", ev)
	}
	if n, _ := s.Get(m); n.BootCount != 5 {
		t.Fatalf("BootCount = %d", n.BootCount)
	}
}

// After the clock steps backwards (NTP correcting a machine that booted with
// a wrong RTC), the boot recorded last is still the newest event and is not
// the one trimmed away.
func TestRecordBootClockStepsBack(t *testing.T) {
	s := openT(t, t.TempDir(), Options{History: 2})
	m := mustMAC(t, "52:54:00:00:00:10")
	for i, at := range []time.Time{t0.Add(2 * time.Hour), t0.Add(3 * time.Hour), t0} {
		if _, _, err := s.RecordBoot(m, Sighting{Time: at, IP: fmt.Sprintf("203.0.113.%d", i)}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := s.Events(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2 || ev[0].IP != "203.0.113.2" || !ev[0].Time.Equal(t0) || ev[1].IP != "203.0.113.1" {
		t.Fatalf("events = %+v; want the boot at %v first, then the one before it", ev, t0)
	}
}

// TestSizing: PXE_STORE_SIZING reaches Badger, and a database may switch
// between the sizings (memtables, write-ahead logs and tables of the other
// size are read as they are) without losing anything.
func TestSizing(t *testing.T) {
	dir := t.TempDir()
	want := map[MAC]bool{}
	for i, sz := range []Sizing{SizingSmall, SizingLarge, SizingSmall} {
		s, err := Open(dir, Options{Logger: quiet, Sizing: sz})
		if err != nil {
			t.Fatalf("open #%d, sizing %d: %v", i, sz, err)
		}
		mt := map[Sizing]int64{SizingSmall: 1 << 20, SizingLarge: 8 << 20}[sz]
		if got := s.db.Opts().MemTableSize; got != mt {
			t.Errorf("sizing %d: memtables of %d bytes, want %d", sz, got, mt)
		}
		for m, on := range want {
			n, err := s.Get(m)
			if err != nil || n.Reinstall != on {
				t.Errorf("open #%d: %s = %+v, %v; want reinstall %v", i, m, n, err, on)
			}
		}
		for j := 0; j < 2000; j++ {
			m := macN(i*2000 + j)
			if _, _, err := s.RecordBoot(m, Sighting{Time: t0}, localDecision); err != nil {
				t.Fatal(err)
			}
			want[m] = false
			if j%2 == 0 {
				if _, err := s.SetReinstall(m, true, t0); err != nil {
					t.Fatal(err)
				}
				want[m] = true
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"small", "large"} {
		if sz, err := ParseSizing(v); err != nil || map[string]Sizing{"small": SizingSmall, "large": SizingLarge}[v] != sz {
			t.Errorf("ParseSizing(%q) = %d, %v", v, sz, err)
		}
	}
	if _, err := ParseSizing("huge"); err == nil || !strings.Contains(err.Error(), `"huge"`) {
		t.Errorf("ParseSizing(huge): %v", err)
	}
	if s, err := Open(t.TempDir(), Options{Logger: quiet, Sizing: 7}); err == nil || !strings.Contains(err.Error(), "sizing 7") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open with sizing 7: %v", err)
	}
}
