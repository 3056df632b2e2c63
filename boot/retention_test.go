package boot

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeForgetter has idle nodes to forget and records each call.
type fakeForgetter struct {
	idle  int
	cuts  []time.Time
	fail  error
	calls int
}

func (f *fakeForgetter) ForgetIdle(seenBefore time.Time, max int) (int, error) {
	f.calls++
	f.cuts = append(f.cuts, seenBefore)
	if f.fail != nil {
		return 0, f.fail
	}
	n := min(f.idle, max)
	f.idle -= n
	return n, nil
}

func TestRetentionSweep(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f := &fakeForgetter{idle: 1234}
	var counted int
	r := &Retention{Store: f, After: 90 * 24 * time.Hour, Batch: 500, Now: func() time.Time { return now },
		Forgot: func(n int) { counted += n }}
	n, err := r.Sweep()
	if err != nil || n != 1234 || counted != 1234 || f.calls != 3 {
		t.Fatalf("Sweep = %d, %v; counted %d in %d calls; want 1234 in 3", n, err, counted, f.calls)
	}
	if want := now.Add(-90 * 24 * time.Hour); !f.cuts[0].Equal(want) {
		t.Errorf("cut = %v, want %v", f.cuts[0], want)
	}
	// Bounded: MaxBatches calls at most, even with more to forget.
	f = &fakeForgetter{idle: 10000}
	r = &Retention{Store: f, After: time.Hour, Batch: 10, MaxBatches: 4}
	if n, _ := r.Sweep(); n != 40 || f.calls != 4 {
		t.Fatalf("bounded sweep forgot %d in %d calls, want 40 in 4", n, f.calls)
	}
	f = &fakeForgetter{fail: errors.New("disk on fire")}
	r = &Retention{Store: f, After: time.Hour}
	if _, err := r.Sweep(); err == nil {
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
	if err := (&Retention{Store: f, After: time.Hour}).Serve(ctx); err != nil || f.calls != 1 || f.idle != 0 {
		t.Fatalf("Serve = %v after %d calls (%d idle left)", err, f.calls, f.idle)
	}
}
