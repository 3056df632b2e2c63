package store

// The start-up integrity check. Open runs preOpenCheck before Badger sees
// the directory and postOpenCheck right after; a directory that fails either
// is refused with ErrDamaged and an error that names it, says what is wrong
// and the safe way out. The appliance never starts with less than it
// acknowledged, and never starts empty over a damaged directory.
//
// Two checks, because each catches what the other cannot:
//
//   - Structure (read from the files, scan.go): the MANIFEST is present when
//     data is, verifies to its last byte, every table it lists exists and
//     verifies, and every table on disk that it does not list is a leftover
//     Badger may remove: one the MANIFEST deleted, or one newer than every
//     table it lists holding nothing newer than what the MANIFEST's tables
//     and the write-ahead logs already hold (a compaction or flush killed
//     before its MANIFEST record). Anything else is data Badger would throw
//     away on open.
//   - Acknowledgements (ackjournal.go): every node change the store
//     acknowledged as durable, and every boot it committed that no reboot
//     can have lost since, is in a table the MANIFEST lists or in the part
//     of a write-ahead log that Badger will replay, at its version or newer.
//     This catches damage inside a log, a lost log file and a MANIFEST that
//     lost records at a record boundary, without guessing which bytes Badger
//     would have written.
//
// postOpenCheck asks Badger the same question after it has opened the
// directory: a backstop for anything the file readers did not model. By
// then Badger may have truncated a log, so its refusal says so.
//
// A MANIFEST that ends in a partial record is refused even though Badger
// would truncate it and carry on: a SIGKILL cannot tear the MANIFEST (Badger
// writes each record with one write and fsyncs it), so only a power cut in
// the middle of a compaction or damage can, and this check cannot tell them
// apart. Refusing costs a power-cut victim one "pxe-pilot recover"; accepting
// would let damage drop tables silently.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"golang.org/x/sys/unix"
)

// ErrDamaged means the database directory does not hold everything the store
// acknowledged, or Badger cannot read it. Nothing in it was changed.
var ErrDamaged = errors.New("database is damaged")

func damagedError(path, what string) error {
	return damaged(path, what, "Nothing in it was changed.")
}

// damagedAfterOpen is damagedError for what only Badger's own recovery
// revealed: by then Badger may have truncated a damaged log.
func damagedAfterOpen(path, what string) error {
	return damaged(path, what, "Badger has replayed its logs (it may have truncated a damaged one); copy the directory before anything else.")
}

func damaged(path, what, changed string) error {
	return fmt.Errorf("database at %s is damaged: %s. %s Do not delete it or move it aside to start empty: pending reinstalls would be lost. "+
		"Safe way out: restore a backup into a new directory (pxe-pilot restore <file> --to <new dir>), or salvage what is readable (pxe-pilot recover --from %s --to <new dir>; it reports what it could not read), then set DATABASE_PATH to the new directory: %w",
		path, what, changed, path, ErrDamaged)
}

// accessError explains a directory the process cannot use although nothing
// in it is damaged: a read-only file system, or files owned by someone else.
func accessError(path, file string, err error) error {
	if errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("database at %s is on a read-only file system; the appliance must write to it: remount it read-write or set DATABASE_PATH to a writable directory. Nothing is damaged: do not move it aside or delete it: %w", path, err)
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("database at %s: %s cannot be read and written by this user (permission denied): give the directory and its files back to the user pxe-pilot runs as (chown -R <user> %s). Nothing is damaged: do not move it aside or delete it: %w", path, file, path, err)
	}
	return fmt.Errorf("database at %s: %s cannot be read (%v): the disk may be failing. Do not move it aside or delete it; salvage what is readable to a healthy disk (pxe-pilot recover --from %s --to <new dir>) or restore a backup: %w", path, file, err, path, err)
}

// checkAccess finds a read-only file system or a file this user may not
// read or write before Badger does (Badger flattens those into strings).
func checkAccess(path string) error {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
		return accessError(path, path, syscall.EROFS)
	}
	if err := unix.Access(path, unix.R_OK|unix.W_OK|unix.X_OK); err != nil {
		return accessError(path, "the directory", &os.PathError{Op: "access", Path: path, Err: err})
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return accessError(path, "the directory", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := filepath.Join(path, e.Name())
		if err := unix.Access(name, unix.R_OK|unix.W_OK); err != nil {
			return accessError(path, e.Name(), &os.PathError{Op: "access", Path: name, Err: err})
		}
	}
	return nil
}

