package store

// Online backup and offline restore.
//
// A backup file is Badger's own backup stream (a sequence of length-prefixed
// protobuf KV lists, backup.go in Badger: a consistent snapshot of every key
// at one version) between a header and an end marker of ours:
//
//	header   "pxe-pilot backup 1\n"                          19 bytes
//	body     Badger's backup stream
//	trailer  "pxe-pilot end 1\n", body length (uint64 LE),   56 bytes
//	         SHA-256 of the body
//
// Badger's stream has no end of its own: a copy cut exactly between two KV
// lists, or an empty file, loads without an error and restores part of the
// fleet, or none of it. The end marker tells a complete backup from a cut or
// damaged one before anything is written. Backups from before the marker
// (the bare stream, whose first 8 bytes are a little-endian length and never
// the header) still restore, with a warning that their completeness cannot
// be checked.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

const (
	backupHeader     = "pxe-pilot backup 1\n"
	backupEndMagic   = "pxe-pilot end 1\n"
	backupTrailerLen = len(backupEndMagic) + 8 + sha256.Size
)

// Backup writes a consistent snapshot of the whole database to w while the
// store keeps serving, with the header and end marker restore checks.
func (s *Store) Backup(w io.Writer) error {
	if s.db.IsClosed() {
		return ErrClosed
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(backupHeader); err != nil {
		return err
	}
	body := &hashCounter{w: bw, h: sha256.New()}
	if _, err := s.db.Backup(body, 0); err != nil {
		return fmt.Errorf("database at %s: backup failed: %w", s.path, err)
	}
	if _, err := bw.Write(backupTrailer(body.n, body.h.Sum(nil))); err != nil {
		return err
	}
	return bw.Flush()
}

func backupTrailer(n int64, sum []byte) []byte {
	t := make([]byte, 0, backupTrailerLen)
	t = append(t, backupEndMagic...)
	t = binary.LittleEndian.AppendUint64(t, uint64(n))
	return append(t, sum...)
}

// hashCounter passes writes (or reads) through, hashing and counting them.
type hashCounter struct {
	w io.Writer
	r io.Reader
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func (c *hashCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// BackupInfo says what VerifyBackup found.
type BackupInfo struct {
	// Legacy is true for a backup written before the end marker existed:
	// its completeness cannot be checked.
	Legacy bool
	// BodyOffset and BodyLen place Badger's stream in the file.
	BodyOffset, BodyLen int64
	sum                 []byte
}

// VerifyBackup checks that the backup file is complete and undamaged: its
// header, its end marker, and the length and SHA-256 of what lies between.
// It reads the whole file and writes nothing.
func VerifyBackup(file string) (BackupInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return BackupInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return BackupInfo{}, err
	}
	if !fi.Mode().IsRegular() {
		return BackupInfo{}, fmt.Errorf("backup %s is not a regular file; give the file pxe-pilot backup wrote", file)
	}
	return verifyBackup(f, fi.Size(), file)
}

func verifyBackup(r io.ReaderAt, size int64, file string) (BackupInfo, error) {
	if size == 0 {
		return BackupInfo{}, fmt.Errorf("backup %s is empty (0 bytes): a copy that was cut or never written; a pxe-pilot backup always holds at least its header and end marker, so use another copy", file)
	}
	head := make([]byte, len(backupHeader))
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return BackupInfo{}, fmt.Errorf("backup %s: %w", file, err)
	}
	if !bytes.Equal(head[:n], []byte(backupHeader)) {
		if bytes.HasPrefix([]byte(backupHeader), head[:n]) {
			return BackupInfo{}, fmt.Errorf("backup %s is cut short: %d bytes, not even its whole header; use another copy", file, size)
		}
		// Badger's bare stream, as backups were written before the
		// marker.
		info := BackupInfo{Legacy: true, BodyLen: size}
		if err := checkFrames(r, info, file); err != nil {
			return BackupInfo{}, fmt.Errorf("backup %s has no pxe-pilot header, and is not a whole backup from before the header either: %w; give a file written by pxe-pilot backup (nothing was written)", file, err)
		}
		return info, nil
	}
	min := int64(len(backupHeader) + backupTrailerLen)
	if size < min {
		return BackupInfo{}, fmt.Errorf("backup %s is cut short: %d bytes, less than a header and an end marker (%d); use another copy", file, size, min)
	}
	tr := make([]byte, backupTrailerLen)
	if _, err := r.ReadAt(tr, size-int64(backupTrailerLen)); err != nil {
		return BackupInfo{}, fmt.Errorf("backup %s: %w", file, err)
	}
	info := BackupInfo{BodyOffset: int64(len(backupHeader)), BodyLen: size - min}
	if !bytes.HasPrefix(tr, []byte(backupEndMagic)) {
		return BackupInfo{}, fmt.Errorf("backup %s is incomplete: it has no end marker, so the copy was cut (%d bytes) or the backup did not finish; use another copy (nothing was written)", file, size)
	}
	if got := binary.LittleEndian.Uint64(tr[len(backupEndMagic):]); got != uint64(info.BodyLen) {
		return BackupInfo{}, fmt.Errorf("backup %s is damaged: its end marker says %d bytes of data, the file holds %d; use another copy (nothing was written)", file, got, info.BodyLen)
	}
	info.sum = tr[len(backupEndMagic)+8:]
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, info.BodyOffset, info.BodyLen)); err != nil {
		return BackupInfo{}, fmt.Errorf("backup %s: %w", file, err)
	}
	if !bytes.Equal(h.Sum(nil), info.sum) {
		return BackupInfo{}, fmt.Errorf("backup %s is damaged: its SHA-256 does not match the one in its end marker (bytes changed after it was written); use another copy (nothing was written)", file)
	}
	if err := checkFrames(r, info, file); err != nil {
		return BackupInfo{}, fmt.Errorf("backup %s is whole but not a backup pxe-pilot wrote: %w (nothing was written)", file, err)
	}
	return info, nil
}

