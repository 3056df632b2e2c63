package store

// Table checks run before Badger opens a directory, so a damaged table is a
// clear error naming the path instead of a panic in a Badger goroutine or
// nodes that silently go missing.

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// checkTables verifies every table file before Badger opens it. Badger
// opens tables in goroutines of its own and reads their footers without
// bounds checks, so a truncated .sst (a full disk, an interrupted copy, a bad
// sector) panics the whole process instead of failing Open. And by default
// it never checks block checksums, so flipped bits inside a table silently
// make nodes (and their reinstall flags) disappear; asking it to check
// (options.OnTableRead) trips over a nil pointer in table.VerifyChecksum
// (v4.9.6) when a block does not decompress. So Open checks each table
// here, in its own goroutine where a panic can be recovered: footer lengths
// that fit the file, then every block's checksum. Tables here are a few
// hundred KiB, so this costs milliseconds.
func checkTables(dir string) error {
	ssts, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	bo := tunedOptions(dir, slog.Default())
	topt := table.Options{
		ReadOnly: true, ChkMode: options.OnTableRead,
		BlockSize: bo.BlockSize, Compression: bo.Compression, ZSTDCompressionLevel: bo.ZSTDCompressionLevel,
		TableSize: uint64(bo.BaseTableSize), BloomFalsePositive: bo.BloomFalsePositive,
	}
	for _, name := range ssts {
		if err := checkTableFooter(name); err != nil {
			return err
		}
		if err := verifyTable(name, topt); err != nil {
			return fmt.Errorf("table %s is damaged: %w", filepath.Base(name), err)
		}
	}
	return nil
}

func verifyTable(name string, topt table.Options) (err error) {
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer mf.Close(-1) // -1: never truncate; the table's own DecrRef would delete the file
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("its blocks do not verify (badger: %v)", r)
		}
	}()
	// OpenTable verifies every block's checksum (ChkMode OnTableRead).
	_, err = table.OpenTable(mf, topt)
	return err
}

func checkTableFooter(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	// Footer: …, index, 4-byte index length, checksum, 4-byte checksum length.
	size := fi.Size()
	bad := fmt.Errorf("table %s is damaged (%d bytes, footer does not fit)", filepath.Base(name), size)
	var b [4]byte
	if size < 8 {
		return bad
	}
	if _, err := f.ReadAt(b[:], size-4); err != nil {
		return err
	}
	sumLen := int64(binary.BigEndian.Uint32(b[:]))
	if sumLen > size-8 {
		return bad
	}
	if _, err := f.ReadAt(b[:], size-8-sumLen); err != nil {
		return err
	}
	if indexLen := int64(binary.BigEndian.Uint32(b[:])); indexLen > size-8-sumLen {
		return bad
	}
	return nil
}
