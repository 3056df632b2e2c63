package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/pxe-pilot/pxe-pilot/profiles"
)

// loadProfiles reads PXE_PROFILES_FILE (if set) over the default profile
// the seed's variables define, and says what is in force.
func loadProfiles(cfg config, log *slog.Logger) (*atomic.Pointer[profiles.Set], error) {
	set, err := profiles.Load(cfg.ProfilesFile, cfg.Boot.Seed())
	if err != nil {
		return nil, err
	}
	logProfiles(set, log)
	var p atomic.Pointer[profiles.Set]
	p.Store(set)
	return &p, nil
}

func logProfiles(set *profiles.Set, log *slog.Logger) {
	if set.Path != "" {
		log.Info("boot profiles loaded", "file", set.Path, "profiles", strings.Join(set.Names(), ","), "groups", len(set.Groups), "default", set.Default)
	}
	if p := set.Profiles[set.Default]; p != nil && len(p.Missing) > 0 {
		log.Warn("reinstall is not configured for machines the default profile takes: they boot their local disk, and a requested reinstall stays pending with an explanation on the console",
			"profile", p.Name, "unset", strings.Join(p.Missing, ", "))
	}
}

// reloader reloads the profiles file on SIGHUP. A file that does not load
// is refused as a whole, with its errors in the log, and the profiles in
// force stay: a typo never turns reinstalls off.
type reloader struct {
	cfg config
	set *atomic.Pointer[profiles.Set]
	log *slog.Logger
	// hup gets SIGHUP for the whole life of serve (catchHUP), not only
	// while Serve runs: without a handler, a SIGHUP during start-up or a
	// graceful shutdown ended the process at once, the database never
	// closed, and systemd took the signal for a clean exit and did not
	// restart it.
	hup <-chan os.Signal
}

// catchHUP takes SIGHUP from now on (a reload request is never the end of
// the process) until stop is called.
func catchHUP() (hup <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// Serve reloads on each SIGHUP until ctx ends. The file is read aside, so
// that a read that hangs (a profiles file on a stalled NFS mount) never
// holds the appliance's shutdown.
func (r *reloader) Serve(ctx context.Context) error {
	type loaded struct {
		set *profiles.Set
		err error
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.hup:
			got := make(chan loaded, 1)
			go func() {
				set, err := profiles.Load(r.cfg.ProfilesFile, r.cfg.Boot.Seed())
				got <- loaded{set, err}
			}()
			var l loaded
			select {
			case <-ctx.Done():
				r.log.Warn("SIGHUP: shutting down while the profiles file was still being read; nothing reloaded", "file", r.cfg.ProfilesFile)
				return nil
			case l = <-got:
			}
			set, err := l.set, l.err
			if err != nil {
				r.log.Error("SIGHUP: profiles file refused; the profiles in force stay", "file", r.cfg.ProfilesFile, "err", err)
				continue
			}
			r.set.Store(set)
			r.log.Info("SIGHUP: profiles reloaded")
			logProfiles(set, r.log)
		}
	}
}
