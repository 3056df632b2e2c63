package etcdstore_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
)

// TestImport copies nodes from a real Badger store into etcd: the admin
// state and the history arrive as Badger had them, an imported reinstall
// flag is served exactly once by the etcd store, an install in progress is
// in etcd's installing index, a node etcd already holds is kept, and a
// history longer than one transaction takes arrives whole.
func TestImport(t *testing.T) {
	c := startCluster(t)
	const history = 250 // more than one import transaction (100 operations)
	src, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Logger: quiet, History: history})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	local := func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }
	boot := func(m store.MAC, i int, decide func(*store.Node) store.Event) {
		t.Helper()
		sg := store.Sighting{Time: t0.Add(time.Duration(i) * time.Second), IP: fmt.Sprintf("203.0.113.%d", 10+i%200),
			Facts: store.Facts{Platform: "efi", Serial: "SN-" + string(m)}}
		if _, _, err := src.RecordBoot(m, sg, decide); err != nil {
			t.Fatal(err)
		}
	}
	flagged, admin, installing, long, known := store.MAC("52:54:00:10:00:01"), store.MAC("52:54:00:10:00:02"),
		store.MAC("52:54:00:10:00:03"), store.MAC("52:54:00:10:00:04"), store.MAC("52:54:00:10:00:05")
	for _, m := range []store.MAC{flagged, admin, installing, known} {
		boot(m, 0, local)
	}
	if _, err := src.SetReinstall(flagged, true, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Update(admin, false, t0.Add(time.Minute), func(n *store.Node) (*store.Event, error) {
		n.Profile, n.Hostname = "debian-12", "web-1"
		n.Labels, n.Vars = map[string]string{"rack": "r1"}, map[string]string{"disk": "/dev/sda"}
		n.LocalBootScript = "#!ipxe\nsanboot --no-describe --drive 0x80\n"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.SetReinstall(installing, true, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	boot(installing, 70, func(n *store.Node) store.Event {
		if n.StartInstall(t0.Add(70*time.Second), "ubuntu", "default", "ipxe", "token-1") {
			return store.Event{Decision: store.DecisionReinstall, Profile: "ubuntu"}
		}
		return store.Event{Decision: store.DecisionLocal}
	})
	for i := 0; i < 230; i++ {
		boot(long, i, local)
	}

	dst, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "/import/", History: history,
		Timeout: 30 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// etcd learnt one of the machines already; its record stays.
	if _, _, err := dst.RecordBoot(known, store.Sighting{Time: t0.Add(time.Hour), IP: "198.51.100.7"}, local); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []store.MAC{"52-54-00-10-00-09", "not a mac"} {
		if ok, err := dst.Import(store.Node{MAC: bad}, nil); ok || err == nil {
			t.Errorf("Import of MAC %q: %v, %v; want a refusal", bad, ok, err)
		}
	}
	nodes, err := src.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		evs, err := src.Events(n.MAC)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := dst.Import(n, evs)
		if err != nil {
			t.Fatalf("Import %s: %v", n.MAC, err)
		}
		if ok != (n.MAC != known) {
			t.Errorf("Import %s = %v, want %v", n.MAC, ok, n.MAC != known)
		}
		if n.MAC == known {
			continue
		}
		got, err := dst.Get(n.MAC)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normal(got), normal(n)) {
			t.Errorf("node %s in etcd:\n%+v\nwant as in Badger:\n%+v", n.MAC, got, n)
		}
		gotEv, err := dst.Events(n.MAC)
		if err != nil {
			t.Fatal(err)
		}
		if len(gotEv) != len(evs) || !reflect.DeepEqual(gotEv, evs) {
			t.Errorf("node %s: %d events in etcd, %d in Badger (or they differ)", n.MAC, len(gotEv), len(evs))
		}
		// A second import changes nothing.
		if ok, err := dst.Import(n, evs); ok || err != nil {
			t.Errorf("second Import %s = %v, %v; want false, nil", n.MAC, ok, err)
		}
	}
	if evs, _ := dst.Events(long); len(evs) != 230 {
		t.Errorf("node with a long history: %d events in etcd, want 230", len(evs))
	}
	if got, _ := dst.Get(known); got.LastIP != "198.51.100.7" || got.BootCount != 1 {
		t.Errorf("node etcd already had was overwritten: %+v", got)
	}
	var inst []store.MAC
	if err := dst.Installing(func(n store.Node) bool { inst = append(inst, n.MAC); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inst, []store.MAC{installing}) {
		t.Errorf("installing index in etcd: %v, want [%s]", inst, installing)
	}
	// The imported flag is consumed once, and the history goes on from
	// the imported one.
	served := 0
	for i := 0; i < 3; i++ {
		_, ev, err := dst.RecordBoot(flagged, store.Sighting{Time: t0.Add(2 * time.Hour)}, func(n *store.Node) store.Event {
			if n.StartInstall(t0.Add(2*time.Hour), "ubuntu", "default", "ipxe", "token-2") {
				return store.Event{Decision: store.DecisionReinstall}
			}
			return store.Event{Decision: store.DecisionLocal}
		})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Decision == store.DecisionReinstall {
			served++
		}
	}
	if served != 1 {
		t.Errorf("imported reinstall flag served %d times, want 1", served)
	}
	if evs, _ := dst.Events(flagged); len(evs) != 4 || !evs[0].Time.Equal(t0.Add(2*time.Hour)) || !evs[3].Time.Equal(t0) {
		t.Errorf("history after the import and three boots: %+v", evs)
	}
	counts, err := dst.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.StateInstalling] != 2 || counts[store.StateLocal] != 3 {
		t.Errorf("counts from the watch after the import: %v", counts)
	}
}

// normal makes two decodings of one node comparable (time zones).
func normal(n store.Node) store.Node {
	n.CreatedAt, n.StateChangedAt = n.CreatedAt.UTC(), n.StateChangedAt.UTC()
	if n.LastSeen != nil {
		t := n.LastSeen.UTC()
		n.LastSeen = &t
	}
	return n
}
