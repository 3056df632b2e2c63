package store

// Raw readers for Badger's files, used by the start-up integrity check and
// by Recover. They read without Badger and never write: Badger, as soon as it
// opens a directory (even read-only), truncates a MANIFEST that ends in a
// partial record, deletes every table the MANIFEST does not list, and
// truncates each write-ahead log at its first bad entry. After that, what
// was lost cannot be told from what never was.
//
// Formats (badger v4.9.6):
//
//	MANIFEST  "Bdgr", 2-byte external magic, 2-byte version, then records:
//	          4-byte length, 4-byte CRC-32C, protobuf pb.ManifestChangeSet
//	          (manifest.go: ReplayManifestFile, helpRewrite).
//	NNNNN.mem the memtable's write-ahead log: a 20-byte header (key id,
//	          IV), then entries: meta, user meta, uvarint key length, value
//	          length, expiry, key (user key + 8-byte version), value,
//	          CRC-32C of all before it (structs.go header, value.go
//	          safeRead.Entry). Entries of one transaction carry bitTxn and
//	          end with a "!badger!txn" entry carrying bitFinTxn; replay stops
//	          at the first entry that does not verify (memtable.go iterate).
//	NNNNN.sst tables, read with Badger's own table package.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/proto"
)

// Badger's entry meta bits (value.go).
const (
	metaDelete       = 1 << 0
	metaValuePointer = 1 << 1
	metaTxn          = 1 << 6
	metaFinTxn       = 1 << 7
	walHeaderSize    = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// manifestInfo is what a MANIFEST says, and where it stops making sense.
type manifestInfo struct {
	present bool
	size    int64
	// problem is empty when every record verifies to the end of the file.
	problem string
	live    map[uint64]bool // tables created and not deleted
	deleted map[uint64]bool // tables deleted (their files may linger)
	maxID   uint64          // highest table id mentioned
}

func readManifest(dir string) (manifestInfo, error) {
	mi := manifestInfo{live: map[uint64]bool{}, deleted: map[uint64]bool{}}
	b, err := os.ReadFile(filepath.Join(dir, "MANIFEST"))
	if errors.Is(err, os.ErrNotExist) {
		return mi, nil
	}
	if err != nil {
		return mi, err
	}
	mi.present, mi.size = true, int64(len(b))
	if len(b) < 8 || !bytes.Equal(b[:4], []byte("Bdgr")) {
		mi.problem = fmt.Sprintf("MANIFEST (%d bytes) does not start with Badger's header", len(b))
		return mi, nil
	}
	off := 8
	for off < len(b) {
		if len(b)-off < 8 {
			mi.problem = fmt.Sprintf("MANIFEST ends in a partial record at byte %d of %d", off, len(b))
			return mi, nil
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n > len(b)-off-8 {
			mi.problem = fmt.Sprintf("MANIFEST ends in a partial record at byte %d of %d", off, len(b))
			return mi, nil
		}
		rec := b[off+8 : off+8+n]
		var cs pb.ManifestChangeSet
		if crc32.Checksum(rec, castagnoli) != sum || proto.Unmarshal(rec, &cs) != nil {
			mi.problem = fmt.Sprintf("MANIFEST record at byte %d of %d fails its checksum", off, len(b))
			return mi, nil
		}
		for _, c := range cs.Changes {
			mi.maxID = max(mi.maxID, c.Id)
			if c.Op == pb.ManifestChange_CREATE {
				mi.live[c.Id] = true
				delete(mi.deleted, c.Id)
			} else {
				delete(mi.live, c.Id)
				mi.deleted[c.Id] = true
			}
		}
		off += 8 + n
	}
	return mi, nil
}

// kvVisit sees one entry: the user key, its version, Badger's meta bits and
// the value (valid only during the call).
type kvVisit func(key []byte, version uint64, meta byte, value []byte)

// tableInfo is one *.sst on disk.
type tableInfo struct {
	id, maxVersion uint64
	name           string
	problem        string // empty when the table verifies
}

func tableFiles(dir string) (map[uint64]*tableInfo, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return nil, err
	}
	out := map[uint64]*tableInfo{}
	for _, name := range names {
		id, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".sst"), 10, 64)
		if err != nil {
			continue // not Badger's; Badger ignores it too
		}
		out[id] = &tableInfo{id: id, name: name}
	}
	return out, nil
}

