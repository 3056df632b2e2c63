package store

// A failed fsync is final for the life of the store.
//
// When Linux cannot write a dirty page back (a disk error, a thin volume or
// a network block device out of space), it records the error for the file,
// reports it to the next fsync or fdatasync, and marks the page clean: the
// data stays in memory but is never written again. A retry of the sync then
// succeeds, with the page still not on disk. So after one failed sync the
// store can no longer tell which of its writes reached the disk, and a
// later sync that succeeds proves nothing about the earlier ones: an admin
// change fsynced after it could still be lost with the write-ahead log
// pages before it (Badger's replay stops at the first damaged entry), and a
// sync mark written after it would claim versions the disk may not hold.
//
// So the first failed sync (of Badger's logs, of the acknowledgement
// journal, or of the database directory) is kept: from then on the store
// refuses every write that must be durable (admin changes, and a boot that
// would serve the installer, which then boots its disk with the reinstall
// still pending; the boot whose own fsync failed first is undone, undoBoot),
// writes no more sync marks, and Ping reports it, so
// /health answers 503. Boot bookkeeping still goes to Badger's write-ahead
// log (it never promised more than the page cache until the next sync),
// and Close still flushes every memtable into new, synced tables. The way
// out is a restart, whose integrity check (integrity.go) compares Badger's
// files with the journal and says whether anything acknowledged is gone.

import (
	"errors"
	"fmt"
	"time"
)

// ErrSyncFailed means an fsync of the database failed earlier: the store
// refuses writes that must be durable until it is reopened.
var ErrSyncFailed = errors.New("an fsync of the database failed")

// fsyncError marks an error returned by fsync or fdatasync itself, as
// opposed to opening or writing a file: only these leave pages whose
// write-back failed and that the kernel will not retry.
type fsyncError struct{ err error }

func (e *fsyncError) Error() string { return e.err.Error() }
func (e *fsyncError) Unwrap() error { return e.err }

// fsyncFailed marks err, when non-nil, as a failed sync; what, when not
// empty, names the call (a bare errno does not).
func fsyncFailed(what string, err error) error {
	if err == nil {
		return nil
	}
	if what != "" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return &fsyncError{err}
}

type syncFailure struct {
	at  time.Time
	err error
}

// noteSync keeps err as the store's sync failure when it is one (the first
// is kept), and returns err unchanged.
func (s *Store) noteSync(err error) error {
	var fe *fsyncError
	if !errors.As(err, &fe) {
		return err
	}
	if s.syncFail.CompareAndSwap(nil, &syncFailure{at: time.Now(), err: err}) {
		s.log.Error("store: an fsync failed; refusing writes that must be durable until restart (check the disk, e.g. dmesg, then restart the appliance)",
			"path", s.path, "err", err)
	}
	return err
}

// syncBroken is nil until a sync failed, then the error that refuses a
// durable write.
func (s *Store) syncBroken() error {
	f := s.syncFail.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("database at %s: an fsync failed at %s (%v), so writes since then may not be on disk even where a later fsync succeeded; "+
		"changes that must be durable are refused until the appliance restarts: check the disk (dmesg, free space on the volume underneath), then restart it, and its start-up check reports anything acknowledged that was lost: %w",
		s.path, f.at.UTC().Format(time.RFC3339), f.err, ErrSyncFailed)
}
