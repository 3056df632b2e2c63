// Package store keeps PXE Pilot's nodes and their boot history in Badger.
//
// # Layout
//
//	n/<mac>              Node in CBOR (codec.go; JSON in older records), with
//	                     the node's event sequence beside its fields
//	                     (events.go; absent in records written by older
//	                     versions)
//	e/<mac>/<be64 nanos> Event in CBOR (JSON in older ones; key bumped past
//	                     the newest if the clock did not move), the last
//	                     Options.History kept per node
//	q/<mac>              the event sequence as older versions kept it (be64
//	                     newest event key suffix, be32 live events); moved
//	                     into the node record at the node's next event
//
// # Durability
//
// Badger runs with SyncWrites off, and the store decides when to fsync:
//
//   - Admin changes (SetReinstall, SetLocalBootScript, Delete, MarkInstalled)
//     and every boot that changes a node's lifecycle state are fsynced before
//     the method returns. When the API has answered, the change survives a
//     crash or a power cut.
//   - Boot bookkeeping that changes no state (last_seen, last IP, boot count,
//     facts, the event itself) is committed to Badger's write-ahead log at
//     once, so it survives a crash of the process, and fsynced by a
//     background loop every Options.SyncInterval (default 1 s), so a power
//     cut loses at most that much of it. Never a reinstall flag.
//   - After a failed fsync the store refuses durable writes until it is
//     reopened (syncfail.go).
//
// # Sizing
//
// Badger's defaults assume a big server (64 MiB memtables ×5, a 256 MiB
// block cache, 1 GiB value-log files, 4 compactors). An appliance holds a
// few thousand small records, so Open shrinks all of them; see tunedOptions
// for the numbers and the README's performance section for what they give.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Errors callers can test with errors.Is.
var (
	ErrNotFound = errors.New("node not found")
	// ErrInUse means another process holds the database directory.
	ErrInUse  = errors.New("database is in use by another process")
	ErrClosed = errors.New("store is closed")
	// ErrDiskFull means the database's file system has less free space
	// than Options.MinFree: the write was refused and nothing changed.
	ErrDiskFull = errors.New("not enough free disk space")
)

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// History is how many boot events are kept per node (default 20).
	History int
	// SyncInterval bounds how much boot bookkeeping a power cut can lose
	// (default 1 s).
	SyncInterval time.Duration
	// OnSyncError, when set, is called from the background sync loop with
	// each of its failures (the appliance counts them). The first failed
	// fsync also makes the store refuse durable writes (syncfail.go).
	OnSyncError func(error)
	// MinFree is the free space, in bytes, the database's file system
	// must keep for a write to be accepted (default 16 MiB, 64 MiB with
	// SizingLarge; negative turns the check off). Badger writes its log
	// and its tables through memory-mapped files, and a page that the
	// kernel cannot back on a full disk kills the process with SIGBUS
	// instead of returning an error. Refusing writes while there is still
	// room for a memtable flush and the compaction it starts (1 MiB
	// memtables and 256 KiB tables; with SizingLarge 8 MiB and 2 MiB, an
	// 8 MiB base level, hence four times the reserve) turns that crash
	// into ErrDiskFull.
	MinFree int64
	// Sizing chooses Badger's memtable and table sizes: SizingSmall (the
	// default) for the least memory, SizingLarge for more boots a second
	// in a storm at about 1.5 times the memory. See tunedOptions.
	Sizing Sizing
}

// Sizing is a choice of Badger's memtable and table sizes (Options.Sizing).
type Sizing int

const (
	SizingSmall Sizing = iota
	SizingLarge
)

// defaultMinFree is Options.MinFree's default for a sizing.
func defaultMinFree(sz Sizing) int64 {
	if sz == SizingLarge {
		return 64 << 20
	}
	return 16 << 20
}

// ParseSizing reads "small" or "large" (PXE_STORE_SIZING).
func ParseSizing(v string) (Sizing, error) {
	switch v {
	case "small":
		return SizingSmall, nil
	case "large":
		return SizingLarge, nil
	}
	return 0, fmt.Errorf("store sizing %q is neither small nor large", v)
}

