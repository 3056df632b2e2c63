package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncWAL makes every write Badger has committed durable: it fdatasyncs
// each of Badger's write-ahead logs (the memtables' *.mem files) and value
// logs (*.vlog) through a file descriptor of its own.
//
// Badger's own DB.Sync does the same for the active memtable, but it holds
// the database lock through the msync, and Badger's writer takes that lock
// for every batch it writes: while the disk syncs, no transaction commits,
// and every transaction that starts waits for the ones queued behind it.
// With the sync loop once a second and every admin write syncing, the
// boots arriving during a sync were 3-44 ms late, measured with
// bench/boot/rate.sh at 500 boots a second; the p99 did not move beyond the
// noise without it, as memtable switches and compactions make the rest of
// the tail (docs/performance-notes.md, "Badger's sync stops the writer"). A
// descriptor of our own needs no lock: Linux writes back a file's dirty
// pages on fdatasync however they were dirtied, through write or a shared
// mapping (msync with MS_SYNC does exactly this), and the writer goes on
// meanwhile.
//
// It also covers what DB.Sync leaves out: a memtable that filled up
// between the commit and the sync is no longer the active one, and DB.Sync
// does not sync it. A log that disappears before it is opened belonged to
// a memtable Badger has flushed into a table, which Badger syncs before it
// removes the log.
//
// Which files Badger writes is Badger's business, not its documented API:
// with no *.mem file found, syncWAL falls back to DB.Sync, and
// TestSyncWALLeavesNoDirtyPage checks, through the kernel's own accounting
// of this process's mappings, that syncWAL leaves no page of Badger's logs
// dirty. A failed sync is kept (noteSync, syncfail.go).
func (s *Store) syncWAL() error {
	mems, err := filepath.Glob(filepath.Join(s.path, "*.mem"))
	if err != nil || len(mems) == 0 {
		return s.noteSync(fsyncFailed("Badger's sync", s.db.Sync()))
	}
	vlogs, _ := filepath.Glob(filepath.Join(s.path, "*.vlog"))
	for _, name := range append(mems, vlogs...) {
		if err := fdatasync(name); err != nil {
			return s.noteSync(fmt.Errorf("syncing Badger's log %s: %w", name, err))
		}
	}
	return nil
}

// fdatasync syncs the file at name, which may have gone (see syncWAL).
func fdatasync(name string) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = fsyncFailed("fdatasync", unix.Fdatasync(int(f.Fd())))
	return errors.Join(err, f.Close())
}
