package store

// Recover salvages a damaged database directory into a new one. It reads the
// source with the raw readers of scan.go (never with Badger, which would
// truncate and delete as it opens) and never writes to it.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// RecoverReport says what Recover salvaged and what it could not.
type RecoverReport struct {
	Nodes, Events int
	// Unreadable lists each part of the source that could not be read, and
	// why: damaged tables, damaged write-ahead logs, a damaged MANIFEST.
	Unreadable []string
	// LostAcks lists the nodes whose latest acknowledged change (from the
	// acknowledgement journal) is not in what was salvaged: check them and
	// set their reinstall flags again.
	LostAcks []MAC
}

type salvaged struct {
	version uint64
	deleted bool
	inVlog  bool
	value   []byte
}

// Recover copies every readable node and event of the database at from into
// a new database at to, which must not exist or be empty. Every table file is
// read, listed in the MANIFEST or not; each write-ahead log is read past any
// damage, entry by entry, for everything that still verifies; of each key
// the newest version found wins.
func Recover(from, to string, log *slog.Logger) (RecoverReport, error) {
	var rep RecoverReport
	if log == nil {
		log = slog.Default()
	}
	if err := emptyTarget(to); err != nil {
		return rep, err
	}
	if a, err := filepath.Abs(from); err == nil {
		if b, err := filepath.Abs(to); err == nil && a == b {
			return rep, fmt.Errorf("--from and --to are the same directory (%s); salvage into a new one", a)
		}
	}
	if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
		return rep, fmt.Errorf("%s is not a database directory: %v", from, err)
	}
	keys := map[string]salvaged{}
	visit := func(key []byte, version uint64, meta byte, value []byte) {
		if isInternalKey(key) {
			return
		}
		if cur, ok := keys[string(key)]; ok && cur.version >= version {
			return
		}
		keys[string(key)] = salvaged{version: version, deleted: meta&metaDelete != 0,
			inVlog: meta&metaValuePointer != 0, value: append([]byte(nil), value...)}
	}
	mi, err := readManifest(from)
	if err != nil {
		rep.Unreadable = append(rep.Unreadable, "MANIFEST: "+err.Error())
	} else if !mi.present {
		rep.Unreadable = append(rep.Unreadable, "MANIFEST: missing (every table was read anyway)")
	} else if mi.problem != "" {
		rep.Unreadable = append(rep.Unreadable, mi.problem+" (every table was read anyway)")
	}
	tables, err := tableFiles(from)
	if err != nil {
		return rep, err
	}
	for id := range mi.live {
		if tables[id] == nil {
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("table %06d.sst, listed in the MANIFEST, is missing", id))
		}
	}
	ids := make([]uint64, 0, len(tables))
	for id := range tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	topt := tableOptions(from)
	for _, id := range ids {
		ti := tables[id]
		if err := readTable(ti, topt, visit); err != nil {
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("table %s: %v", filepath.Base(ti.name), err))
		} else if ti.problem != "" {
			rep.Unreadable = append(rep.Unreadable, ti.problem+"; "+salvageTable(ti, topt, visit))
		}
	}
	wals, err := walFiles(from)
	if err != nil {
		return rep, err
	}
	for _, name := range wals {
		if msg, err := salvageWAL(name, visit); err != nil {
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("write-ahead log %s: %v", filepath.Base(name), err))
		} else if msg != "" {
			rep.Unreadable = append(rep.Unreadable, msg)
		}
	}
	if acks, err := readAcks(from); err != nil {
		rep.Unreadable = append(rep.Unreadable, "acknowledgement journal: "+err.Error()+" (lost acknowledged changes cannot be listed)")
	} else {
		lost, _ := lostAcks(acks, func(k string) (seen, bool) {
			v, ok := keys[k]
			return seen{version: v.version, deleted: v.deleted}, ok
		})
		for _, k := range lost {
			rep.LostAcks = append(rep.LostAcks, MAC(strings.TrimPrefix(k, "n/")))
		}
	}
	s, err := Open(to, Options{Logger: log})
	if err != nil {
		return rep, err
	}
	wb := s.db.NewWriteBatch()
	for k, v := range keys {
		switch {
		case v.deleted:
			continue
		case v.inVlog:
			rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("key %q: its value is in the value log, which recover does not read", k))
			continue
		case strings.HasPrefix(k, "n/"):
			rep.Nodes++
		case strings.HasPrefix(k, "e/"):
			rep.Events++
		}
		if err := wb.Set([]byte(k), v.value); err != nil {
			wb.Cancel()
			s.Close()
			return rep, err
		}
	}
	if err := wb.Flush(); err != nil {
		s.Close()
		return rep, err
	}
	if err := s.syncWAL(); err != nil {
		s.Close()
		return rep, err
	}
	return rep, s.Close()
}

// salvageWAL reads one write-ahead log: the part Badger would replay, then,
// past damage, every later entry whose checksum still verifies. It says what
// it could not read.
func salvageWAL(name string, visit kvVisit) (string, error) {
	w, err := readWAL(name, visit)
	if err != nil || !w.damaged {
		return "", err
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	found, skipped := 0, 0
	for off := int(w.validEnd); off < len(b); {
		e, n, ok := walEntry(b[off:])
		if !ok {
			if b[off] != 0 {
				skipped++
			}
			off++
			continue
		}
		if e.meta&metaFinTxn == 0 {
			visit(e.key, e.version, e.meta&^metaTxn, e.value)
			found++
		}
		off += n
	}
	return fmt.Sprintf("write-ahead log %s is damaged at byte %d of %d: %d unreadable bytes skipped, %d later entries salvaged",
		filepath.Base(name), w.validEnd, w.size, skipped, found), nil
}

// emptyTarget accepts a directory that does not exist or is empty.
func emptyTarget(dir string) error {
	if dir == "" {
		return errors.New("no target directory given")
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("target %s cannot be read: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("target %s is not empty; give a new or empty directory (nothing was written)", dir)
	}
	return nil
}

// salvageTable reads a table that failed verification block by block,
// skipping the blocks whose checksum fails, and says what it got.
func salvageTable(ti *tableInfo, topt table.Options, visit kvVisit) string {
	mf, err := z.OpenMmapFile(ti.name, os.O_RDONLY, 0)
	if err != nil {
		return "nothing salvaged (" + err.Error() + ")"
	}
	defer mf.Close(-1) // never truncate, never delete
	topt.ChkMode = options.OnBlockRead
	var t *table.Table
	if !survives(func() { t, err = table.OpenTable(mf, topt) }) || err != nil {
		return "nothing salvaged (its index is unreadable)"
	}
	starts := t.KeySplits(1<<30, nil) // every block's first key
	bad := 0
	for i, start := range starts {
		var next []byte
		if i+1 < len(starts) {
			next = []byte(starts[i+1])
		}
		n := 0
		survives(func() {
			it := t.NewIterator(0)
			defer it.Close()
			for it.Seek([]byte(start)); it.Valid(); it.Next() {
				k := it.Key()
				if next != nil && y.CompareKeys(k, next) >= 0 {
					break
				}
				v := it.Value()
				visit(y.ParseKey(k), y.ParseTs(k), v.Meta, v.Value)
				n++
			}
		})
		if n == 0 {
			bad++
		}
	}
	return fmt.Sprintf("%d of its %d blocks unreadable, the others salvaged", bad, len(starts))
}

// survives runs fn, reporting false if it panicked (Badger's table code
// panics on some damage instead of returning an error).
func survives(fn func()) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	fn()
	return true
}
