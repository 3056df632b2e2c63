package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/internal/etcdtest"
	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
)

// TestImportCommand moves a Badger appliance's state into etcd with
// pxe-pilot import, from its stopped database directory and from a backup
// file, and checks every refusal names its input and the way out.
func TestImportCommand(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // where a backup is loaded, checked for leftovers below
	dir := filepath.Join(t.TempDir(), "db")
	st, err := store.Open(dir, store.Options{Logger: quietLog, History: 30})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	mac := func(i int) store.MAC { return store.MAC(fmt.Sprintf("52:54:00:00:02:%02x", i)) }
	for i := 0; i < 30; i++ {
		for b := 0; b < 2; b++ {
			if _, _, err := st.RecordBoot(mac(i), store.Sighting{Time: now.Add(time.Duration(b) * time.Minute), IP: "203.0.113.5"},
				func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for b := 2; b < 25; b++ { // more history than the default 20 keeps
		if _, _, err := st.RecordBoot(mac(0), store.Sighting{Time: now.Add(time.Duration(b) * time.Minute)},
			func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetReinstall(mac(3), true, now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(mac(4), false, now, func(n *store.Node) (*store.Event, error) {
		n.Profile, n.Labels = "debian-12", map[string]string{"rack": "r2"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "pxe.backup")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Backup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c := etcdtest.Start(t, 1)
	etcd := map[string]string{"PXE_STORE": "etcd://" + strings.TrimPrefix(c.Members[0].ClientURL, "http://"), "PXE_ETCD_PREFIX": "/from-dir/",
		"PXE_BOOT_HISTORY": "30"}

	// While the appliance runs, its directory is locked.
	if code, out := runCmd(t, etcd, "import", "--from", dir); code != 1 || !strings.Contains(out, "in use by a running appliance: stop it first, or import a file written by pxe-pilot backup") {
		t.Fatalf("import of a database in use: %d %s", code, out)
	}
	st.Close()

	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{map[string]string{}, []string{"--from", dir}, 2, "PXE_STORE does not name etcd; set PXE_STORE=etcd://"},
		{etcd, nil, 2, "usage: PXE_STORE=etcd://host:2379,… pxe-pilot import --from <database dir | backup file>"},
		{etcd, []string{"--from", filepath.Join(dir, "nope")}, 1, "--from: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{etcd, []string{"--from", t.TempDir()}, 1, "is not a pxe-pilot database directory (it has no MANIFEST)"},
		{etcd, []string{"--from", "/etc/hostname"}, 1, "--from /etc/hostname cannot be loaded as a pxe-pilot backup (is it one, and complete?"},
		{map[string]string{"PXE_STORE": "etcd://127.0.0.1:1", "PXE_ETCD_TIMEOUT": "300ms"}, []string{"--from", dir}, 1, "etcd at http://127.0.0.1:1 under /pxe-pilot/ does not answer"},
		{map[string]string{"PXE_STORE": "etcd://", "PXE_ETCD_TIMEOUT": "300ms"}, []string{"--from", dir}, 2, "PXE_STORE"},
	} {
		if code, out := runCmd(t, tc.env, append([]string{"import"}, tc.args...)...); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("import %q with %v: exit %d, want %d with %q:\n%s", tc.args, tc.env, code, tc.code, tc.want, out)
		}
	}

	check := func(prefix string) {
		t.Helper()
		es, err := etcdstore.Open(etcdstore.Options{Endpoints: c.Endpoints(), Prefix: prefix, History: 30, Timeout: 10 * time.Second, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		defer es.Close()
		nodes, err := es.List()
		if err != nil || len(nodes) != 30 {
			t.Fatalf("%s: %d nodes in etcd (%v), want 30", prefix, len(nodes), err)
		}
		if n, _ := es.Get(mac(3)); n.State != store.StateReinstall {
			t.Errorf("%s: the reinstall flag did not arrive: %+v", prefix, n)
		}
		if n, _ := es.Get(mac(4)); n.Profile != "debian-12" || n.Labels["rack"] != "r2" {
			t.Errorf("%s: profile and labels did not arrive: %+v", prefix, n)
		}
		if evs, _ := es.Events(mac(7)); len(evs) != 2 {
			t.Errorf("%s: %d events of %s, want 2", prefix, len(evs), mac(7))
		}
		if evs, _ := es.Events(mac(0)); len(evs) != 25 {
			t.Errorf("%s: %d events of %s, want its 25 (PXE_BOOT_HISTORY=30)", prefix, len(evs), mac(0))
		}
	}
	if code, out := runCmd(t, etcd, "import", "--from", dir); code != 0 || !strings.Contains(out, "imported 30 nodes and 83 boot events from database at "+dir+" into etcd at ") {
		t.Fatalf("import from the directory: %d %s", code, out)
	} else {
		t.Logf("pxe-pilot import --from %s:\n%s", dir, out)
	}
	check("/from-dir/")
	code, out := runCmd(t, etcd, "import", "--from", dir)
	if code != exitSalvagedWithLosses || !strings.Contains(out, "imported 0 nodes") || !strings.Contains(out, "30 nodes were already in etcd and were kept as etcd has them") ||
		!strings.Contains(out, "\n  "+string(mac(29))+"\n") {
		t.Fatalf("import again: %d %s", code, out)
	}

	etcd["PXE_ETCD_PREFIX"] = "/from-backup/"
	if code, out := runCmd(t, etcd, "import", "--from", backup); code != 0 || !strings.Contains(out, "imported 30 nodes and 83 boot events from backup "+backup) {
		t.Fatalf("import from the backup: %d %s", code, out)
	}
	check("/from-backup/")
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "pxe-pilot-import-*")); len(left) > 0 {
		t.Errorf("temporary directories left behind: %v", left)
	}
}
