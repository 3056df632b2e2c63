package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// backupT fills a store with 100 nodes (a third of them flagged), writes its
// backup and returns the bytes and the nodes it holds.
func backupT(t *testing.T) ([]byte, []Node) {
	t.Helper()
	s := openT(t, t.TempDir(), Options{})
	for i := 0; i < 100; i++ {
		if _, err := s.SetReinstall(macN(i), i%3 == 0, t0); err != nil && i%3 == 0 {
			t.Fatal(err)
		}
		if _, _, err := s.RecordBoot(macN(i), Sighting{Time: t0, IP: "203.0.113.9"}, localDecision); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	want, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), want
}

func writeFileT(t *testing.T, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pxe.backup")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func checkRestored(t *testing.T, to string, want []Node) {
	t.Helper()
	r, err := Open(to, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, _ := r.List()
	if len(got) != len(want) {
		t.Fatalf("restored %d nodes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].MAC != want[i].MAC || got[i].State != want[i].State || got[i].Reinstall != want[i].Reinstall || got[i].BootCount != want[i].BootCount {
			t.Errorf("restored %+v, want %+v", got[i], want[i])
		}
		ev, err := r.Events(want[i].MAC)
		if err != nil || len(ev) != 1 {
			t.Errorf("restored events of %s: %d, %v", want[i].MAC, len(ev), err)
		}
	}
}

func TestBackupRestore(t *testing.T) {
	b, want := backupT(t)
	if !bytes.HasPrefix(b, []byte(backupHeader)) || !bytes.Contains(b[len(b)-backupTrailerLen:], []byte(backupEndMagic)) {
		t.Fatalf("backup has no header or end marker: % x … % x", b[:24], b[len(b)-backupTrailerLen:])
	}
	file := writeFileT(t, b)
	to := filepath.Join(t.TempDir(), "restored")
	n, err := Restore(file, to, quiet)
	if err != nil || n != len(want) {
		t.Fatalf("Restore = %d nodes, %v; want %d", n, err, len(want))
	}
	checkRestored(t, to, want)
	// A target that is not empty is refused, and left alone.
	if _, err := Restore(file, to, quiet); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Restore into a used directory = %v", err)
	}
	checkRestored(t, to, want)
}

// A backup cut anywhere, or changed, is refused before anything is written.
// The cut right after Badger's first KV list is the one the bare stream
// cannot show: it loads without an error and restores part of the fleet.
func TestRestoreRefusesCutOrDamagedBackups(t *testing.T) {
	b, _ := backupT(t)
	body := len(backupHeader)
	firstList := body + 8 + int(binary.LittleEndian.Uint64(b[body:]))
	if firstList > len(b)-backupTrailerLen {
		t.Fatalf("first KV list ends at %d, past the body (%d bytes)", firstList, len(b))
	}
	flip := func(i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		return c
	}
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "is empty (0 bytes)", nil},
		{"cut in the header", "not even its whole header", b[:7]},
		{"header only", "less than a header and an end marker", b[:body]},
		{"cut after the first KV list", "has no end marker", b[:firstList]},
		{"cut in the middle", "has no end marker", b[:len(b)/2]},
		{"cut in the end marker", "has no end marker", b[:len(b)-1]},
		{"a byte added", "has no end marker", append(bytes.Clone(b), 0)},
		{"a byte of data changed", "SHA-256 does not match", flip(firstList - 3)},
		{"the length changed", "says", flip(len(b) - backupTrailerLen + len(backupEndMagic))},
		{"the checksum changed", "SHA-256 does not match", flip(len(b) - 1)},
		// No header: taken for a backup from before the end marker, whose
		// KV lists must then end exactly at the end of the file.
		{"no header, cut in a KV list", "claims", b[body : firstList-1]},
		{"no header, junk", "claims 11231526151761651079 bytes where 24 remain", []byte("\x87\x65\x43\x21\x87\x65\xde\x9b and then some more junk")},
		{"no header, stray bytes", "stray bytes", append(bytes.Clone(b[body:firstList]), 1, 2, 3)},
		{"whole, but a KV list's length wrong", "not a backup pxe-pilot wrote", rehash(b, func(c []byte) { c[0] ^= 0x01 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFileT(t, tc.data)
			to := filepath.Join(t.TempDir(), "restored")
			n, err := Restore(file, to, quiet)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
				t.Fatalf("Restore = %d nodes, %v; want an error naming %s and saying %q", n, err, file, tc.want)
			}
			if _, err := os.Stat(to); !os.IsNotExist(err) {
				t.Errorf("%s after a refused restore: %v; want it not created", to, err)
			}
			if _, err := VerifyBackup(file); err == nil {
				t.Errorf("VerifyBackup accepted it")
			}
		})
	}
}

