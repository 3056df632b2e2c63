package storetest

import (
	"strconv"
	"sync"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/store"
)

func testRecordBoot(t *testing.T, b store.Backend) {
	m := MAC(8)
	sg := store.Sighting{Time: at(1), IP: "198.51.100.20", Facts: store.Facts{Platform: "efi", Serial: "S1"}}
	n, ev, err := b.RecordBoot(m, sg, localBoot)
	if err != nil {
		t.Fatalf("RecordBoot of a new node: %v", err)
	}
	if n.BootCount != 1 || n.LastSeen == nil || !n.LastSeen.Equal(at(1)) || n.LastIP != "198.51.100.20" ||
		n.State != store.StateLocal || !n.CreatedAt.Equal(at(1)) || n.Facts.Serial != "S1" {
		t.Errorf("node after its first boot = %+v", n)
	}
	same(t, "first boot event", ev, store.Event{Time: at(1), IP: "198.51.100.20", Decision: store.DecisionLocal, State: store.StateLocal})
	same(t, "Get after RecordBoot", must[store.Node](t, "Get")(b.Get(m)), n)

	// A later boot that tells less keeps what the node told before.
	n, _, err = b.RecordBoot(m, store.Sighting{Time: at(2), Facts: store.Facts{Platform: "efi"}}, localBoot)
	if err != nil {
		t.Fatalf("second RecordBoot: %v", err)
	}
	if n.BootCount != 2 || n.Facts.Serial != "S1" || n.LastIP != "198.51.100.20" || !n.LastSeen.Equal(at(2)) {
		t.Errorf("node after a second boot = %+v, want boot count 2, serial and IP kept", n)
	}

	// decide sees the node as stored, boot bookkeeping applied.
	must[store.Node](t, "SetReinstall")(b.SetReinstall(m, true, at(3)))
	var seen store.Node
	n, ev, err = b.RecordBoot(m, store.Sighting{Time: at(4)}, func(nd *store.Node) store.Event {
		seen = *nd
		return installOnce(at(4))(nd)
	})
	if err != nil {
		t.Fatalf("RecordBoot that installs: %v", err)
	}
	if seen.BootCount != 3 || seen.State != store.StateReinstall {
		t.Errorf("decide saw %+v, want boot count 3 in state reinstall", seen)
	}
	if n.State != store.StateInstalling || n.InstallCount != 1 || n.Install == nil || n.Install.Token != "token-"+string(m) {
		t.Errorf("node after the installing boot = %+v", n)
	}
	if ev.Decision != store.DecisionReinstall || ev.State != store.StateInstalling {
		t.Errorf("installing boot event = %+v", ev)
	}
	same(t, "Get after the installing boot", must[store.Node](t, "Get")(b.Get(m)), n)
}

func testEvents(t *testing.T, b store.Backend) {
	m := MAC(9)
	// More boots than the history keeps, all in one clock tick: none may
	// overwrite another, and the oldest go.
	const boots = History + 4
	for i := 0; i < boots; i++ {
		if _, _, err := b.RecordBoot(m, store.Sighting{Time: at(1)}, func(*store.Node) store.Event {
			return store.Event{Decision: store.DecisionLocal, Reason: "boot " + strconv.Itoa(i)}
		}); err != nil {
			t.Fatalf("RecordBoot %d: %v", i, err)
		}
	}
	ev := must[[]store.Event](t, "Events")(b.Events(m))
	if len(ev) != History {
		t.Fatalf("Events after %d boots: %d, want the last %d", boots, len(ev), History)
	}
	for k, e := range ev {
		if want := "boot " + strconv.Itoa(boots-1-k); e.Reason != want {
			t.Errorf("Events()[%d] = %q, want %q (newest first)", k, e.Reason, want)
		}
	}
	// Events of one node stay its own.
	must[store.Node](t, "RecordBoot other")(firstNode(b.RecordBoot(MAC(10), store.Sighting{Time: at(2)}, localBoot)))
	if ev := must[[]store.Event](t, "Events other")(b.Events(MAC(10))); len(ev) != 1 {
		t.Errorf("Events of a node booted once = %d events", len(ev))
	}
	if ev := must[[]store.Event](t, "Events")(b.Events(m)); len(ev) != History {
		t.Errorf("Events after another node booted = %d", len(ev))
	}
}

// Boots is how many concurrent boots race for one reinstall flag.
const Boots = 200

func testOneShot(t *testing.T, b store.Backend) {
	m := MAC(11)
	must[store.Node](t, "SetReinstall")(b.SetReinstall(m, true, at(1)))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		installs int
		errs     []error
	)
	for i := 0; i < Boots; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ev, err := b.RecordBoot(m, store.Sighting{Time: at(2 + i)}, installOnce(at(2+i)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if ev.Decision == store.DecisionReinstall {
				installs++
			}
		}()
	}
	wg.Wait()
	for _, err := range errs[:min(len(errs), 3)] {
		t.Errorf("RecordBoot: %v", err)
	}
	if installs != 1 {
		t.Errorf("%d concurrent boots of a node marked for reinstall served %d installs, want exactly 1", Boots, installs)
	}
	n := must[store.Node](t, "Get")(b.Get(m))
	if n.InstallCount != 1 || n.State != store.StateInstalling || n.BootCount != Boots-uint64(len(errs)) {
		t.Errorf("node after the race = state %s, install count %d, boot count %d; want installing, 1, %d",
			n.State, n.InstallCount, n.BootCount, Boots-len(errs))
	}
}

func testInstalling(t *testing.T, b store.Backend) {
	for i := 20; i < 24; i++ {
		must[store.Node](t, "SetReinstall")(b.SetReinstall(MAC(i), true, at(1)))
	}
	for i := 20; i < 23; i++ {
		must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(MAC(i), store.Sighting{Time: at(2)}, installOnce(at(2)))))
	}
	must[store.Node](t, "MarkInstalled")(b.MarkInstalled(MAC(22), at(3))) // no longer installing
	got := map[store.MAC]bool{}
	if err := b.Installing(func(n store.Node) bool {
		if n.State != store.StateInstalling {
			t.Errorf("Installing gave %s in state %s", n.MAC, n.State)
		}
		got[n.MAC] = true
		return true
	}); err != nil {
		t.Fatalf("Installing: %v", err)
	}
	if len(got) != 2 || !got[MAC(20)] || !got[MAC(21)] {
		t.Errorf("Installing gave %v, want %s and %s", got, MAC(20), MAC(21))
	}
	calls := 0
	if err := b.Installing(func(store.Node) bool { calls++; return false }); err != nil || calls != 1 {
		t.Errorf("Installing whose fn returns false: %d calls, %v; want 1 call", calls, err)
	}
}
