package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
)

// runImport copies a Badger database (a stopped appliance's directory, or
// a backup file) into the etcd store that PXE_STORE and PXE_ETCD_* name, as
// the appliances on etcd will read them: every node with its admin state
// (reinstall flag, install in progress, profile, labels, host name,
// local-boot script) and its boot history. A node etcd already holds is
// kept as it is there and listed. Running it again is safe: what an earlier
// run imported is skipped.
func runImport(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pxe-pilot import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the Badger database directory of a stopped appliance (its DATABASE_PATH), or a file written by pxe-pilot backup")
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 0 || *from == "" {
		fmt.Fprintln(stderr, "pxe-pilot: usage: PXE_STORE=etcd://host:2379,… pxe-pilot import --from <database dir | backup file>")
		return 2
	}
	cfg, err := loadConfig(nil, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: invalid configuration:\n%s\n", indent(err.Error()))
		return 2
	}
	if cfg.Store.Etcd == nil {
		fmt.Fprintln(stderr, "pxe-pilot: import copies a Badger database into etcd, and PXE_STORE does not name etcd; set PXE_STORE=etcd://… (and PXE_ETCD_PREFIX, PXE_ETCD_* for TLS and auth) as the appliances on etcd have them")
		return 2
	}
	log := storeLogger(stderr)

	src, what, cleanup, err := openImportSource(*from, cfg.BootHistory, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: import: %v\n", err)
		return 1
	}
	defer cleanup()

	cfg.Store.Etcd.Logger = log
	dst, where, err := openStore(cfg, log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: import: %v\n", err)
		return 1
	}
	defer dst.Close()
	if err := dst.Ping(); err != nil {
		fmt.Fprintf(stderr, "pxe-pilot: import: %s does not answer: %v; nothing was imported (check PXE_STORE and that a majority of the etcd members is up)\n", where, err)
		return 1
	}
	imp := dst.(*etcdstore.Store)

	var nodes, events int
	var kept []store.MAC
	fail := func(err error) int {
		fmt.Fprintf(stderr, "pxe-pilot: import: %v\n", err)
		fmt.Fprintf(stderr, "pxe-pilot: import stopped after %d nodes (%d kept as etcd had them); run it again to import the rest: what is already in etcd is skipped\n", nodes, len(kept))
		return 1
	}
	var after store.MAC
	for {
		page, next, err := src.ListPage(after, 500, store.Filter{})
		if err != nil {
			return fail(fmt.Errorf("reading %s: %w", what, err))
		}
		for _, n := range page {
			evs, err := src.Events(n.MAC)
			if err != nil {
				return fail(fmt.Errorf("reading %s: %w", what, err))
			}
			ok, err := imp.Import(n, evs)
			if err != nil {
				return fail(fmt.Errorf("writing node %s to %s: %w", n.MAC, where, err))
			}
			if !ok {
				kept = append(kept, n.MAC)
				continue
			}
			nodes++
			events += min(len(evs), cfg.BootHistory)
		}
		if next == "" {
			break
		}
		after = next
	}
	fmt.Fprintf(stdout, "imported %d nodes and %d boot events from %s into %s\n", nodes, events, what, where)
	if len(kept) > 0 {
		fmt.Fprintf(stdout, "%d nodes were already in etcd and were kept as etcd has them (learnt by an appliance on etcd, or imported before); check their reinstall flags, profiles and labels:\n", len(kept))
		for _, m := range kept {
			fmt.Fprintf(stdout, "  %s\n", m)
		}
		return exitSalvagedWithLosses
	}
	return 0
}

// openImportSource opens a Badger database directory, or loads a backup
// file into a temporary one, for reading, keeping history events a node
// (PXE_BOOT_HISTORY, as the appliances have it); cleanup closes it (and
// removes the temporary directory).
func openImportSource(from string, history int, stderr io.Writer) (src *store.Store, what string, cleanup func(), err error) {
	fi, err := os.Stat(from)
	if err != nil {
		return nil, "", nil, fmt.Errorf("--from: %w", err)
	}
	log := storeLogger(stderr)
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(from, "MANIFEST")); err != nil {
			return nil, "", nil, fmt.Errorf("--from %s is not a pxe-pilot database directory (it has no MANIFEST); give the DATABASE_PATH of the Badger appliance, or a file written by pxe-pilot backup", from)
		}
		st, err := store.Open(from, store.Options{Logger: log, History: history})
		if err != nil {
			if errors.Is(err, store.ErrInUse) {
				return nil, "", nil, fmt.Errorf("database at %s is in use by a running appliance: stop it first, or import a file written by pxe-pilot backup (which works while it runs): %w", from, store.ErrInUse)
			}
			return nil, "", nil, err
		}
		return st, "database at " + from, func() { st.Close() }, nil
	}
	tmp, err := os.MkdirTemp("", "pxe-pilot-import-")
	if err != nil {
		return nil, "", nil, err
	}
	dir := filepath.Join(tmp, "db")
	if _, err := store.Restore(from, dir, log); err != nil {
		os.RemoveAll(tmp)
		if cause := errors.Unwrap(err); cause != nil {
			err = cause
		}
		return nil, "", nil, fmt.Errorf("--from %s cannot be loaded as a pxe-pilot backup (is it one, and complete? give a file written by pxe-pilot backup, or the database directory): %w", from, err)
	}
	st, err := store.Open(dir, store.Options{Logger: log, History: history})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, "", nil, err
	}
	return st, "backup " + from, func() { st.Close(); os.RemoveAll(tmp) }, nil
}
