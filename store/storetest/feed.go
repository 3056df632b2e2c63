package storetest

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// checkCounts compares CountByState with a count over List.
func checkCounts(t *testing.T, b store.Backend) {
	t.Helper()
	got := must[map[store.State]int](t, "CountByState")(b.CountByState())
	want := map[store.State]int{}
	for _, n := range must[[]store.Node](t, "List")(b.List()) {
		want[n.State]++
	}
	for _, s := range store.States {
		if got[s] != want[s] {
			t.Errorf("CountByState = %v, recount from List = %v", got, want)
			return
		}
	}
}

// Ops is how many random operations the count test makes.
const Ops = 250

func testCountByState(t *testing.T, b store.Backend) {
	checkCounts(t, b)
	r := rand.New(rand.NewPCG(13, 5))
	for i := 0; i < Ops; i++ {
		m, now := MAC(r.IntN(16)), at(i)
		var err error
		switch op := r.IntN(7); op {
		case 0, 1:
			_, err = b.SetReinstall(m, op == 0, now)
		case 2, 3:
			_, _, err = b.RecordBoot(m, store.Sighting{Time: now}, installOnce(now))
		case 4:
			_, err = b.MarkInstalled(m, now)
		case 5:
			_, err = b.Update(m, false, now, func(n *store.Node) (*store.Event, error) {
				ev, err := n.Report(store.EventFailed, true, "", "test", "disk on fire", now)
				return &ev, err
			})
		case 6:
			err = b.Delete(m)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrNotInstalling) {
			t.Fatalf("op %d: %v", i, err)
		}
		if i%50 == 49 {
			checkCounts(t, b)
		}
	}
	checkCounts(t, b)
}

func testSubscribe(t *testing.T, b store.Backend) {
	sub := b.Subscribe(1024)
	a, c := MAC(30), MAC(31)
	must[store.Node](t, "SetReinstall")(b.SetReinstall(a, true, at(1)))
	must[store.Node](t, "SetLocalBootScript")(b.SetLocalBootScript(c, "exit", at(1)))
	for i := 0; i < 3; i++ {
		must[store.Node](t, "RecordBoot a")(firstNode(b.RecordBoot(a, store.Sighting{Time: at(2 + i)}, installOnce(at(2+i)))))
		must[store.Node](t, "RecordBoot c")(firstNode(b.RecordBoot(c, store.Sighting{Time: at(2 + i)}, localBoot)))
	}
	if err := b.Delete(c); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got := map[store.MAC][]store.Change{}
	deadline := time.After(10 * time.Second)
	for n := 0; n < 9; n++ {
		select {
		case ch, ok := <-sub.C:
			if !ok {
				t.Fatal("subscription closed early")
			}
			got[ch.MAC] = append(got[ch.MAC], ch)
		case <-deadline:
			t.Fatalf("after 10 s, %d of 9 changes arrived: %v", n, got)
		}
	}
	if sub.Lagged() {
		t.Error("a subscriber with room for 1024 changes lagged")
	}
	ca, cc := got[a], got[c]
	if len(ca) != 4 || len(cc) != 5 {
		t.Fatalf("changes: %d for %s, %d for %s; want 4 and 5", len(ca), a, len(cc), c)
	}
	if ca[0].Node == nil || ca[0].Node.State != store.StateReinstall || ca[0].Event != nil {
		t.Errorf("first change of %s = %+v, want state reinstall, no event", a, ca[0])
	}
	for i, ch := range ca[1:] {
		if ch.Node == nil || ch.Node.BootCount != uint64(i+1) || ch.Event == nil {
			t.Fatalf("change %d of %s = %+v, want boot %d with its event (in commit order)", i+1, a, ch, i+1)
		}
		want := store.DecisionLocal
		if i == 0 {
			want = store.DecisionReinstall
		}
		if ch.Event.Decision != want {
			t.Errorf("boot %d of %s: decision %q, want %q", i+1, a, ch.Event.Decision, want)
		}
	}
	if cc[0].Node == nil || cc[0].Node.LocalBootScript != "exit" {
		t.Errorf("first change of %s = %+v", c, cc[0])
	}
	for i, ch := range cc[1:4] {
		if ch.Node == nil || ch.Node.BootCount != uint64(i+1) {
			t.Errorf("change %d of %s = %+v, want boot %d", i+1, c, ch, i+1)
		}
	}
	if cc[4].Node != nil {
		t.Errorf("last change of %s = %+v, want the deletion (Node nil)", c, cc[4])
	}
	sub.Close()
	select {
	case _, ok := <-sub.C:
		if ok {
			t.Error("a change arrived after Close")
		}
	case <-time.After(5 * time.Second):
		t.Error("C not closed after Close")
	}
}
