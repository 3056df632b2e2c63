package etcdstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/storetest"
)

// TestForgetIdleAcrossAppliances: two appliances sweep the same idle
// nodes while a third labels some of them. Every node is deleted at most
// once (the sweeps' counts add up to the nodes gone), and every label
// write that succeeded is still there afterwards: the revision guard
// makes a sweep that read before the admin's write read again and keep
// the node.
func TestForgetIdleAcrossAppliances(t *testing.T) {
	c := startCluster(t)
	prefix := "/forget/"
	a, b, admin := open(t, c.Endpoints(), prefix), open(t, c.Endpoints(), prefix), open(t, c.Endpoints(), prefix)
	const nodes = 60
	for i := 0; i < nodes; i++ {
		if _, _, err := a.RecordBoot(storetest.MAC(i), store.Sighting{Time: storetest.T0}, func(*store.Node) store.Event {
			return store.Event{Decision: store.DecisionLocal}
		}); err != nil {
			t.Fatal(err)
		}
	}
	cut := storetest.T0.Add(time.Hour)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		labelled = map[store.MAC]bool{}
		forgot   [2]int
		errs     = make(chan error, 3)
	)
	for k, s := range []*struct{ fg store.Forgetter }{{a}, {b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := store.MAC("")
			for {
				n, next, err := s.fg.ForgetIdle(cut, after, 7)
				if err != nil {
					errs <- fmt.Errorf("appliance %d: %w", k, err)
					return
				}
				forgot[k] += n
				if next == "" {
					return
				}
				after = next
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < nodes; i += 3 {
			m := storetest.MAC(i)
			_, err := admin.Update(m, false, cut, func(n *store.Node) (*store.Event, error) {
				n.Labels = map[string]string{"keep": "yes"}
				return nil, nil
			})
			if err == nil {
				mu.Lock()
				labelled[m] = true
				mu.Unlock()
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	left, err := admin.List()
	if err != nil {
		t.Fatal(err)
	}
	for m := range labelled {
		n, err := admin.Get(m)
		if err != nil || n.Labels["keep"] != "yes" {
			t.Errorf("%s was labelled (the write succeeded) but is now %+v, %v", m, n, err)
		}
	}
	if gone := nodes - len(left); forgot[0]+forgot[1] != gone {
		t.Errorf("sweeps report %d+%d forgotten, but %d nodes are gone", forgot[0], forgot[1], gone)
	}
	if len(left) != len(labelled) {
		t.Errorf("%d nodes left, want exactly the %d labelled ones", len(left), len(labelled))
	}
	t.Logf("forgot %d + %d, labelled %d of %d", forgot[0], forgot[1], len(labelled), nodes)
}
