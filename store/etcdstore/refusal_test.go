package etcdstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/internal/etcdtest"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// An answer that commits nothing (a refusal, or "nothing to change") must
// come from the node as committed, not from the copy an appliance kept of
// its own last write: appliance A wrote the node, appliance B changed it
// since, then A is asked. These used to be answered from A's copy: the
// installer's call-back with its own token refused, a Delete of a node B
// re-created "not found", a clear of a flag B set "done" with the flag
// still set.
func TestAnswersFromAStaleCopyAreConfirmed(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := open(t, c.Endpoints(), "/stale/")
	b := open(t, c.Endpoints(), "/stale/")
	now := time.Now().UTC()

	m := store.MAC("52:54:00:dd:00:01")
	if _, err := a.SetReinstall(m, true, now); err != nil {
		t.Fatal(err)
	}
	if _, ev, err := b.RecordBoot(m, store.Sighting{Time: now}, func(n *store.Node) store.Event {
		n.StartInstall(now, "p", "default", "ipxe", "TOKEN")
		return store.Event{Decision: store.DecisionReinstall}
	}); err != nil || ev.Decision != store.DecisionReinstall {
		t.Fatalf("B's boot: %+v, %v", ev, err)
	}
	if _, err := a.Update(m, false, now, func(n *store.Node) (*store.Event, error) {
		ev, err := n.Report(store.EventInstalled, false, "TOKEN", "installer", "", now)
		return &ev, err
	}); err != nil {
		t.Errorf("the installer's call-back with its token, on A after B served the install: %v", err)
	}

	m = store.MAC("52:54:00:dd:00:02")
	if _, err := a.SetReinstall(m, true, now); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(m); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.RecordBoot(m, store.Sighting{Time: now}, func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(m); err != nil {
		t.Errorf("Delete on A of the node B re-created: %v", err)
	}
	if _, err := b.Get(m); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after A's Delete, B reads the node: %v", err)
	}

	m = store.MAC("52:54:00:dd:00:03")
	if _, err := a.SetLocalBootScript(m, "", now); err != nil { // A's copy: no flag
		t.Fatal(err)
	}
	if _, err := b.SetReinstall(m, true, now); err != nil {
		t.Fatal(err)
	}
	if n, err := a.SetReinstall(m, false, now); err != nil || n.State == store.StateReinstall {
		t.Errorf("clear on A of the flag B set: %s, %v", n.State, err)
	}
	if n, err := b.Get(m); err != nil || n.State == store.StateReinstall {
		t.Errorf("after A's clear, B reads state %s (%v)", n.State, err)
	}
}

// The read before a write is serializable: a follower answers it from its
// own copy, which may miss the newest commit. A write on it is safe (the
// compare-and-swap fails), a refusal was not: with A on a follower and B
// on the leader, A's clear of a flag B had just set on a new node said
// "not found" in 110 of 300 rounds, leaving the flag set.
func TestAnswersFromAFollowerAreConfirmed(t *testing.T) {
	c := etcdtest.Start(t, 3)
	l := c.Leader()
	b := open(t, []string{c.Members[l].ClientURL}, "/follower/")
	a := open(t, []string{c.Members[(l+1)%3].ClientURL}, "/follower/")
	now := time.Now().UTC()
	for i := 0; i < 300; i++ {
		m := store.MAC(fmt.Sprintf("52:54:00:ee:%02x:%02x", i/256, i%256))
		if _, err := b.SetReinstall(m, true, now); err != nil {
			t.Fatal(err)
		}
		if n, err := a.SetReinstall(m, false, now); err != nil || n.State == store.StateReinstall {
			t.Fatalf("round %d: clear on the follower's appliance of the flag just set: %s, %v", i, n.State, err)
		}
	}
}
