// Package storetest is the conformance suite every store.Backend passes:
// the Badger store (package store) and the etcd store (store/etcdstore)
// run the same tests, so the servers above them can take either.
//
// A backend's test calls Run with a function that opens a fresh, empty
// backend whose history keeps History events per node:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend {
//			st, err := store.Open(t.TempDir(), store.Options{History: storetest.History})
//			…
//			t.Cleanup(func() { st.Close() })
//			return st
//		})
//	}
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// History is the number of events per node the backends under test keep.
const History = 5

// T0 is the suite's clock origin.
var T0 = time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)

// Run runs every conformance test, each on a fresh backend from open.
func Run(t *testing.T, open func(t *testing.T) store.Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Backend)
	}{
		{"NotFound", testNotFound},
		{"SetReinstall", testSetReinstall},
		{"SetLocalBootScript", testSetLocalBootScript},
		{"MarkInstalled", testMarkInstalled},
		{"Update", testUpdate},
		{"Delete", testDelete},
		{"List", testList},
		{"ListPage", testListPage},
		{"ListPageFilters", testListPageFilters},
		{"RecordBoot", testRecordBoot},
		{"Events", testEvents},
		{"OneShotReinstall", testOneShot},
		{"Installing", testInstalling},
		{"CountByState", testCountByState},
		{"Subscribe", testSubscribe},
		{"Ping", testPing},
		{"ForgetIdle", testForgetIdle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// MAC is the i-th test MAC address.
func MAC(i int) store.MAC {
	return store.MAC(fmt.Sprintf("52:54:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i)))
}

// at is T0 plus i seconds.
func at(i int) time.Time { return T0.Add(time.Duration(i) * time.Second) }

// same compares two values by their JSON form, which is what every
// backend stores (time zones and monotonic readings aside).
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// localBoot is a decide function that never installs.
func localBoot(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }

// installOnce is a decide function that consumes the reinstall flag.
func installOnce(now time.Time) func(*store.Node) store.Event {
	return func(n *store.Node) store.Event {
		if n.StartInstall(now, "ubuntu", "default", "ipxe", "token-"+string(n.MAC)) {
			return store.Event{Decision: store.DecisionReinstall, Profile: "ubuntu"}
		}
		return store.Event{Decision: store.DecisionLocal}
	}
}

func testNotFound(t *testing.T, b store.Backend) {
	m := MAC(1)
	checks := map[string]error{}
	_, checks["Get"] = b.Get(m)
	_, checks["Events"] = b.Events(m)
	checks["Delete"] = b.Delete(m)
	_, checks["SetReinstall(off)"] = b.SetReinstall(m, false, at(0))
	_, checks["MarkInstalled"] = b.MarkInstalled(m, at(0))
	called := false
	_, checks["Update(create=false)"] = b.Update(m, false, at(0), func(*store.Node) (*store.Event, error) {
		called = true
		return nil, nil
	})
	for op, err := range checks {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of an unknown node: %v, want ErrNotFound", op, err)
		}
	}
	if called {
		t.Error("Update(create=false) called fn for an unknown node")
	}
	if nodes, err := b.List(); err != nil || len(nodes) != 0 {
		t.Errorf("List after only failed writes: %d nodes, %v; want none", len(nodes), err)
	}
}

func testSetReinstall(t *testing.T, b store.Backend) {
	m := MAC(2)
	n := must[store.Node](t, "SetReinstall(on)")(b.SetReinstall(m, true, at(1)))
	if n.State != store.StateReinstall || !n.Reinstall || n.MAC != m || !n.CreatedAt.Equal(at(1)) {
		t.Errorf("SetReinstall(on) of a new node = %+v, want state reinstall, created at %s", n, at(1))
	}
	same(t, "Get after SetReinstall", must[store.Node](t, "Get")(b.Get(m)), n)
	n = must[store.Node](t, "SetReinstall(off)")(b.SetReinstall(m, false, at(2)))
	if n.State != store.StateLocal || n.Reinstall || !n.StateChangedAt.Equal(at(2)) {
		t.Errorf("SetReinstall(off) = %+v, want state local changed at %s", n, at(2))
	}
	// Clearing a node that waits for nothing leaves it as it is.
	n = must[store.Node](t, "SetReinstall(off) again")(b.SetReinstall(m, false, at(3)))
	if n.State != store.StateLocal || !n.StateChangedAt.Equal(at(2)) {
		t.Errorf("second SetReinstall(off) = %+v, want unchanged local", n)
	}
	same(t, "Get after SetReinstall(off)", must[store.Node](t, "Get")(b.Get(m)), n)
}

func testSetLocalBootScript(t *testing.T, b store.Backend) {
	m := MAC(3)
	n := must[store.Node](t, "SetLocalBootScript")(b.SetLocalBootScript(m, "sanboot --drive 0x81", at(1)))
	if n.LocalBootScript != "sanboot --drive 0x81" || n.State != store.StateLocal {
		t.Errorf("SetLocalBootScript of a new node = %+v", n)
	}
	same(t, "Get", must[store.Node](t, "Get")(b.Get(m)), n)
	n = must[store.Node](t, "SetLocalBootScript(\"\")")(b.SetLocalBootScript(m, "", at(2)))
	if n.LocalBootScript != "" {
		t.Errorf("SetLocalBootScript(\"\") kept %q", n.LocalBootScript)
	}
	same(t, "Get after reset", must[store.Node](t, "Get")(b.Get(m)), n)
}

func testMarkInstalled(t *testing.T, b store.Backend) {
	m := MAC(4)
	must[store.Node](t, "SetReinstall")(b.SetReinstall(m, true, at(1)))
	must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(m, store.Sighting{Time: at(2)}, installOnce(at(2)))))
	n := must[store.Node](t, "MarkInstalled")(b.MarkInstalled(m, at(3)))
	if n.State != store.StateInstalled || n.Install == nil || n.Install.Outcome != store.EventInstalled {
		t.Errorf("MarkInstalled of an installing node = %+v, want installed with outcome installed", n)
	}
	same(t, "Get", must[store.Node](t, "Get")(b.Get(m)), n)
	ev := must[[]store.Event](t, "Events")(b.Events(m))
	if len(ev) != 2 || ev[0].Type != store.EventInstalled || ev[0].State != store.StateInstalled {
		t.Errorf("events after MarkInstalled = %+v, want the installed event first, then the boot", ev)
	}
}

func firstNode(n store.Node, _ store.Event, err error) (store.Node, error) { return n, err }

func testUpdate(t *testing.T, b store.Backend) {
	m := MAC(5)
	n := must[store.Node](t, "Update(create)")(b.Update(m, true, at(1), func(n *store.Node) (*store.Event, error) {
		n.Hostname = "web-1"
		n.Labels = map[string]string{"rack": "r1"}
		return &store.Event{Type: store.EventAdmin, Reason: "hostname set"}, nil
	}))
	if n.Hostname != "web-1" || n.State != store.StateLocal {
		t.Errorf("Update(create) = %+v", n)
	}
	same(t, "Get", must[store.Node](t, "Get")(b.Get(m)), n)
	ev := must[[]store.Event](t, "Events")(b.Events(m))
	want := []store.Event{{Time: at(1), Type: store.EventAdmin, Reason: "hostname set", State: store.StateLocal}}
	same(t, "events after Update", ev, want)

	// An error from fn changes nothing and comes back as it is.
	boom := errors.New("boom")
	_, err := b.Update(m, false, at(2), func(n *store.Node) (*store.Event, error) {
		n.Hostname = "changed"
		return &store.Event{Type: store.EventAdmin}, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update whose fn failed: %v, want fn's error", err)
	}
	same(t, "node after a failed Update", must[store.Node](t, "Get")(b.Get(m)), n)
	same(t, "events after a failed Update", must[[]store.Event](t, "Events")(b.Events(m)), want)

	// No event: the node changes, the history does not.
	n = must[store.Node](t, "Update")(b.Update(m, false, at(3), func(n *store.Node) (*store.Event, error) {
		n.Profile = "debian"
		return nil, nil
	}))
	same(t, "Get after Update without event", must[store.Node](t, "Get")(b.Get(m)), n)
	same(t, "events after Update without event", must[[]store.Event](t, "Events")(b.Events(m)), want)
}

func testDelete(t *testing.T, b store.Backend) {
	m, other := MAC(6), MAC(7)
	must[store.Node](t, "SetReinstall")(b.SetReinstall(m, true, at(1)))
	must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(m, store.Sighting{Time: at(2)}, installOnce(at(2)))))
	must[store.Node](t, "SetReinstall other")(b.SetReinstall(other, true, at(3)))
	if err := b.Delete(m); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Get(m); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := b.Events(m); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Events after Delete: %v, want ErrNotFound", err)
	}
	if err := b.Delete(m); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	checkCounts(t, b)
	if c := must[map[store.State]int](t, "CountByState")(b.CountByState()); c[store.StateInstalling] != 0 || c[store.StateReinstall] != 1 {
		t.Errorf("CountByState after Delete = %v, want reinstall:1 only", c)
	}
	b.Installing(func(n store.Node) bool {
		t.Errorf("Installing lists deleted node %s", n.MAC)
		return true
	})
	// A node learnt again starts a fresh history.
	must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(m, store.Sighting{Time: at(4)}, localBoot)))
	if ev := must[[]store.Event](t, "Events")(b.Events(m)); len(ev) != 1 {
		t.Errorf("events of a node deleted and seen again = %+v, want one", ev)
	}
}

func testPing(t *testing.T, b store.Backend) {
	if err := b.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
