package store

// The acknowledgement journal: a small file beside Badger's own
// ("pxe-pilot.acks" in the database directory) that records, for every node
// the store changed, the Badger version of its newest change. At start-up
// the integrity check compares it with what Badger's files hold
// (integrity.go): a write-ahead log that ends in damage before its last
// acknowledged entry, a lost memtable file or a MANIFEST that no longer lists
// a table all show up as a node older than the journal says, whatever the
// damage looks like inside Badger's formats.
//
// Why a journal and not only format checks: Badger's write-ahead log has no
// end marker, so "replay stopped at byte N" cannot tell a torn, never
// acknowledged last write from eight flipped bytes that cut off half the log.
// Only a record of what was written can.
//
// Three kinds of record, so the check never asks for more than the store
// promised (store.go's package doc):
//
//   - hard: a durable write (admin changes, boots that change the lifecycle),
//     appended after Badger's fsync and fdatasynced before the method
//     returns. Always checked.
//   - soft: boot bookkeeping, committed to Badger's write-ahead log but not
//     fsynced; appended without a sync. A power cut may lose it, a process
//     crash may not. Checked when a later hard record or sync mark proves
//     Badger fsynced it (every version up to a hard record's was synced before
//     that record was written), or when the machine has not rebooted since
//     the journal was written (same kernel boot id): then the page cache
//     never lost anything, and a missing write means damage.
//   - sync mark: the sync loop's and Close's "every version up to N is on
//     disk", fdatasynced.
//
// Format: "PXEACK1 <boot id>\n", then records: 4-byte length, 4-byte
// CRC-32C of the payload, payload = 8-byte version, 1 flag byte, key. A
// partial last record (a crash during the append) is ignored, and so are the
// zeros that end the file (it is preallocated); damage with a record after
// it is not a partial last record, and is reported (readAcks). It holds at
// most two records per key after each start and is rewritten when appends fill it, at twice
// that size plus ackSlack bytes, so it stays at about 100 bytes a node.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	ackFileName = "pxe-pilot.acks"
	ackMagic    = "PXEACK1 "
	ackSlack    = 64 << 10

	ackFlagDeleted = 1 << 0
	ackFlagSoft    = 1 << 1
	ackFlagSync    = 1 << 2
)

// ackRec is what the journal says about one key.
type ackRec struct {
	hard        uint64 // newest durable change
	deleted     bool   // and it was a deletion
	soft        uint64 // newest change not fsynced with it
	softDeleted bool   // and it was a deletion (retention's, forget.go)
}

// ackState is a whole journal.
type ackState struct {
	keys   map[string]ackRec
	synced uint64 // every version up to here was fsynced
	bootID string // the kernel boot the journal was written in
}

// synced is the newest version known to be on disk: a sync mark or the
// newest hard record.
func (st *ackState) covered() uint64 {
	c := st.synced
	for _, r := range st.keys {
		c = max(c, r.hard)
	}
	return c
}

type ackJournal struct {
	mu   sync.Mutex
	dir  string
	f    *os.File
	st   ackState
	off  int64 // where the next record goes
	size int64 // the file's preallocated size
	buf  []byte

	// committed is the newest version ackPrepare has seen committed: what a
	// sync mark may claim. (badger.DB.MaxVersion reads memtables without a
	// lock; the race detector flags it during writes.)
	committed atomic.Uint64

	// syncMu serialises fdatasync with the swap of files in rewrite; it is
	// taken after mu, never before. gen counts rewrites; syncedOff is how
	// much of the current file is known synced. Both change under syncMu.
	syncMu    sync.Mutex
	gen       uint64
	syncedOff int64
}

// bootID names the running kernel boot; "" when unknown (then every soft
// record is treated as if a reboot had happened).
var bootID = func() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return string(bytes.TrimSpace(b))
}

// readAcks reads a journal; a missing one (a new database, or one written
// by a version without the journal) is empty.
func readAcks(dir string) (ackState, error) {
	st := ackState{keys: map[string]ackRec{}}
	b, err := os.ReadFile(filepath.Join(dir, ackFileName))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	return parseAcks(b)
}

// parseAcks reads a journal's bytes.
func parseAcks(b []byte) (ackState, error) {
	st := ackState{keys: map[string]ackRec{}}
	nl := bytes.IndexByte(b, '\n')
	if !bytes.HasPrefix(b, []byte(ackMagic)) || nl < 0 {
		return st, fmt.Errorf("%s does not start with %q", ackFileName, ackMagic)
	}
	st.bootID = string(b[len(ackMagic):nl])
	sameBoot := st.bootID != "" && st.bootID == bootID()
	for off := nl + 1; off+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		p, ok := ackRecordAt(b, off)
		if !ok {
			if n == 0 && !bytes.ContainsFunc(b[off:], func(r rune) bool { return r != 0 }) {
				break // the preallocated, still zero end
			}
			next, synced := nextAckRecord(b, off+1)
			if next < 0 || (!synced && !sameBoot) {
				// The end: a record torn by a crash before it was
				// acknowledged, and after a power cut (another kernel
				// boot) perhaps unsynced records the disk got before it.
				break
			}
			what := "a record written in this kernel boot"
			if synced {
				what = "a synced record"
			}
			return st, fmt.Errorf("%s: the record at byte %d of %d is damaged (%s), and %s follows it at byte %d: not the end of an append cut by a crash",
				ackFileName, off, len(b), ackProblem(b, off), what, next)
		}
		st.apply(string(p[9:]), binary.BigEndian.Uint64(p), p[8])
		off += 8 + n
	}
	return st, nil
}