// Store is safe for concurrent use.
type Store struct {
	db      *badger.DB
	minFree int64
	path    string
	log     *slog.Logger
	history int

	dirty      atomic.Bool
	roomyUntil atomic.Int64 // unix nanos: checkSpace skips the statfs until then
	stop       chan struct{}
	done       chan struct{}
	closeMu    sync.Once
	closeErr   error

	// nodeLocks serialise the writers of one node (by a hash of its MAC).
	// Badger's optimistic transactions alone turn a burst of boots of one
	// machine into ErrConflict storms: with 16 concurrent requests for one
	// MAC, some lost the race 20 times in a row and the boot was dropped.
	// Writers of different nodes still run in parallel.
	nodeLocks [64]sync.Mutex

	counts counts      // nodes per state, kept up to date by every commit
	feed   Feed        // committed changes, for the console and the metrics
	acks   *ackJournal // hook (ackjournal.go): acknowledged durable writes

	syncFail    atomic.Pointer[syncFailure] // the first failed fsync (syncfail.go)
	onSyncError func(error)                 // Options.OnSyncError

	forgetHook func(MAC) // tests: runs between ForgetIdle's scan and a delete
}

func (s *Store) nodeLock(m MAC) *sync.Mutex {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(m); i++ {
		h = (h ^ uint32(m[i])) * 16777619
	}
	return &s.nodeLocks[h%uint32(len(s.nodeLocks))]
}

// tunedOptions sizes Badger for a small appliance. Where the memory went,
// measured with bench/storemem -memprofile and bench/memory.sh at 10,000
// nodes (docs/performance-notes.md, Memory): the live heap is 6-9 MB, but
// each memtable flush and compaction briefly holds a table builder per output
// table (an allocator of twice the table size, plus a 3 MiB index buffer
// Badger allocates for every table it builds) and a fresh memtable arena,
// 20-30 MB at once; the collector's target (twice the live heap) then let
// the process reach 80-95 MB. Hence:
//
//   - 1 MiB memtables, two of them (one filling, one flushing): the arena is
//     allocated whole, and a flush builds a table of that size. 4 MiB
//     memtables made every flush a 12 MB peak; with 1 MiB the flushes are
//     four times as frequent and cost as much in total, in smaller steps.
//   - 256 KiB tables (BaseTableSize) and two level-0 tables before a
//     compaction: small builders, small compactions. Badger pools up to
//     eight table builders and keeps each one's arena at the largest size
//     it reached; an arena holds the table both uncompressed and
//     compressed, about 2.2 times the uncompressed size, and our records
//     compress several times (measured with the JSON records of then:
//     3-5 times), so a 1 MiB table's arena grew to 14 MB. With
//     1 MiB tables the pooled arenas held 59 MB at 50,000 nodes
//     (bench/storemem -nodes 50000 -memprofile, inuse_space), with 256 KiB
//     tables 30 MB (128 KiB: 34 MB, the memtable flushes' arenas then
//     dominate).
//   - Snappy compression stays on (our records, with their repeated
//     strings, compress well; JSON did about 3x): tables are
//     read through mmap, and every page read counts in the resident size,
//     so uncompressed tables cost 12 MB at 10,000 nodes instead of 4.
//   - A 1 MiB block cache, the least Badger accepts with compression, and
//     no index cache: the cache holds decoded blocks on the heap, and
//     without an index cache each table's small index (a few KiB for 1 MiB
//     tables) and bloom filter stay in memory as they are.
//   - Values up to 64 KiB stay in the LSM tree (ours are small records); the
//     value log only exists for Badger's bookkeeping, 16 MiB files.
//   - A 1 MiB base level (L1; Badger's default is 10 MiB, ours was 4).
//     Our keys are random MACs, so every memtable flush overlaps the whole
//     of L1 and each level-0 compaction rewrites all of it; Badger splits
//     that rewrite into up to five parallel parts, each with up to eight
//     table builders in flight, and those builders' arenas are the live
//     heap's peaks. A small L1 is rewritten in one or two parts, and the
//     data settles in the levels below it through compactions that each
//     touch one table and the few it overlaps. Peak RSS at 10,000 nodes
//     (bench/memory.sh 10000, release build, six runs each): 4 MiB base
//     48-59 MiB, 2 MiB 45-50 MiB, 1 MiB 42-46 MiB. A boot storm on 10,000
//     known machines (bench/boot/run.sh, alternating): 4,766-4,854 req/s
//     against 4,898-5,564 with 4 MiB, a little less; p99 43-57 ms against
//     67-71 ms, a little better.
//   - Two compactors, the least Badger allows.
//   - The same table size at every level (TableSizeMultiplier 1; Badger
//     doubles it at each level below the base one by default, and the
//     pooled arenas grow with it: at 64,000 nodes the live heap had
//     reached 176 MB).
//
// The soft memory limit (cmd: PXE_MEMORY_LIMIT, cmd/pxe-pilot/memlimit.go)
// does the rest.
//
// SizingLarge trades memory for boot storms: every one of the choices above
// makes Badger flush and compact more often, in smaller steps, and a storm
// of boots is a storm of writes. 8 MiB memtables (a flush builds one 8 MiB
// table, so flushes are eight times rarer), 2 MiB tables and an 8 MiB base
// level (compactions touch fewer, larger tables, and Badger allocates its
// 3 MiB index buffer for each table it builds: an eighth as many of those).
// Measured with bench/boot/run.sh and bench/memory.sh (README, Performance,
// Scale; the other sizes tried are in docs/performance-notes.md).
// Options.MinFree grows with it.
func tunedOptions(path string, log *slog.Logger, sz Sizing) badger.Options {
	o := badger.DefaultOptions(path).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(false).
		WithMemTableSize(1 << 20).
		// Values above the threshold would go to the value log; ours are
		// small CBOR records, and Badger requires the threshold to stay
		// under its batch limit, 15 % of the memtable size (150 KiB).
		WithValueThreshold(64 << 10).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(256 << 10).
		WithBaseLevelSize(1 << 20).
		WithValueLogFileSize(16 << 20).
		WithBlockCacheSize(1 << 20).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithCompactL0OnClose(true)
	o.TableSizeMultiplier = 1
	if sz == SizingLarge {
		o = o.WithMemTableSize(8 << 20).
			WithBaseTableSize(2 << 20).
			WithBaseLevelSize(8 << 20)
	}
	return o
}

