package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// testForgetIdle: retention (PXE_NODE_RETENTION) forgets, in bounded
// batches, the nodes that only ever booted local and were not seen since
// the cut, with their history and their count; a node with anything an
// admin or an install put on it, or seen since, is kept. Every backend
// must be a store.Forgetter.
func testForgetIdle(t *testing.T, b store.Backend) {
	fg, ok := b.(store.Forgetter)
	if !ok {
		t.Fatalf("%T does not implement store.Forgetter: PXE_NODE_RETENTION would do nothing on it", b)
	}
	cut := at(3600)
	var idle []store.MAC
	for i := 0; i < 7; i++ {
		m := MAC(100 + i)
		must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(m, store.Sighting{Time: at(1)}, localBoot)))
		must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(m, store.Sighting{Time: at(60)}, localBoot)))
		idle = append(idle, m)
	}
	recent, labelled, flagged := MAC(200), MAC(201), MAC(202)
	must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(recent, store.Sighting{Time: at(1)}, localBoot)))
	must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(recent, store.Sighting{Time: cut.Add(time.Minute)}, localBoot)))
	must[store.Node](t, "RecordBoot")(firstNode(b.RecordBoot(labelled, store.Sighting{Time: at(1)}, localBoot)))
	must[store.Node](t, "Update")(b.Update(labelled, false, at(2), func(n *store.Node) (*store.Event, error) {
		n.Labels = map[string]string{"rack": "r1"}
		return nil, nil
	}))
	must[store.Node](t, "SetReinstall")(b.SetReinstall(flagged, true, at(1)))

	// Bounded batches, one pass: 3, 3, then the last one, which reaches
	// the end of the nodes.
	after := store.MAC("")
	for i, want := range []int{3, 3, 1} {
		n, next, err := fg.ForgetIdle(cut, after, 3)
		if err != nil || n != want || (next == "") != (i == 2) {
			t.Fatalf("batch %d after %q: forgot %d, next %q (%v); want %d, and the end only at the last batch", i, after, n, next, err, want)
		}
		after = next
	}
	for _, m := range idle {
		if _, err := b.Get(m); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("idle %s: Get = %v, want ErrNotFound", m, err)
		}
		if ev, err := b.Events(m); !errors.Is(err, store.ErrNotFound) || len(ev) != 0 {
			t.Errorf("idle %s: Events = %d, %v; want its history gone", m, len(ev), err)
		}
	}
	for _, m := range []store.MAC{recent, labelled, flagged} {
		if _, err := b.Get(m); err != nil {
			t.Errorf("kept %s: %v", m, err)
		}
	}
	if c := must[map[store.State]int](t, "CountByState")(b.CountByState()); c[store.StateLocal] != 2 || c[store.StateReinstall] != 1 {
		t.Errorf("counts after forgetting = %v, want 2 local and 1 reinstall", c)
	}
	checkCounts(t, b)
}