// maxFrame bounds one of Badger's KV lists: its stream sends lists of a few
// MiB, and Load allocates what a length claims.
const maxFrame = 256 << 20

// checkFrames checks that the body is whole KV lists, each an 8-byte
// little-endian length and that many bytes, ending exactly at its end.
// Badger's Load trusts the lengths: a junk one made it panic or allocate
// gigabytes after it had begun writing.
func checkFrames(r io.ReaderAt, info BackupInfo, file string) error {
	var l [8]byte
	for off := int64(0); off < info.BodyLen; {
		left := info.BodyLen - off
		if left < 8 {
			return fmt.Errorf("%d stray bytes at its end (byte %d)", left, info.BodyOffset+off)
		}
		if _, err := r.ReadAt(l[:], info.BodyOffset+off); err != nil {
			return fmt.Errorf("reading %s: %w", file, err)
		}
		n := binary.LittleEndian.Uint64(l[:])
		if n > maxFrame || n > uint64(left-8) {
			return fmt.Errorf("its record at byte %d claims %d bytes where %d remain", info.BodyOffset+off, n, left-8)
		}
		off += 8 + int64(n)
	}
	return nil
}

// Restore loads the backup file written by Backup into a new database at
// dir, which must not exist or be empty, and fsyncs it. The file is checked
// whole first (VerifyBackup), so a cut or damaged backup writes nothing. If
// loading fails anyway, what was written to dir is removed.
func Restore(file, dir string, log *slog.Logger) (nodes int, err error) {
	if err := emptyTarget(dir); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	f, size, err := openBackup(file)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	info, err := verifyBackup(f, size, file)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if info.Legacy {
		log.Warn("this backup has no end marker (written by a pxe-pilot from before 2026-12-01), so a copy cut between two records cannot be told from a complete one: compare the restored node count with the appliance's", "file", file)
	}
	created := topNew(dir)
	defer func() {
		if err != nil {
			err = errors.Join(err, clearTarget(dir, created))
		}
	}()
	s, err := Open(dir, Options{Logger: log})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	body := &hashCounter{r: io.NewSectionReader(f, info.BodyOffset, info.BodyLen), h: sha256.New()}
	if err := load(s, body); err != nil {
		return 0, fmt.Errorf("restore: backup %s cannot be loaded (is it a pxe-pilot backup?); nothing was kept in %s: %w", file, dir, err)
	}
	if !info.Legacy && !bytes.Equal(body.h.Sum(nil), info.sum) {
		return 0, fmt.Errorf("restore: backup %s changed while it was loaded (its SHA-256 no longer matches); nothing was kept in %s: run restore again from a copy nobody writes to", file, dir)
	}
	if err := s.syncWAL(); err != nil {
		return 0, err
	}
	list, err := s.List()
	return len(list), err
}

// load runs Badger's Load, whose panics on a malformed KV list (checkFrames
// has checked only the lengths) become an error.
func load(s *Store, r io.Reader) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed record: %v", p)
		}
	}()
	return s.db.Load(r, 256)
}

// openBackup opens a backup file for reading twice (check, then load). A
// pipe or other stream (restore <(zcat …)) is first copied to an unlinked
// temporary file, so that nothing is left behind if restore is stopped.
func openBackup(file string) (*os.File, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fi.Mode().IsRegular() {
		return f, fi.Size(), nil
	}
	defer f.Close()
	tmp, err := os.CreateTemp("", "pxe-pilot-restore-*")
	if err != nil {
		return nil, 0, fmt.Errorf("backup %s is a stream, and a temporary copy to check it first cannot be made: %w", file, err)
	}
	os.Remove(tmp.Name())
	n, err := io.Copy(tmp, f)
	if err != nil {
		tmp.Close()
		return nil, 0, fmt.Errorf("backup %s: reading the stream failed after %d bytes: %w", file, n, err)
	}
	return tmp, n, nil
}

// topNew is the outermost directory of dir's path that does not exist yet
// ("" when dir exists): what a restore into dir creates.
func topNew(dir string) string {
	top := ""
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			return top
		}
		top = d
		if filepath.Dir(d) == d {
			return top
		}
	}
}

// clearTarget removes what a failed restore wrote: the directories it
// created (created, from topNew), else dir's contents (it was empty).
func clearTarget(dir, created string) error {
	if created != "" {
		return os.RemoveAll(created)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
