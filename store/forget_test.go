package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestNodeIdle(t *testing.T) {
	cut := t0.Add(90 * 24 * time.Hour)
	old, recent := t0, cut.Add(time.Hour)
	base := func() Node {
		n := newNode("52:54:00:00:02:01", old)
		n.LastSeen = &old
		n.BootCount = 3
		n.Facts = Facts{Platform: "efi", Serial: "SN1"}
		return n
	}
	for _, tc := range []struct {
		name string
		edit func(*Node)
		want bool
	}{
		{"booted local only, long ago", func(*Node) {}, true},
		{"never seen, created long ago", func(n *Node) { n.LastSeen = nil }, true},
		{"seen recently", func(n *Node) { n.LastSeen = &recent }, false},
		{"seen exactly at the cut", func(n *Node) { n.LastSeen = &cut }, false},
		{"created recently", func(n *Node) { n.LastSeen, n.CreatedAt = nil, recent }, false},
		{"state changed recently", func(n *Node) { n.StateChangedAt = recent }, false},
		{"reinstall requested", func(n *Node) { n.setState(StateReinstall, old) }, false},
		{"installing", func(n *Node) { n.State = StateInstalling }, false},
		{"installed", func(n *Node) { n.State = StateInstalled }, false},
		{"failed", func(n *Node) { n.State = StateFailed }, false},
		{"profile", func(n *Node) { n.Profile = "ubuntu" }, false},
		{"hostname", func(n *Node) { n.Hostname = "web1" }, false},
		{"labels", func(n *Node) { n.Labels = map[string]string{"rack": "r1"} }, false},
		{"vars", func(n *Node) { n.Vars = map[string]string{"disk": "sda"} }, false},
		{"local-boot script", func(n *Node) { n.LocalBootScript = "exit" }, false},
		{"installed once, back to local", func(n *Node) { n.InstallCount = 1 }, false},
		{"install record", func(n *Node) { n.Install = &Install{} }, false},
		{"empty maps are no state", func(n *Node) { n.Labels, n.Vars = map[string]string{}, map[string]string{} }, true},
	} {
		n := base()
		tc.edit(&n)
		if got := n.Idle(cut); got != tc.want {
			t.Errorf("%s: Idle = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestForgetIdle(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	cut := t0.Add(time.Hour)
	boot := func(m MAC, at time.Time) {
		t.Helper()
		if _, _, err := s.RecordBoot(m, Sighting{Time: at}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	var idle []MAC
	for i := 0; i < 7; i++ {
		m := MAC(fmt.Sprintf("52:54:00:00:03:%02x", i))
		boot(m, t0)
		boot(m, t0.Add(time.Minute))
		idle = append(idle, m)
	}
	recent, labelled, flagged := MAC("52:54:00:00:04:01"), MAC("52:54:00:00:04:02"), MAC("52:54:00:00:04:03")
	boot(recent, t0)
	boot(recent, cut.Add(time.Minute))
	boot(labelled, t0)
	if _, err := s.Update(labelled, false, t0, func(n *Node) (*Event, error) { n.Labels = map[string]string{"rack": "r1"}; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetReinstall(flagged, true, t0); err != nil {
		t.Fatal(err)
	}
	// Bounded batches, one pass: 3, 3, then the last one, which reaches
	// the end of the nodes.
	after := MAC("")
	for i, want := range []int{3, 3, 1} {
		n, next, err := s.ForgetIdle(cut, after, 3)
		if err != nil || n != want || (next == "") != (i == 2) {
			t.Fatalf("batch %d after %q: forgot %d, next %q (%v); want %d, and the end only at the last batch", i, after, n, next, err, want)
		}
		after = next
	}
	for _, m := range idle {
		if _, err := s.Get(m); !errors.Is(err, ErrNotFound) {
			t.Errorf("idle %s: Get = %v, want ErrNotFound", m, err)
		}
		if n := liveEvents(t, s, m); n != 0 {
			t.Errorf("idle %s: %d events left", m, n)
		}
	}
	for _, m := range []MAC{recent, labelled, flagged} {
		if _, err := s.Get(m); err != nil {
			t.Errorf("kept %s: %v", m, err)
		}
	}
	if c, _ := s.CountByState(); c[StateLocal] != 2 || c[StateReinstall] != 1 {
		t.Errorf("counts after forgetting = %v", c)
	}
	if c, _ := s.Recount(); c[StateLocal] != 2 || c[StateReinstall] != 1 {
		t.Errorf("recount after forgetting = %v", c)
	}
}

// An admin write that lands between the sweep's scan and its delete wins:
// the node is kept, with what the admin set.
func TestForgetIdleAdminWins(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	cut := t0.Add(time.Hour)
	m := MAC("52:54:00:00:05:01")
	if _, _, err := s.RecordBoot(m, Sighting{Time: t0}, localDecision); err != nil {
		t.Fatal(err)
	}
	s.forgetHook = func(MAC) {
		if _, err := s.SetLocalBootScript(m, "exit", t0); err != nil {
			t.Error(err)
		}
	}
	if n, _, err := s.ForgetIdle(cut, "", 10); err != nil || n != 0 {
		t.Fatalf("forgot %d (%v), want 0: the admin wrote meanwhile", n, err)
	}
	if n, err := s.Get(m); err != nil || n.LocalBootScript != "exit" {
		t.Fatalf("node = %+v, %v; want it kept with the admin's script", n, err)
	}
	s.forgetHook = nil

	// Racing for real: every admin write that succeeded is still there.
	var nodes []MAC
	for i := 0; i < 40; i++ {
		mm := MAC(fmt.Sprintf("52:54:00:00:06:%02x", i))
		if _, _, err := s.RecordBoot(mm, Sighting{Time: t0}, localDecision); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, mm)
	}
	var (
		wg  sync.WaitGroup
		won sync.Map
	)
	for _, mm := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(mm, false, t0, func(n *Node) (*Event, error) { n.Hostname = "kept"; return nil, nil })
			switch {
			case err == nil:
				won.Store(mm, true)
			case !errors.Is(err, ErrNotFound):
				t.Error(err)
			}
		}()
	}
	if _, _, err := s.ForgetIdle(cut, "", 1000); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	won.Range(func(k, _ any) bool {
		if n, err := s.Get(k.(MAC)); err != nil || n.Hostname != "kept" {
			t.Errorf("%s: acknowledged admin write lost: %+v, %v", k, n, err)
		}
		return true
	})
}

// Retention's deletes are soft records in the acknowledgement journal; once
// Close's compaction has dropped their tombstones, the start-up check must
// know they were deletions. It used to call the database damaged (the
// appliance did not start after one sweep and a restart), and recover
// listed the forgotten nodes as lost acknowledged changes.
func TestForgottenNodesAreNotDamage(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, _, err := s.RecordBoot(macN(i), Sighting{Time: t0}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := s.ForgetIdle(t0.Add(time.Hour), "", 100); err != nil || n != 5 {
		t.Fatalf("forgot %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Recover(dir, filepath.Join(t.TempDir(), "salvaged"), quiet); err != nil || len(rep.LostAcks) > 0 {
		t.Errorf("recover: %v reported as lost acknowledged changes (%v)", rep.LostAcks, err)
	}
	for i := 0; i < 2; i++ { // the second start reads the journal the first rewrote
		r, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("start %d after a sweep and a clean Close: %v", i+1, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
