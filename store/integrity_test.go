package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccessErrorsDoNotAdviseMovingAside: a read-only file system, a
// permission problem or a read error is not damage; the error says what is
// wrong and the safe fix, and never to move the directory aside.
func TestAccessErrorsDoNotAdviseMovingAside(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want []string
	}{
		{"read-only", fmt.Errorf("open MANIFEST: %w", syscall.EROFS), []string{"read-only file system", "remount it read-write"}},
		{"permission", &os.PathError{Op: "open", Path: "/db/000002.sst", Err: syscall.EACCES}, []string{"000002.sst", "permission denied", "chown -R"}},
		{"badger string", errors.New("while opening memtables: open /db/00001.mem: permission denied"), []string{"permission denied", "chown -R"}},
		{"io", &os.PathError{Op: "read", Path: "/db/000002.sst", Err: syscall.EIO}, []string{"cannot be read", "pxe-pilot recover --from /db"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := openError("/db", c.err)
			if pe := (*os.PathError)(nil); errors.As(c.err, &pe) {
				err = accessError("/db", "000002.sst", c.err)
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
			if errors.Is(err, ErrDamaged) || strings.Contains(msg, "move it aside and") || strings.Contains(msg, "start again") {
				t.Errorf("an access problem reads as damage: %s", msg)
			}
		})
	}
}

// TestOrphanTableIsRefused: a table the MANIFEST does not list, and that
// holds newer data than the tables it does, is refused (Badger would delete
// it), and the refused Open leaves every byte of the directory as it was.
func TestOrphanTableIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	for i := 0; i < 50; i++ {
		if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A MANIFEST cut back to its header (a record boundary: no partial
	// record) no longer lists the table.
	if err := os.Truncate(dir+"/MANIFEST", 8); err != nil {
		t.Fatal(err)
	}
	before := dirHash(t, dir)
	_, err := Open(dir, Options{Logger: quiet})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "is not listed in the MANIFEST") {
		t.Fatalf("Open = %v, want a refusal naming the unlisted table", err)
	}
	if dirHash(t, dir) != before {
		t.Error("the refused Open changed the directory")
	}
}

// TestReadOnlyFileSystem mounts a database read-only (needs root and mount;
// skipped otherwise): Open says so, does not call it damage, and the
// directory opens with every flag once writable again.
func TestReadOnlyFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a read-only bind mount")
	}
	dir := t.TempDir()
	src, ro := filepath.Join(dir, "db"), filepath.Join(dir, "ro")
	s := openT(t, src, Options{})
	if _, err := s.SetReinstall(macN(1), true, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(ro, 0o700)
	if out, err := exec.Command("mount", "--bind", src, ro).CombinedOutput(); err != nil {
		t.Skipf("mount --bind: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", ro).Run() })
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", ro).CombinedOutput(); err != nil {
		t.Skipf("remount read-only: %v %s", err, out)
	}
	_, err := Open(ro, Options{Logger: quiet})
	if err == nil || errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), ro) {
		t.Fatalf("Open on a read-only mount = %v", err)
	}
	exec.Command("umount", ro).Run()
	s = openT(t, src, Options{})
	if n, err := s.Get(macN(1)); err != nil || !n.Reinstall {
		t.Errorf("after the read-only start: %+v %v", n, err)
	}
}

// BenchmarkIntegrityCheck: the start-up check (every table's blocks, every
// key, the write-ahead logs, the journal) on 2,000 nodes with 20 boots each
// (history trimmed to 20), closed cleanly.
func BenchmarkIntegrityCheck(b *testing.B) {
	dir := b.TempDir()
	s := openT(b, dir, Options{})
	for i := 0; i < 2000; i++ {
		if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 20; j++ {
			if _, _, err := s.RecordBoot(macN(i), Sighting{Time: t0.Add(time.Duration(j) * time.Second)}, localDecision); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, what, err := inspect(dir); err != nil || what != "" {
			b.Fatal(what, err)
		}
	}
}
