package etcdstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/storetest"
)

// eventually polls cond every 20 ms for at most d.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func countsEqual(t *testing.T, a, b store.Backend) bool {
	ca, err1 := a.CountByState()
	cb, err2 := b.CountByState()
	return err1 == nil && err2 == nil && fmt.Sprint(ca) == fmt.Sprint(cb)
}

// TestWatchAcrossAppliances: what one appliance writes, another counts
// and tells its subscribers; after being cut off while the history it
// missed was compacted away, it lists the nodes again, counts right, and
// marks its subscribers lagged.
func TestWatchAcrossAppliances(t *testing.T) {
	c := startCluster(t)
	proxy := newProxy(t, strings.TrimPrefix(c.Members[1].ClientURL, "http://"))
	a := open(t, c.Endpoints(), "/watch/")
	b := open(t, []string{"http://" + proxy.Addr}, "/watch/")
	sub := b.Subscribe(64)

	m := storetest.MAC(1)
	if _, err := a.SetReinstall(m, true, storetest.T0); err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-sub.C:
		if ch.MAC != m || ch.Node == nil || ch.Node.State != store.StateReinstall {
			t.Errorf("change seen by the other appliance = %+v", ch)
		}
	case <-time.After(slow * 5 * time.Second):
		t.Fatal("the other appliance's subscriber saw nothing within 5 s")
	}
	if !eventually(slow*5*time.Second, func() bool { return countsEqual(t, a, b) }) {
		t.Fatal("counts differ between the appliances")
	}

	proxy.Cut()
	for i := 2; i < 12; i++ {
		if _, _, err := a.RecordBoot(storetest.MAC(i), store.Sighting{Time: storetest.T0}, func(*store.Node) store.Event {
			return store.Event{Decision: store.DecisionLocal}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Delete(m); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), slow*5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compacting: %v", err)
	}
	proxy.Restore(t)
	if !eventually(slow*15*time.Second, func() bool { return countsEqual(t, a, b) }) {
		ca, _ := a.CountByState()
		cb, _ := b.CountByState()
		t.Fatalf("after the compaction the counts differ: %v on the writer, %v on the one that was cut off", ca, cb)
	}
	if cb, _ := b.CountByState(); cb[store.StateLocal] != 10 || cb[store.StateReinstall] != 0 {
		t.Errorf("counts after re-listing = %v, want local:10", cb)
	}
	if !eventually(slow*5*time.Second, sub.Lagged) {
		t.Error("the subscriber was not told it missed changes")
	}
}