func tableOptions(dir string) table.Options {
	bo := tunedOptions(dir, slog.Default(), SizingSmall) // block size and compression: the same in every sizing
	return table.Options{
		ReadOnly: true, ChkMode: options.OnTableRead,
		BlockSize: bo.BlockSize, Compression: bo.Compression, ZSTDCompressionLevel: bo.ZSTDCompressionLevel,
		TableSize: uint64(bo.BaseTableSize), BloomFalsePositive: bo.BloomFalsePositive,
	}
}

// seen is a key's newest version found, and whether it is a tombstone.
type seen struct {
	version uint64
	deleted bool
}

type newest map[string]seen

func (nw newest) visit(want map[string]ackRec) kvVisit {
	return func(key []byte, version uint64, meta byte, _ []byte) {
		k := string(key)
		if _, ok := want[k]; !ok {
			return
		}
		if cur, ok := nw[k]; !ok || version > cur.version {
			nw[k] = seen{version: version, deleted: meta&metaDelete != 0}
		}
	}
}

// lostAcks lists the journaled changes the files do not hold at their
// version or newer: every hard record, and each soft one that was synced
// (covered) or written since the machine last booted. A deletion whose
// tombstone a compaction has since dropped is not lost: an admin's Delete
// (hard) or retention forgetting an idle node (soft).
func lostAcks(st ackState, have func(string) (seen, bool)) (lost []string, firstVersion uint64) {
	covered, sameBoot := st.covered(), st.bootID != "" && st.bootID == bootID()
	for k, a := range st.keys {
		got, ok := have(k)
		need, deletion := a.hard, a.deleted
		if a.soft > need && (sameBoot || a.soft <= covered) {
			need, deletion = a.soft, a.softDeleted
		}
		if (!ok && need > 0 && !deletion) || (ok && got.version < need) {
			lost = append(lost, k)
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		a := st.keys[lost[0]]
		firstVersion = max(a.hard, a.soft)
	}
	return lost, firstVersion
}

// keyName shows a node key as its MAC.
func keyName(k string) string { return strings.TrimPrefix(k, "n/") }

// preOpenCheck reads the directory without Badger and without writing; it
// returns the acknowledgement journal for postOpenCheck.
func preOpenCheck(path string, log *slog.Logger) (ackState, error) {
	if err := checkAccess(path); err != nil {
		log.Error("store: integrity check failed", "path", path, "err", err)
		return ackState{}, err
	}
	acks, what, err := inspect(path)
	switch {
	case err != nil:
		var pe *os.PathError
		file := "a file"
		if errors.As(err, &pe) {
			file = filepath.Base(pe.Path)
		}
		err = accessError(path, file, err)
	case what != "":
		err = damagedError(path, what)
	}
	if err != nil {
		if what == "" {
			log.Error("store: integrity check failed", "path", path, "err", err)
		} else {
			log.Error("store: integrity check failed", "path", path, "problem", what,
				"fix", "restore a backup (pxe-pilot restore) or pxe-pilot recover --from "+path+" --to <new dir>")
		}
		return ackState{}, err
	}
	return acks, nil
}

// inspect returns what is wrong with the directory (empty when nothing), or
// an I/O error.
func inspect(path string) (ackState, string, error) {
	var none ackState
	acks, err := readAcks(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return none, "", err
		}
		return none, "its acknowledgement journal is damaged (" + err.Error() + ")", nil
	}
	mi, err := readManifest(path)
	if err != nil {
		return none, "", err
	}
	tables, err := tableFiles(path)
	if err != nil {
		return none, "", err
	}
	walNames, err := walFiles(path)
	if err != nil {
		return none, "", err
	}
	have := newest{}
	var (
		wals       []walInfo
		walEntries int
		recovered  uint64 // the newest version Badger will hold
	)
	for _, name := range walNames {
		w, err := readWAL(name, have.visit(acks.keys))
		if err != nil {
			return none, "", err
		}
		wals, walEntries, recovered = append(wals, w), walEntries+w.entries, max(recovered, w.maxVersion)
	}
	if !mi.present {
		if len(tables) > 0 || walEntries > 0 || len(acks.keys) > 0 {
			return none, fmt.Sprintf("its MANIFEST is missing, yet %d tables and %d write-ahead-log entries are present", len(tables), walEntries), nil
		}
		return acks, "", nil
	}
	if mi.problem != "" {
		return none, mi.problem, nil
	}
	topt := tableOptions(path)
	for id := range mi.live {
		ti, ok := tables[id]
		if !ok {
			return none, fmt.Sprintf("table %06d.sst, listed in the MANIFEST, is missing", id), nil
		}
		if err := readTable(ti, topt, have.visit(acks.keys)); err != nil {
			return none, "", err
		}
		if ti.problem != "" {
			return none, ti.problem, nil
		}
		recovered = max(recovered, ti.maxVersion)
	}
	for id, ti := range tables {
		if mi.live[id] || mi.deleted[id] {
			continue // a table the MANIFEST deleted: Badger removes it
		}
		if err := readTable(ti, topt, nil); err != nil {
			return none, "", err
		}
		if id <= mi.maxID || ti.problem != "" || ti.maxVersion > recovered {
			return none, fmt.Sprintf("table %s is not listed in the MANIFEST (it holds versions up to %d; the listed tables and write-ahead logs hold up to %d), so Badger would delete it",
				filepath.Base(ti.name), ti.maxVersion, recovered), nil
		}
	}
	if lost, v := lostAcks(acks, func(k string) (seen, bool) { r, ok := have[k]; return r, ok }); len(lost) > 0 {
		what := fmt.Sprintf("%d acknowledged node changes are not in it (first: node %s at version %d)", len(lost), keyName(lost[0]), v)
		for _, w := range wals {
			if w.damaged {
				what += fmt.Sprintf("; write-ahead log %s is damaged at byte %d of %d", filepath.Base(w.name), w.validEnd, w.size)
				break
			}
		}
		return none, what, nil
	}
	return acks, "", nil
}