// Open opens (or creates) the Badger directory at path.
func Open(path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("database path is empty (set DATABASE_PATH)")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.History <= 0 {
		o.History = 20
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.Sizing != SizingSmall && o.Sizing != SizingLarge {
		return nil, fmt.Errorf("database at %s: store sizing %d is neither SizingSmall nor SizingLarge", path, o.Sizing)
	}
	if o.MinFree == 0 {
		o.MinFree = defaultMinFree(o.Sizing)
	}
	// Create the directory here, so "not a directory" or "permission
	// denied" reads as such (Badger flattens the cause into a string).
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("database at %s cannot be created (check DATABASE_PATH and the owner of its parent directory): %w", path, err)
	}
	// Hook (integrity.go): check the directory before Badger changes it.
	acks, err := preOpenCheck(path, o.Logger)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(tunedOptions(path, o.Logger, o.Sizing))
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "Cannot acquire directory lock"), strings.Contains(msg, "resource temporarily unavailable"):
			return nil, fmt.Errorf("database at %s is in use by another process (stop the other pxe-pilot, or set DATABASE_PATH to another directory): %w", path, ErrInUse)
		default:
			return nil, openError(path, err) // hook (integrity.go)
		}
	}
	// Hook (integrity.go): ask Badger for every acknowledged change.
	acks2, err := postOpenCheck(db, path, acks, o.Logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, path: path, log: o.Logger, history: o.History, minFree: o.MinFree,
		onSyncError: o.OnSyncError, stop: make(chan struct{}), done: make(chan struct{})}
	s.acks = acks2 // hook (ackjournal.go)
	c, err := s.Recount()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("database at %s: counting the nodes failed: %w", path, err)
	}
	s.counts.n = c
	go s.syncLoop(o.SyncInterval)
	return s, nil
}

func (s *Store) syncLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.dirty.Swap(false) {
				if err := s.syncAndMark(); err != nil { // hook (ackhooks.go): syncWAL, then a sync mark
					s.dirty.Store(true)
					s.log.Error("store: background sync failed", "path", s.path, "err", err)
					if s.onSyncError != nil {
						s.onSyncError(err)
					}
				}
			}
		}
	}
}

// Close stops the sync loop and closes Badger, which flushes and fsyncs
// everything. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeMu.Do(func() {
		close(s.stop)
		<-s.done
		s.feed.CloseAll()
		s.closeErr = s.closeAndMark() // hook (ackhooks.go): s.db.Close, then the journal
	})
	return s.closeErr
}

