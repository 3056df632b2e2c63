package boot

import (
	"context"
	"log/slog"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// Retention forgets nodes that only ever booted local and were not seen for
// After (PXE_NODE_RETENTION): see store.Node.Idle for the condition, which
// the store checks again in each delete's transaction, so a node an admin
// touched meanwhile is kept.
type Retention struct {
	Store store.Forgetter
	After time.Duration
	// Every is how often it sweeps (default an hour); Batch how many
	// nodes one store call may forget (default 500), and one sweep makes
	// at most MaxBatches calls (default 400: 200,000 nodes), so a sweep
	// never holds the store for long and always ends.
	Every      time.Duration
	Batch      int
	MaxBatches int
	Log        *slog.Logger
	// Forgot is called with the number forgotten by each batch (metrics).
	Forgot func(n int)
	Now    func() time.Time
}

// Sweep forgets every node idle for After, in batches, and reports how many.
// It stops between batches once ctx ends: a shutdown does not wait for a
// whole sweep of a big fleet (a minute and more at 100,000 nodes), and
// what is left goes to the next sweep.
func (r *Retention) Sweep(ctx context.Context) (int, error) {
	batch, batches := r.Batch, r.MaxBatches
	if batch <= 0 {
		batch = 500
	}
	if batches <= 0 {
		batches = 400
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	cut := now().UTC().Add(-r.After)
	total := 0
	after := store.MAC("")
	for i := 0; i < batches && ctx.Err() == nil; i++ {
		n, next, err := r.Store.ForgetIdle(cut, after, batch)
		total += n
		if n > 0 && r.Forgot != nil {
			r.Forgot(n)
		}
		if err != nil {
			return total, err
		}
		if next == "" {
			break // the last node was scanned
		}
		after = next
	}
	return total, nil
}

func (r *Retention) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Serve sweeps at once and then every Every until ctx ends. After of zero
// or less turns retention off.
func (r *Retention) Serve(ctx context.Context) error {
	if r.After <= 0 {
		<-ctx.Done()
		return nil
	}
	every := r.Every
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		n, err := r.Sweep(ctx)
		switch {
		case err != nil:
			r.log().Error("node retention sweep failed; trying again", "err", err, "forgotten", n, "every", every)
		case n > 0:
			r.log().Info("forgot idle nodes: booted local only, no admin state, not seen within the retention",
				"forgotten", n, "retention", r.After, "took", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
