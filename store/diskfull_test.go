package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Full disk. The test runs a helper in a private mount namespace (root
// only: CI runs as root), which mounts a 2 MiB tmpfs, fills most of it, and
// runs a second helper that writes flags to a store on it, acknowledging
// each, until a write fails or the process dies. The first helper then frees
// the space, reopens the store and checks every acknowledged flag.
//
// Badger keeps its write-ahead log in a file it mmaps after ftruncating it
// (sparse, no fallocate), so on a full file system the kernel cannot back
// the next page and the writer gets SIGBUS, which the Go runtime turns into a
// fatal "unexpected fault address" (github.com/dgraph-io/ristretto/z
// OpenMmapFileUsing). The store's free-space reserve (Options.MinFree)
// refuses writes before that point: this test checks that the writer gets
// ErrDiskFull with a message naming the database, never a crash, closes
// cleanly, and that nothing acknowledged is lost.
//
// It runs once per store sizing: the reserve is bigger with SizingLarge.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestDiskFull mounts a tmpfs in a private mount namespace and needs root (CI runs as root)")
	}
	for _, sz := range sizings {
		t.Run(sz.name, func(t *testing.T) {
			t.Setenv("PXE_TEST_SIZING", sz.name)
			diskFull(t)
		})
	}
}

func diskFull(t *testing.T) { inMountNamespace(t, "diskfull") }

// inMountNamespace runs the helper mode in a private mount namespace of its
// own, with an empty temporary directory to mount on, logs what it says and
// fails unless its last line starts with "ok ".
func inMountNamespace(t *testing.T, mode string) {
	mnt := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PXE_STORE_DIR="+mnt)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	text := strings.TrimSpace(string(out))
	if err != nil {
		t.Fatalf("%s helper: %v\n%s", mode, err, text)
	}
	lines := strings.Split(text, "\n")
	for _, l := range lines {
		t.Log(l)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "ok ") {
		t.Fatalf("%s helper: %s", mode, last)
	}
}

// diskFullHelper runs in its own mount namespace.
func diskFullHelper(mnt string, say func(string, ...any)) int {
	fail := func(f string, a ...any) int { say("fail "+f, a...); return 1 }
	// Room for 4 MiB of records or four and a half memtables, whichever
	// is more, above the reserve, and an 8 MiB filler: the writer meets
	// the reserve after several memtable flushes and the compactions they
	// start, some still running, and closing the store flushes one more
	// and compacts level 0 (small: 4.5 MiB of records, large: 36 MiB).
	// The records are incompressible, so the tables are as big as the
	// memtables they are flushed from. The filler is given back before
	// the reopen.
	sizing := helperSizing()
	reserve := defaultMinFree(sizing)
	above := max(4<<20, tunedOptions(mnt, quiet, sizing).MemTableSize*9/2)
	const fill = 8 << 20
	if err := privateTmpfs(mnt, reserve+above+fill); err != nil {
		return fail("%v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, fill), 0o600); err != nil {
		return fail("writing filler: %v", err)
	}
	dir := filepath.Join(mnt, "pxe.db")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=fill", "PXE_STORE_DIR="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail("%v", err)
	}
	if err := cmd.Start(); err != nil {
		return fail("starting writer: %v", err)
	}
	acked, writeErr := -1, ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "ack "):
			n, err := strconv.Atoi(l[4:])
			if err != nil || n != acked+1 {
				cmd.Process.Kill()
				cmd.Wait()
				return fail("writer said %q after ack %d", l, acked)
			}
			acked = n
		case strings.HasPrefix(l, "error "):
			writeErr = l[6:]
		default:
			say("writer: %s", l)
		}
	}
	waitErr := cmd.Wait()
	how := "exited"
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			how = "killed by " + ws.Signal().String()
		}
	}
	firstFatal := ""
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "fatal") || strings.Contains(l, "unexpected fault") || strings.Contains(l, "SIGBUS") {
			firstFatal = l
			break
		}
	}
	say("writer %s (%v) after %d acknowledged flags; write error: %q; runtime: %q", how, waitErr, acked+1, writeErr, firstFatal)
	if acked < 10 {
		return fail("only %d writes before the disk was full; the test did not exercise anything", acked+1)
	}
	if firstFatal != "" || how != "exited" || waitErr != nil {
		return fail("writer crashed on the full disk instead of refusing the write: %s %q\n%s", how, firstFatal, stderr.String())
	}
	if !strings.Contains(writeErr, "database at "+dir) || !strings.Contains(writeErr, "free") || !strings.Contains(writeErr, ErrDiskFull.Error()) {
		return fail("write error does not say the disk is full and where: %q", writeErr)
	}
	if strings.Contains(stderr.String(), "close ") {
		return fail("store did not close cleanly after refusing writes: %s", stderr.String())
	}

	if err := os.Remove(filler); err != nil {
		return fail("removing filler: %v", err)
	}
	s, err := Open(dir, Options{Logger: quiet, Sizing: sizing})
	if err != nil {
		return fail("reopening after the disk was full: %v", err)
	}
	defer s.Close()
	for i := 0; i <= acked; i++ {
		n, err := s.Get(macN(i))
		if err != nil || n.State != StateReinstall {
			return fail("acknowledged flag %d lost after the disk was full: %+v, %v", i, n, err)
		}
	}
	say("ok all %d acknowledged flags survived", acked+1)
	return 0
}

// fillHelper writes until the store refuses or the process dies. The
// 4 KiB local-boot script makes each record big, so the reserve is met
// quickly, and random, so it does not compress.
func fillHelper(dir string, say func(string, ...any)) int {
	s, err := Open(dir, Options{Logger: quiet, Sizing: helperSizing()})
	if err != nil {
		say("error %v", err)
		return 2
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		m := macN(i)
		script := make([]byte, 4096)
		for j := range script {
			script[j] = 'a' + byte(rnd.IntN(26))
		}
		if _, err := s.SetLocalBootScript(m, string(script), t0); err != nil {
			say("error %v", err)
			break
		}
		if _, err := s.SetReinstall(m, true, t0); err != nil {
			say("error %v", err)
			break
		}
		say("ack %d", i)
	}
	// A store that refused a write must still close without a crash.
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close %v\n", err)
	}
	return 0
}