// roomySpace is how much free space beyond Options.MinFree lets writes
// skip the statfs for roomyFor: this appliance cannot write 64 MiB in
// 100 ms, so the reserve still holds, and under load a statfs per boot
// cost 4 % of its CPU.
const (
	roomySpace = 64 << 20
	roomyFor   = 100 * time.Millisecond
)

// checkSpace refuses a write when the file system is nearly full; see
// Options.MinFree. One statfs per write costs about a microsecond; when
// the last one saw plenty of room (roomySpace), the next roomyFor skip it.
func (s *Store) checkSpace() error {
	if s.minFree < 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now < s.roomyUntil.Load() {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.path, &st); err != nil {
		return nil // cannot tell; let Badger report what it meets
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free >= s.minFree+roomySpace {
		s.roomyUntil.Store(now + int64(roomyFor))
	}
	if free < s.minFree {
		return fmt.Errorf("database at %s: only %d KiB free on its file system, below the %d MiB reserve the store keeps so it never crashes on a full disk; free some space: %w",
			s.path, free>>10, s.minFree>>20, ErrDiskFull)
	}
	return nil
}

// Path is the database directory.
func (s *Store) Path() string { return s.path }

// Ping checks that the store answers a read and has room to write, and that
// no fsync has failed since it opened (syncfail.go).
func (s *Store) Ping() error {
	if s.db.IsClosed() {
		return ErrClosed
	}
	if err := s.syncBroken(); err != nil {
		return err
	}
	if err := s.checkSpace(); err != nil {
		return err
	}
	return s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte("n/"))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
}

func nodeKey(m MAC) []byte { return []byte("n/" + string(m)) }

// storedNode is a node record as stored: the node and its event sequence
// (nil in records written before the sequence moved into them). Readers
// that decode a record into a Node ignore the sequence.
type storedNode struct {
	Node
	Seq *eventSeq `json:"event_seq,omitempty" cbor:"100,keyasint,omitempty"`
}

// getNode reads m's record, with its event sequence for the writers that put
// the node back (putNode) or add an event (addEvent).
func getNode(txn *badger.Txn, m MAC) (Node, eventSeq, error) {
	item, err := txn.Get(nodeKey(m))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Node{}, eventSeq{known: true}, ErrNotFound // no node, no events
	}
	if err != nil {
		return Node{}, eventSeq{}, err
	}
	var sn storedNode
	err = item.Value(func(v []byte) error { return decodeRecord(v, &sn) })
	if err != nil {
		return Node{}, eventSeq{}, fmt.Errorf("node %s: stored record is unreadable: %w", m, err)
	}
	var q eventSeq
	if sn.Seq != nil {
		q = *sn.Seq
		q.known = true
	}
	return sn.Node, q, nil
}

// installingKey indexes the nodes in StateInstalling, so the stall sweep
// reads those and not every node.
func installingKey(m MAC) []byte { return []byte("x/installing/" + string(m)) }

// put writes n, whose state was before (as read in this transaction; ""
// for a new node), with its event sequence q as getNode or addEvent left
// it, keeps the installing index in step and notes the change in c.
func (c *commit) put(txn *badger.Txn, before State, n Node, q eventSeq) error {
	c.before, c.node, c.wrote = before, &n, true
	var err error
	c.entry, err = putNode(txn, before, n, q)
	return err
}

// putNode writes n's record and returns its entry: after the commit, the
// acknowledgement journal reads the version Badger gave it there
// (committedVersion).
func putNode(txn *badger.Txn, before State, n Node, q eventSeq) (*badger.Entry, error) {
	sn := storedNode{Node: n}
	if q.known {
		sn.Seq = &q
	}
	v, err := encodeRecord(sn)
	if err != nil {
		return nil, err
	}
	e := badger.NewEntry(nodeKey(n.MAC), v)
	if err := txn.SetEntry(e); err != nil {
		return nil, err
	}
	switch {
	case n.State == StateInstalling && before != StateInstalling:
		err = txn.Set(installingKey(n.MAC), nil)
	case n.State != StateInstalling && before == StateInstalling:
		err = txn.Delete(installingKey(n.MAC))
	}
	return e, err
}