// rehash changes the body of backup b with change and writes a new end
// marker for it: a whole backup of what pxe-pilot would never write.
func rehash(b []byte, change func([]byte)) []byte {
	body := bytes.Clone(b[len(backupHeader) : len(b)-backupTrailerLen])
	change(body)
	sum := sha256.Sum256(body)
	out := append([]byte(backupHeader), body...)
	return append(out, backupTrailer(int64(len(body)), sum[:])...)
}

// Backups written before the end marker (Badger's bare stream) still
// restore, with a warning that their completeness cannot be checked.
func TestRestoreLegacyBackup(t *testing.T) {
	b, want := backupT(t)
	bare := b[len(backupHeader) : len(b)-backupTrailerLen]
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	to := filepath.Join(t.TempDir(), "restored")
	n, err := Restore(writeFileT(t, bare), to, log)
	if err != nil || n != len(want) {
		t.Fatalf("Restore = %d nodes, %v; want %d", n, err, len(want))
	}
	if !strings.Contains(logged.String(), "no end marker") {
		t.Errorf("no warning about the missing end marker; log:\n%s", logged.String())
	}
	checkRestored(t, to, want)
}

// When Badger refuses what it loads, what restore wrote is removed: the
// directories it created, or the contents of the empty one it was given.
func TestRestoreFailureLeavesNothing(t *testing.T) {
	// Whole KV lists by their lengths (checkFrames), but not protobuf.
	junk := writeFileT(t, bytes.Repeat([]byte{4, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 20))
	created := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(junk, created, quiet); err == nil || !strings.Contains(err.Error(), "cannot be loaded") || !strings.Contains(err.Error(), "nothing was kept") {
		t.Fatalf("Restore of junk = %v", err)
	}
	if _, err := os.Stat(created); !os.IsNotExist(err) {
		t.Errorf("%s after a failed restore: %v; want it removed", created, err)
	}
	// --to with new parent directories: they go too.
	root := t.TempDir()
	if _, err := Restore(junk, filepath.Join(root, "new", "pxe", "db"), quiet); err == nil {
		t.Fatal("Restore of junk succeeded")
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Errorf("a failed restore into new directories left %v (%v) in %s", entries, err, root)
	}
	given := t.TempDir()
	if _, err := Restore(junk, given, quiet); err == nil {
		t.Fatal("Restore of junk succeeded")
	}
	if entries, err := os.ReadDir(given); err != nil || len(entries) != 0 {
		t.Errorf("%s after a failed restore holds %v (%v); want it empty", given, entries, err)
	}
}

// FuzzVerifyBackup: any bytes are refused, taken as a bare Badger stream
// (no header), or accepted only if they are exactly a header, a body and
// the end marker of that body. Seeds: testdata/fuzz/FuzzVerifyBackup (an
// empty database's backup, a cut one, a bare stream), plus a real backup.
func FuzzVerifyBackup(f *testing.F) {
	s := openT(f, f.TempDir(), Options{})
	if _, err := s.SetReinstall(macN(1), true, t0); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := verifyBackup(bytes.NewReader(b), int64(len(b)), "fuzz.backup")
		switch {
		case err != nil:
			if !strings.Contains(err.Error(), "fuzz.backup") {
				t.Fatalf("error does not name the file: %v", err)
			}
		case info.Legacy:
			if len(b) == 0 || bytes.HasPrefix(b, []byte(backupHeader)) {
				t.Fatalf("%q taken as a bare stream", b)
			}
		default:
			body := b[info.BodyOffset : info.BodyOffset+info.BodyLen]
			sum := sha256.Sum256(body)
			want := append([]byte(backupHeader), body...)
			want = append(want, backupTrailer(int64(len(body)), sum[:])...)
			if !bytes.Equal(b, want) {
				t.Fatalf("accepted %q, which is not header, body and end marker", b)
			}
		}
	})
}

// A backup read from a pipe (restore <(zcat …)) is checked whole before
// anything is written, as a file is.
func TestRestoreFromAPipe(t *testing.T) {
	b, want := backupT(t)
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{{"complete", b, true}, {"cut", b[:len(b)-1], false}} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "backup")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			wrote := make(chan error, 1)
			go func() {
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err == nil {
					_, err = w.Write(tc.data)
					w.Close()
				}
				wrote <- err
			}()
			to := filepath.Join(t.TempDir(), "restored")
			n, err := Restore(fifo, to, quiet)
			if werr := <-wrote; werr != nil {
				t.Fatal(werr)
			}
			if tc.ok {
				if err != nil || n != len(want) {
					t.Fatalf("Restore = %d nodes, %v; want %d", n, err, len(want))
				}
				checkRestored(t, to, want)
				return
			}
			if err == nil || !strings.Contains(err.Error(), "has no end marker") {
				t.Fatalf("Restore of a cut stream = %d nodes, %v", n, err)
			}
			if _, err := os.Stat(to); !os.IsNotExist(err) {
				t.Errorf("%s after a refused restore: %v; want it not created", to, err)
			}
		})
	}
}
