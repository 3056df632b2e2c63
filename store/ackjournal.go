package store

// The acknowledgement journal: a small append-only file beside Badger's own
// ("pxe-pilot.acks" in the database directory) that says, for every node
// whose change the store acknowledged as durable, the Badger version of that
// change. It is written after Badger's fsync and fsynced itself before the
// write method returns, so it never claims more than Badger was asked to
// keep. At start-up the integrity check compares it with what Badger's files
// hold (integrity.go): a write-ahead log that ends in damage before its last
// acknowledged entry, a lost memtable file or a MANIFEST that no longer lists
// a table all show up as a node older than the journal says, whatever the
// damage looks like inside Badger's formats.
//
// Why a journal and not only format checks: Badger's write-ahead log has no
// end marker, so "replay stopped at byte N" cannot tell a torn, never
// acknowledged last write from eight flipped bytes that cut off half the log.
// Only a record of what was acknowledged can.
//
// Format: "PXEACK1\n", then records: 4-byte length, 4-byte CRC-32C of the
// payload, payload = 8-byte version, 1 flag byte (1: deleted), key. A
// partial last record (a crash during the append, before the write was
// acknowledged) is ignored, and so are the zeros that end the file (it is
// preallocated). It holds one record per key after each start and is
// rewritten when appends fill it, at twice that size (plus
// 4 KiB), so it stays at about 80 bytes a node.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

const (
	ackFileName  = "pxe-pilot.acks"
	ackMagic     = "PXEACK1\n"
	ackSlack     = 4096
	ackFlagDeled = 1
)

// ackRec is the newest acknowledged change of one key.
type ackRec struct {
	version uint64
	deleted bool
}

type ackJournal struct {
	mu   sync.Mutex
	dir  string
	f    *os.File
	keys map[string]ackRec
	off  int64 // where the next record goes
	size int64 // the file's preallocated size
	buf  []byte
}

// readAcks reads a journal; a missing one (a new database, or one written
// by a version without the journal) is empty.
func readAcks(dir string) (map[string]ackRec, error) {
	keys := map[string]ackRec{}
	b, err := os.ReadFile(filepath.Join(dir, ackFileName))
	if errors.Is(err, os.ErrNotExist) {
		return keys, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) < len(ackMagic) || string(b[:len(ackMagic)]) != ackMagic {
		return nil, fmt.Errorf("%s does not start with %q", ackFileName, ackMagic)
	}
	for off := len(ackMagic); off+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n == 0 {
			break // the preallocated, still zero end
		}
		end := min(off+8+n, len(b))
		p := b[off+8 : end]
		if n < 9 || end-off-8 != n || crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(b[off+4:]) {
			if !bytes.ContainsFunc(b[end:], func(r rune) bool { return r != 0 }) {
				break // the last record, torn by a crash before it was acknowledged
			}
			return nil, fmt.Errorf("%s: record at byte %d of %d fails its checksum", ackFileName, off, len(b))
		}
		r := ackRec{version: binary.BigEndian.Uint64(p), deleted: p[8]&ackFlagDeled != 0}
		keys[string(p[9:])] = r
		off = end
	}
	return keys, nil
}

func appendAck(buf []byte, key string, r ackRec) []byte {
	var p [9]byte
	binary.BigEndian.PutUint64(p[:], r.version)
	if r.deleted {
		p[8] = ackFlagDeled
	}
	h := crc32.Update(crc32.Checksum(p[:], castagnoli), castagnoli, []byte(key))
	buf = binary.BigEndian.AppendUint32(buf, uint32(9+len(key)))
	buf = binary.BigEndian.AppendUint32(buf, h)
	buf = append(buf, p[:]...)
	return append(buf, key...)
}

// openAckJournal writes a compact journal (one record per key) and opens it
// for appends.
func openAckJournal(dir string, keys map[string]ackRec) (*ackJournal, error) {
	j := &ackJournal{dir: dir, keys: keys}
	if err := j.rewrite(); err != nil {
		return nil, err
	}
	return j, nil
}

// rewrite writes one record per key into a new file, zero-filled to twice
// that plus ackSlack bytes, and renames it over the old one, so a crash
// leaves either journal whole. Appends then overwrite zeros in place: on
// ext4 an fdatasync that must also grow the file commits the file system's
// journal and cost 2.4 ms a write here; in place it costs about what
// Badger's own sync does.
func (j *ackJournal) rewrite() error {
	buf := []byte(ackMagic)
	for k, r := range j.keys {
		buf = appendAck(buf, k, r)
	}
	used := len(buf)
	buf = append(buf, make([]byte, used+ackSlack)...)
	name := filepath.Join(j.dir, ackFileName)
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := os.Rename(tmp, name); err != nil {
			return err
		}
		return syncDir(j.dir)
	}()
	if err != nil {
		f.Close()
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.off, j.size = f, int64(used), int64(len(buf))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// add journals one acknowledged change and syncs it.
func (j *ackJournal) add(key string, r ackRec) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return ErrClosed
	}
	j.keys[key] = r
	j.buf = appendAck(j.buf[:0], key, r)
	if j.off+int64(len(j.buf)) > j.size {
		return j.rewrite() // full: the rewrite holds this record too
	}
	if _, err := j.f.WriteAt(j.buf, j.off); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return err
	}
	j.off += int64(len(j.buf))
	return nil
}

func (j *ackJournal) close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// pendingAck is a durable write on its way to the journal.
type pendingAck struct {
	key string
	rec ackRec
	ok  bool
}

// ackPrepare reads the version Badger gave the node's newest change (a
// tombstone for Delete). update calls it under the node's lock, right after
// the commit, so no other writer of the node can come between.
func (s *Store) ackPrepare(m MAC, durable bool, err error) pendingAck {
	if !durable || err != nil || s.acks == nil {
		return pendingAck{}
	}
	var p pendingAck
	key := nodeKey(m)
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: key})
		defer it.Close()
		it.Seek(key)
		if it.Valid() && bytes.Equal(it.Item().Key(), key) {
			p = pendingAck{key: string(key), ok: true,
				rec: ackRec{version: it.Item().Version(), deleted: it.Item().IsDeletedOrExpired()}}
		}
		return nil
	})
	return p
}

// ackCommit journals a durable write once Badger has synced it.
func (s *Store) ackCommit(p pendingAck) error {
	if !p.ok {
		return nil
	}
	if err := s.acks.add(p.key, p.rec); err != nil {
		return fmt.Errorf("database at %s: committed and synced, but its acknowledgement journal %s cannot be written: %w",
			s.path, ackFileName, err)
	}
	return nil
}