// update runs fn in a read-write transaction, retrying on conflicts with
// concurrent writers of the same node. When fn reports durable, the commit is
// fsynced before update returns; otherwise the sync loop picks it up.
//
// After a successful commit, and still under the node's lock (so changes of
// one node are told in commit order), the counts move from before to the
// node's new state and the change goes to the feed: c describes it (set by
// fn; c.Node nil means deleted).
func (s *Store) update(m MAC, c *commit, fn func(txn *badger.Txn) (durable bool, err error)) error {
	if s.db.IsClosed() {
		return ErrClosed
	}
	if err := s.checkSpace(); err != nil {
		return err
	}
	var durable bool
	run := func(txn *badger.Txn) (err error) {
		durable, err = fn(txn)
		if err == nil && durable {
			err = s.syncBroken() // refused before it commits (syncfail.go)
		}
		return err
	}
	var err error
	mu := s.nodeLock(m)
	mu.Lock()
	for attempt := 0; attempt < 20; attempt++ {
		*c = commit{}
		err = s.db.Update(run)
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err == nil {
		s.committed(m, c)
	}
	// Hook (ackhooks.go): the version of a durable write, under the node's lock.
	ack := s.ackPrepare(m, c, durable, err)
	mu.Unlock() // the fsync below needs no lock, and batches with others
	if errors.Is(err, badger.ErrConflict) {
		return fmt.Errorf("node %s: too many concurrent writers: %w", m, err)
	}
	if err != nil {
		return err
	}
	if !durable {
		s.dirty.Store(true)
		return nil
	}
	if err := s.syncWAL(); err != nil {
		err = fmt.Errorf("database at %s: committed but not synced to disk: %w", s.path, err)
		if c.undo != nil {
			var uc commit
			if uerr := s.update(m, &uc, func(txn *badger.Txn) (bool, error) { return false, c.undo(txn, &uc) }); uerr != nil {
				return errors.Join(err, fmt.Errorf("node %s: undoing the change failed too: %w", m, uerr))
			}
			if uc.wrote {
				s.log.Error("store: a boot's change was committed but its fsync failed; undone, so the machine's reinstall stays pending", "mac", m, "err", err)
			}
		}
		return err
	}
	return s.ackCommit(ack) // hook (ackhooks.go): journal it after Badger's fsync
}

// commit is what one transaction changed, for counts and the feed.
type commit struct {
	before State // "" for a node that did not exist
	node   *Node // nil: deleted (or nothing written)
	event  *Event
	wrote  bool
	entry  *badger.Entry // the node record's, as put set it
	// undo, when set, puts the node back if the commit's fsync fails
	// (undoBoot); it runs in a transaction of its own.
	undo func(*badger.Txn, *commit) error
}

func (s *Store) committed(m MAC, c *commit) {
	if !c.wrote {
		return
	}
	var after State
	if c.node != nil {
		after = c.node.State
	}
	s.counts.move(c.before, after)
	s.feed.Publish(Change{MAC: m, Node: c.node, Event: c.event})
}

// always adapts an admin write, which is always durable, to update.
func always(fn func(txn *badger.Txn) error) func(*badger.Txn) (bool, error) {
	return func(txn *badger.Txn) (bool, error) { return true, fn(txn) }
}

// Get returns one node, or ErrNotFound.
func (s *Store) Get(m MAC) (Node, error) {
	var n Node
	err := s.db.View(func(txn *badger.Txn) (err error) {
		n, _, err = getNode(txn, m)
		return err
	})
	return n, err
}

// List returns every node, sorted by MAC.
func (s *Store) List() ([]Node, error) {
	nodes := []Node{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("n/"), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var n Node
			if err := it.Item().Value(func(v []byte) error { return decodeRecord(v, &n) }); err != nil {
				return fmt.Errorf("node %s: stored record is unreadable: %w", it.Item().Key()[2:], err)
			}
			nodes = append(nodes, n)
		}
		return nil
	})
	// Keys are "n/<mac>" in one fixed-width form, so Badger's byte order is
	// already MAC order; sort anyway so the contract does not rest on it.
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].MAC < nodes[j].MAC })
	return nodes, err
}

// SetReinstall sets (on) or clears (off) the reinstall flag. Setting creates
// an unknown node; clearing an unknown node is ErrNotFound. Clearing a node
// that is not waiting for a reinstall leaves its state as it is. The change is
// fsynced before SetReinstall returns.
func (s *Store) SetReinstall(m MAC, on bool, now time.Time) (Node, error) {
	var (
		n Node
		c commit
	)
	err := s.update(m, &c, always(func(txn *badger.Txn) (err error) {
		var q eventSeq
		n, q, err = getNode(txn, m)
		var before State
		switch {
		case errors.Is(err, ErrNotFound) && on:
			n = newNode(m, now)
		case err != nil:
			return err
		default:
			before = n.State
		}
		switch {
		case on:
			n.setState(StateReinstall, now)
		case n.State == StateReinstall:
			n.setState(StateLocal, now)
		}
		return c.put(txn, before, n, q)
	}))
	return n, err
}

