package boot

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// SweepStore is what the stall rule needs from the store.
type SweepStore interface {
	Installing(fn func(store.Node) bool) error
	Update(m store.MAC, create bool, now time.Time, fn func(n *store.Node) (*store.Event, error)) (store.Node, error)
}

// Sweeper moves installs nobody heard from for Timeout to failed, reason
// "stalled" (PXE_INSTALL_TIMEOUT).
type Sweeper struct {
	Store   SweepStore
	Timeout time.Duration
	// Every is how often it looks (default Timeout/20, at least 1 s and at
	// most a minute).
	Every time.Duration
	Log   *slog.Logger
	// Failed is called for each install it failed (metrics).
	Failed func(store.Node)
	Now    func() time.Time
}

// Sweep fails every stalled install once and reports how many it failed.
func (s *Sweeper) Sweep() (int, error) {
	now := s.now()
	var stalled []store.MAC
	err := s.Store.Installing(func(n store.Node) bool {
		if n.Stalled(now, s.Timeout) {
			stalled = append(stalled, n.MAC)
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	failed := 0
	for _, m := range stalled {
		var did bool
		n, err := s.Store.Update(m, false, now, func(n *store.Node) (*store.Event, error) {
			ev, ok := n.Stall(now, s.Timeout)
			did = ok
			if !ok {
				return nil, nil // a call-back came in meanwhile
			}
			return &ev, nil
		})
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return failed, err
		}
		if did {
			failed++
			s.log().Warn("install stalled: no word from the installer; marked failed", "mac", m, "timeout", s.Timeout, "profile", profileOf(n))
			if s.Failed != nil {
				s.Failed(n)
			}
		}
	}
	return failed, nil
}

func profileOf(n store.Node) string {
	if n.Install == nil {
		return ""
	}
	return n.Install.Profile
}

func (s *Sweeper) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Sweeper) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Serve sweeps every Every until ctx ends. A timeout of zero or less
// turns the rule off.
func (s *Sweeper) Serve(ctx context.Context) error {
	if s.Timeout <= 0 {
		<-ctx.Done()
		return nil
	}
	every := s.Every
	if every <= 0 {
		every = min(max(s.Timeout/20, time.Second), time.Minute)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Sweep(); err != nil {
			s.log().Error("install stall sweep failed; trying again", "err", err, "every", every)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
