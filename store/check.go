package store

// Table checks run before Badger opens a directory, so a damaged table is a
// clear error naming the path instead of a panic in a Badger goroutine or
// nodes that silently go missing.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// checkTableFooter checks that a table's footer lengths fit the file before
// Badger's table package reads them: Badger reads footers without bounds
// checks, so a truncated .sst (a full disk, an interrupted copy, a bad
// sector) panics instead of failing. readTable (scan.go) then verifies every
// block's checksum: by default Badger never checks them, so flipped bits
// inside a table would silently make nodes disappear, and asking it to
// (options.OnTableRead) trips over a nil pointer in table.VerifyChecksum
// (v4.9.6) when a block does not decompress, which readTable recovers.
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