// SetLocalBootScript sets the node's own local-boot command ("" restores the
// default), creating the node if unknown. The caller validates script. The
// change is fsynced before SetLocalBootScript returns.
func (s *Store) SetLocalBootScript(m MAC, script string, now time.Time) (Node, error) {
	var (
		n Node
		c commit
	)
	err := s.update(m, &c, always(func(txn *badger.Txn) (err error) {
		var q eventSeq
		n, q, err = getNode(txn, m)
		before := n.State
		if errors.Is(err, ErrNotFound) {
			n, err, before = newNode(m, now), nil, ""
		}
		if err != nil {
			return err
		}
		n.LocalBootScript = script
		return c.put(txn, before, n, q)
	}))
	return n, err
}

// MarkInstalled is the admin's "installed": a node in any state moves to
// installed, its install (if one runs) ends as installed. Unknown nodes are
// ErrNotFound. Fsynced before MarkInstalled returns.
func (s *Store) MarkInstalled(m MAC, now time.Time) (Node, error) {
	return s.Update(m, false, now, func(n *Node) (*Event, error) {
		if n.State == StateInstalling || n.State == StateReinstall || n.State == StateFailed {
			ev, err := n.Report(EventInstalled, true, "", "admin", "marked installed by the admin", now)
			return &ev, err
		}
		n.setState(StateInstalled, now)
		return &Event{Type: EventInstalled, Reason: "marked installed by the admin", State: n.State}, nil
	})
}

// Update applies an admin or installer change to one node, in one
// transaction: fn gets the node as stored (a new one when create is true and
// the node is unknown; else unknown is ErrNotFound) and may change it; a
// non-nil event it returns is added to the node's history. An error from fn
// changes nothing and is returned as is. The change is fsynced before
// Update returns.
func (s *Store) Update(m MAC, create bool, now time.Time, fn func(n *Node) (*Event, error)) (Node, error) {
	var (
		n Node
		c commit
	)
	err := s.update(m, &c, always(func(txn *badger.Txn) (err error) {
		var q eventSeq
		n, q, err = getNode(txn, m)
		var before State
		created := false
		switch {
		case errors.Is(err, ErrNotFound) && create:
			n, err, created = newNode(m, now), nil, true
		case err == nil:
			before = n.State
		}
		if err != nil {
			return err
		}
		ev, err := fn(&n)
		if err != nil {
			return err
		}
		if ev != nil {
			ev.Time = now
			if ev.State == "" {
				ev.State = n.State
			}
			c.event = ev
			if err := s.addEvent(txn, m, now, *ev, created, &q); err != nil {
				return err
			}
		}
		return c.put(txn, before, n, q)
	}))
	return n, err
}