// postOpenCheck asks Badger itself for every acknowledged key, so a loss
// the file readers did not model still stops the start, then compacts and
// opens the journal.
func postOpenCheck(db *badger.DB, path string, acks ackState, log *slog.Logger) (*ackJournal, error) {
	have := newest{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: []byte("n/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := string(item.Key())
			if _, done := have[k]; !done { // versions come newest first
				have[k] = seen{version: item.Version(), deleted: item.IsDeletedOrExpired()}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lost, v := lostAcks(acks, func(k string) (seen, bool) { r, ok := have[k]; return r, ok }); len(lost) > 0 {
		what := fmt.Sprintf("after Badger's recovery, %d acknowledged node changes are missing (first: node %s at version %d)", len(lost), keyName(lost[0]), v)
		err := damagedAfterOpen(path, what)
		log.Error("store: integrity check failed", "path", path, "problem", what)
		return nil, err
	}
	acks.settle(func(k string) (seen, bool) { r, ok := have[k]; return r, ok })
	j, err := openAckJournal(path, acks)
	if err != nil {
		return nil, accessError(path, ackFileName, err)
	}
	return j, nil
}

// settle brings the soft records the check did not require down to what the
// files hold, before the journal is rewritten under this kernel boot's id.
// After a power cut (the journal is from another boot) a soft record newer
// than every sync may name a write the disk never got, which is allowed;
// kept as it was, the rewrite would make the next start in this boot
// require it and call a healthy database damaged.
func (st *ackState) settle(have func(string) (seen, bool)) {
	if st.bootID != "" && st.bootID == bootID() {
		return // the same boot: every soft record was required, and is there
	}
	covered := st.covered()
	for k, a := range st.keys {
		if a.soft <= a.hard || a.soft <= covered {
			continue
		}
		got, ok := have(k)
		switch {
		case !ok && a.softDeleted:
			continue // retention's delete, its tombstone compacted away
		case !ok || got.version <= a.hard:
			a.soft, a.softDeleted = 0, false
		case got.version < a.soft:
			a.soft, a.softDeleted = got.version, got.deleted
		}
		if a.hard == 0 && a.soft == 0 {
			delete(st.keys, k)
		} else {
			st.keys[k] = a
		}
	}
}

// openError explains an error of badger.Open that Open's own cases did not.
// Badger flattens many causes into strings, so match those too.
func openError(path string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EROFS), strings.Contains(msg, syscall.EROFS.Error()):
		return accessError(path, "a file", fmt.Errorf("%w (%v)", syscall.EROFS, err))
	case errors.Is(err, os.ErrPermission), strings.Contains(msg, syscall.EACCES.Error()), strings.Contains(msg, syscall.EPERM.Error()):
		return accessError(path, "a file", fmt.Errorf("%w (%v)", os.ErrPermission, err))
	case errors.Is(err, syscall.EIO), strings.Contains(msg, syscall.EIO.Error()):
		return accessError(path, "a file", err)
	}
	return damagedError(path, "Badger cannot open it ("+msg+")")
}
