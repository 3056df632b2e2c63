package boot

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// fakeForgetter has idle nodes to forget and records each call: the cut,
// and where the scan went on from (it hands out "cursor-<call>").
type fakeForgetter struct {
	idle   int
	cuts   []time.Time
	afters []store.MAC
	fail   error
	calls  int
}

func (f *fakeForgetter) ForgetIdle(seenBefore time.Time, after store.MAC, max int) (int, store.MAC, error) {
	f.calls++
	f.cuts = append(f.cuts, seenBefore)
	f.afters = append(f.afters, after)
	if f.fail != nil {
		return 0, "", f.fail
	}
	n := min(f.idle, max)
	f.idle -= n
	if f.idle == 0 {
		return n, "", nil // the end of the nodes
	}
	return n, store.MAC(fmt.Sprintf("cursor-%d", f.calls)), nil
}

func TestRetentionSweep(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f := &fakeForgetter{idle: 1234}
	var counted int
	r := &Retention{Store: f, After: 90 * 24 * time.Hour, Batch: 500, Now: func() time.Time { return now },
		Forgot: func(n int) { counted += n }}
	n, err := r.Sweep(context.Background())
	if err != nil || n != 1234 || counted != 1234 || f.calls != 3 {
		t.Fatalf("Sweep = %d, %v; counted %d in %d calls; want 1234 in 3", n, err, counted, f.calls)
	}
	if want := now.Add(-90 * 24 * time.Hour); !f.cuts[0].Equal(want) {
		t.Errorf("cut = %v, want %v", f.cuts[0], want)
	}
	// One pass: each batch goes on where the one before stopped.
	if want := []store.MAC{"", "cursor-1", "cursor-2"}; !reflect.DeepEqual(f.afters, want) {
		t.Errorf("batches went on from %q, want %q", f.afters, want)
	}
	// Bounded: MaxBatches calls at most, even with more to forget.
	f = &fakeForgetter{idle: 10000}
	r = &Retention{Store: f, After: time.Hour, Batch: 10, MaxBatches: 4}
	if n, _ := r.Sweep(context.Background()); n != 40 || f.calls != 4 {
		t.Fatalf("bounded sweep forgot %d in %d calls, want 40 in 4", n, f.calls)
	}
	f = &fakeForgetter{fail: errors.New("disk on fire")}
	r = &Retention{Store: f, After: time.Hour}
	if _, err := r.Sweep(context.Background()); err == nil {
		t.Fatal("Sweep hid the store's error")
	}
}

func TestRetentionOffServesUntilDone(t *testing.T) {
	f := &fakeForgetter{idle: 5}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (&Retention{Store: f}).Serve(ctx); err != nil || f.calls != 0 {
		t.Fatalf("Serve with retention off = %v after %d calls, want nil after 0", err, f.calls)
	}
	// Stopped before it began: nothing swept.
	if err := (&Retention{Store: f, After: time.Hour}).Serve(ctx); err != nil || f.calls != 0 {
		t.Fatalf("Serve after its context ended = %v after %d calls, want nil after 0", err, f.calls)
	}
	// Running: it sweeps at once (here, stopped once the batch is done).
	live, stop := context.WithCancel(context.Background())
	if err := (&Retention{Store: f, After: time.Hour, Forgot: func(int) { stop() }}).Serve(live); err != nil || f.calls != 1 || f.idle != 0 {
		t.Fatalf("Serve = %v after %d calls (%d idle left)", err, f.calls, f.idle)
	}
}

// A sweep stops between batches once its context ends: shutdown used to
// wait for the whole sweep (73 s at 100,000 idle nodes behind 100,000
// active ones), past PXE_SHUTDOWN_TIMEOUT and systemd's stop timeout.
func TestRetentionSweepStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeForgetter{idle: 10000}
	r := &Retention{Store: f, After: time.Hour, Batch: 10, Forgot: func(int) { cancel() }}
	if n, err := r.Sweep(ctx); err != nil || n != 10 || f.calls != 1 {
		t.Fatalf("Sweep = %d, %v after %d calls; want 10 after 1 (stopped by the shutdown)", n, err, f.calls)
	}
}
