package store

// Online backup and offline restore, in Badger's own backup format (a stream
// of protobuf KV lists, backup.go in Badger): a consistent snapshot of every
// key at one version.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Backup writes a consistent snapshot of the whole database to w while the
// store keeps serving.
func (s *Store) Backup(w io.Writer) error {
	if s.db.IsClosed() {
		return ErrClosed
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := s.db.Backup(bw, 0); err != nil {
		return fmt.Errorf("database at %s: backup failed: %w", s.path, err)
	}
	return bw.Flush()
}

// Restore loads a backup written by Backup into a new database at dir, which
// must not exist or be empty, and fsyncs it.
func Restore(r io.Reader, dir string, log *slog.Logger) (nodes int, err error) {
	if err := emptyTarget(dir); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	s, err := Open(dir, Options{Logger: log})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	if err := s.db.Load(r, 256); err != nil {
		return 0, fmt.Errorf("restore: the backup cannot be loaded (is it a pxe-pilot backup, and complete?); %s now holds part of it, delete it before trying again: %w", dir, err)
	}
	if err := s.syncWAL(); err != nil {
		return 0, err
	}
	list, err := s.List()
	return len(list), err
}