// maxAckRecord bounds a record's length (9 bytes and a node key).
const maxAckRecord = 9 + 64

// ackRecordAt returns the payload of the record at off if it is whole and
// verifies.
func ackRecordAt(b []byte, off int) ([]byte, bool) {
	if off+8 > len(b) {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(b[off:]))
	if n < 9 || n > maxAckRecord || off+8+n > len(b) {
		return nil, false
	}
	p := b[off+8 : off+8+n]
	return p, crc32.Checksum(p, castagnoli) == binary.BigEndian.Uint32(b[off+4:])
}

func ackProblem(b []byte, off int) string {
	switch n := binary.BigEndian.Uint32(b[off:]); {
	case n == 0:
		return "zeros where a record should be"
	case n < 9 || n > maxAckRecord || off+8+int(n) > len(b):
		return fmt.Sprintf("a length of %d", n)
	}
	return "it fails its checksum"
}

// nextAckRecord finds the first record that verifies at or after from (-1:
// none), and whether any record from there on was synced (a durable write's
// or a sync mark, not a soft one). Appends go in order and each sync covers
// everything before it, so damage before a synced record is not a torn
// tail; nor is damage before any record in the same kernel boot, where the
// page cache lost nothing. (A power cut in the middle of an fdatasync that
// wrote a later page before an earlier one would also look like this; it
// is reported, never passed over.)
func nextAckRecord(b []byte, from int) (next int, synced bool) {
	next = -1
	for i := from; i+8+9 <= len(b); i++ {
		p, ok := ackRecordAt(b, i)
		if !ok {
			continue
		}
		if next < 0 {
			next = i
		}
		if p[8]&ackFlagSoft == 0 {
			return next, true
		}
		i += 8 + len(p) - 1
	}
	return next, false
}

func (st *ackState) apply(key string, version uint64, flags byte) {
	if flags&ackFlagSync != 0 {
		st.synced = max(st.synced, version)
		return
	}
	r := st.keys[key]
	switch {
	case flags&ackFlagSoft != 0:
		if version >= r.soft {
			r.soft, r.softDeleted = version, flags&ackFlagDeleted != 0
		}
	case version >= r.hard:
		r.hard, r.deleted = version, flags&ackFlagDeleted != 0
	}
	st.keys[key] = r
}

// encode is the journal for st: its header, a sync mark and at most two
// records per key.
func (st *ackState) encode() []byte {
	buf := []byte(ackMagic + st.bootID + "\n")
	buf = appendAck(buf, "", st.synced, ackFlagSync)
	for k, r := range st.keys {
		var fl byte
		if r.deleted {
			fl = ackFlagDeleted
		}
		if r.hard > 0 {
			buf = appendAck(buf, k, r.hard, fl)
		}
		if r.soft > r.hard {
			fl := byte(ackFlagSoft)
			if r.softDeleted {
				fl |= ackFlagDeleted
			}
			buf = appendAck(buf, k, r.soft, fl)
		}
	}
	return buf
}

func appendAck(buf []byte, key string, version uint64, flags byte) []byte {
	var p [9]byte
	binary.BigEndian.PutUint64(p[:], version)
	p[8] = flags
	h := crc32.Update(crc32.Checksum(p[:], castagnoli), castagnoli, []byte(key))
	buf = binary.BigEndian.AppendUint32(buf, uint32(9+len(key)))
	buf = binary.BigEndian.AppendUint32(buf, h)
	buf = append(buf, p[:]...)
	return append(buf, key...)
}

// openAckJournal writes a compact journal (one record per key) and opens it
// for appends.
func openAckJournal(dir string, st ackState) (*ackJournal, error) {
	st.bootID = bootID()
	j := &ackJournal{dir: dir, st: st}
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
	buf := j.st.encode()
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
			return fsyncFailed("", err)
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
	j.syncMu.Lock() // no fdatasync of the old file is running
	old := j.f
	j.f, j.off, j.size, j.syncedOff = f, int64(used), int64(len(buf)), int64(used)
	j.gen++
	j.syncMu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fsyncFailed("", d.Sync())
}

// add journals one record; sync says whether to fdatasync it before
// returning. The fdatasync runs outside mu, so a boot's unsynced record never
// waits for another writer's sync, and concurrent syncs share one.
func (j *ackJournal) add(key string, version uint64, flags byte, sync bool) error {
	j.mu.Lock()
	if j.f == nil {
		j.mu.Unlock()
		return ErrClosed
	}
	j.st.apply(key, version, flags)
	j.buf = appendAck(j.buf[:0], key, version, flags)
	if j.off+int64(len(j.buf)) > j.size {
		err := j.rewrite() // full: the rewrite holds this record too, and syncs it
		j.mu.Unlock()
		return err
	}
	if _, err := j.f.WriteAt(j.buf, j.off); err != nil {
		j.mu.Unlock()
		return err
	}
	j.off += int64(len(j.buf))
	f, gen, end := j.f, j.gen, j.off
	j.mu.Unlock()
	if !sync {
		return nil
	}
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if gen != j.gen || j.syncedOff >= end {
		return nil // a rewrite or another writer's sync covered this record
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fsyncFailed("fdatasync "+f.Name(), err)
	}
	j.syncedOff = end
	return nil
}

func (j *ackJournal) close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	j.gen++
	return err
}