// Installing calls fn for every node in StateInstalling (read from the
// installing index), until fn returns false.
func (s *Store) Installing(fn func(Node) bool) error {
	var macs []MAC
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := []byte("x/installing/")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			macs = append(macs, MAC(it.Item().Key()[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range macs {
		n, err := s.Get(m)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if n.State == StateInstalling && !fn(n) {
			return nil
		}
	}
	return nil
}

// Delete forgets a node and its history. Unknown nodes are ErrNotFound.
// Fsynced before Delete returns.
func (s *Store) Delete(m MAC) error {
	var c commit
	return s.update(m, &c, always(func(txn *badger.Txn) error {
		old, _, err := getNode(txn, m)
		if err != nil {
			return err
		}
		return deleteNode(txn, m, old.State, &c)
	}))
}

// deleteNode deletes m, which was in state before, with its indexes and
// history, in txn.
func deleteNode(txn *badger.Txn, m MAC, before State, c *commit) error {
	c.before, c.wrote = before, true
	if err := txn.Delete(nodeKey(m)); err != nil {
		return err
	}
	if err := txn.Delete(installingKey(m)); err != nil {
		return err
	}
	if err := txn.Delete(eventSeqKey(m)); err != nil { // older versions' sequence
		return err
	}
	keys, err := eventKeys(txn, m)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// RecordBoot records one boot of m: it creates the node if unknown, updates
// last_seen, last IP, boot count and facts, then calls decide with the
// updated node. decide returns the event to record and may change the node's
// lifecycle (Node.StartInstall); it must be a pure function of the node, as
// it runs again if the transaction is retried. The node as stored is
// returned.
//
// Durability: when decide changed the node's state, the boot is fsynced
// before RecordBoot returns (the reinstall flag is consumed on disk before
// the installer script goes out). Otherwise it is in Badger's write-ahead
// log at once and on disk within Options.SyncInterval.
func (s *Store) RecordBoot(m MAC, sg Sighting, decide func(*Node) Event) (Node, Event, error) {
	var (
		n  Node
		ev Event
	)
	now := sg.Time
	var c commit
	err := s.update(m, &c, func(txn *badger.Txn) (changed bool, err error) {
		var q eventSeq
		n, q, err = getNode(txn, m)
		isNew := errors.Is(err, ErrNotFound)
		if isNew {
			n, err = newNode(m, now), nil
		}
		if err != nil {
			return false, err
		}
		before, orig := n.State, n
		seen := now
		n.LastSeen = &seen
		n.BootCount++
		if sg.IP != "" {
			n.LastIP = sg.IP
		}
		mergeFacts(&n.Facts, sg.Facts)
		ev = decide(&n)
		ev.Time = now
		if ev.IP == "" {
			ev.IP = sg.IP
		}
		if ev.State == "" {
			ev.State = n.State
		}
		stored := before
		if isNew {
			stored = ""
		}
		evc := ev
		c.event = &evc
		if err := s.addEvent(txn, m, now, ev, isNew, &q); err != nil {
			return false, err
		}
		if err := c.put(txn, stored, n, q); err != nil {
			return false, err
		}
		if n.State != before && !isNew {
			c.undo = s.undoBoot(m, orig, n, sg)
		}
		return n.State != before, nil
	})
	if err != nil {
		return Node{}, Event{}, err
	}
	return n, ev, nil
}

// undoBoot puts a node back as it was before a boot that changed its state
// (a consumed reinstall flag: reinstall → installing), for when that boot's
// fsync is the one that fails. The machine then gets the error script and
// boots its disk, so the reinstall must stay pending, as for the boots the
// failed sync refuses before they commit (syncfail.go). The undo is itself
// not durable (nothing is, after a failed sync); Close's flush keeps it. It
// does nothing if the node's state moved since (another writer came first),
// and puts back only the fields the transition changed.
func (s *Store) undoBoot(m MAC, prev, wrote Node, sg Sighting) func(*badger.Txn, *commit) error {
	return func(txn *badger.Txn, c *commit) error {
		cur, q, err := getNode(txn, m)
		if err != nil {
			return err
		}
		if cur.State != wrote.State || !cur.StateChangedAt.Equal(wrote.StateChangedAt) || cur.InstallCount != wrote.InstallCount {
			return nil
		}
		// Only what the boot's transition changed goes back: anything an
		// admin wrote since (a profile, labels) stays.
		back := cur
		back.State, back.Reinstall, back.StateChangedAt, back.InstallCount, back.Install = prev.State, prev.Reinstall, prev.StateChangedAt, prev.InstallCount, prev.Install
		ev := Event{Time: sg.Time, IP: sg.IP, Decision: DecisionError, State: back.State,
			Reason: "the database could not sync this boot to disk, so the machine got the error script: " + string(wrote.State) + " undone, the node stays " + string(back.State)}
		c.event = &ev
		if err := s.addEvent(txn, m, sg.Time, ev, false, &q); err != nil {
			return err
		}
		return c.put(txn, cur.State, back, q)
	}
}

// mergeFacts keeps what the node already told us when a later boot does not
// repeat it (an iPXE without SMBIOS support reports no serial).
func mergeFacts(dst *Facts, src Facts) {
	set := func(d *string, s string) {
		if s != "" {
			*d = s
		}
	}
	set(&dst.Platform, src.Platform)
	set(&dst.BuildArch, src.BuildArch)
	set(&dst.UUID, src.UUID)
	set(&dst.Serial, src.Serial)
	set(&dst.Manufacturer, src.Manufacturer)
	set(&dst.Product, src.Product)
}