// readTable verifies one table (footer, then every block's checksum) and,
// when visit is not nil, walks its entries. A damaged table sets problem;
// an error is an I/O failure (permission, read error).
func readTable(ti *tableInfo, topt table.Options, visit kvVisit) error {
	if err := checkTableFooter(ti.name); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return err
		}
		ti.problem = err.Error()
		return nil
	}
	mf, err := z.OpenMmapFile(ti.name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer mf.Close(-1) // -1: never truncate; the table's own DecrRef would delete the file
	defer func() {
		if r := recover(); r != nil {
			ti.problem = fmt.Sprintf("table %s is damaged: its blocks do not verify (badger: %v)", filepath.Base(ti.name), r)
		}
	}()
	t, err := table.OpenTable(mf, topt)
	if err != nil {
		ti.problem = fmt.Sprintf("table %s is damaged: %v", filepath.Base(ti.name), err)
		return nil
	}
	ti.maxVersion = t.MaxVersion()
	if visit == nil {
		return nil
	}
	it := t.NewIterator(0)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		visit(y.ParseKey(k), y.ParseTs(k), v.Meta, v.Value)
	}
	return nil
}

// walInfo is one write-ahead log (*.mem).
type walInfo struct {
	name       string
	size       int64
	validEnd   int64  // where Badger's replay will stop (and truncate)
	damaged    bool   // something other than zeros follows validEnd
	entries    int    // entries replay will keep
	maxVersion uint64 // highest version replay will keep
}

func walFiles(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	return names, err // Glob sorts: Badger replays in file-id order, ids are zero-padded
}

// readWAL replays one write-ahead log the way Badger will (memtable.go
// logFile.iterate), reporting where replay stops and, to visit, every entry
// it keeps.
func readWAL(name string, visit kvVisit) (walInfo, error) {
	w := walInfo{name: name}
	b, err := os.ReadFile(name)
	if err != nil {
		return w, err
	}
	w.size = int64(len(b))
	if len(b) < walHeaderSize {
		w.damaged = len(b) > 0
		return w, nil
	}
	var (
		pending    []walRaw
		lastCommit uint64
		off        = walHeaderSize
	)
	w.validEnd = int64(off)
	keep := func(e walRaw) {
		w.entries++
		w.maxVersion = max(w.maxVersion, e.version)
		if visit != nil {
			visit(e.key, e.version, e.meta, e.value)
		}
	}
	for {
		e, n, ok := walEntry(b[off:])
		if !ok {
			break
		}
		off += n
		switch {
		case e.meta&metaTxn != 0:
			if lastCommit == 0 {
				lastCommit = e.version
			}
			if lastCommit != e.version {
				goto done
			}
			e.meta &^= metaTxn
			pending = append(pending, e)
		case e.meta&metaFinTxn != 0:
			ts, err := strconv.ParseUint(string(e.value), 10, 64)
			if err != nil || ts != lastCommit {
				goto done
			}
			for _, p := range pending {
				keep(p)
			}
			pending, lastCommit = pending[:0], 0
			w.validEnd = int64(off)
		default:
			if lastCommit != 0 {
				goto done
			}
			keep(e)
			w.validEnd = int64(off)
		}
	}
done:
	w.damaged = bytes.IndexFunc(b[w.validEnd:], func(r rune) bool { return r != 0 }) >= 0
	return w, nil
}

type walRaw struct {
	key, value []byte
	version    uint64
	meta       byte
}

// walEntry decodes one entry at the start of b; ok is false where Badger's
// replay would stop (end, zeros, a bad length or checksum).
func walEntry(b []byte) (e walRaw, n int, ok bool) {
	if len(b) < 2 {
		return e, 0, false
	}
	e.meta, n = b[0], 2
	var lens [3]uint64
	for i := range lens {
		v, c := binary.Uvarint(b[n:])
		if c <= 0 {
			return e, 0, false
		}
		lens[i], n = v, n+c
	}
	klen, vlen := lens[0], lens[1]
	if klen == 0 || klen > 1<<16 || vlen > uint64(len(b)) || uint64(len(b)-n) < klen+vlen+4 {
		return e, 0, false
	}
	end := n + int(klen+vlen)
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return e, 0, false
	}
	k := b[n : n+int(klen)]
	if len(k) < 8 {
		return e, 0, false
	}
	e.key, e.version, e.value = y.ParseKey(k), y.ParseTs(k), b[n+int(klen):end]
	return e, end + 4, true
}

// isInternalKey: Badger's own keys ("!badger!…": transaction markers,
// banned namespaces), never ours.
func isInternalKey(k []byte) bool { return bytes.HasPrefix(k, []byte("!badger!")) }
