package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process: the test binary run again with PXE_STORE_HELPER set,
// so a store can live in another process (to be SIGKILLed, or to hold the
// directory lock). It talks to the parent one line at a time on stdout.
const helperEnv = "PXE_STORE_HELPER"

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // not a helper: nothing to do in the normal run
	}
	dir := os.Getenv("PXE_STORE_DIR")
	out := bufio.NewWriter(os.Stdout)
	say := func(f string, a ...any) {
		fmt.Fprintf(out, f+"\n", a...)
		out.Flush()
	}
	code := 0
	switch mode {
	case "writer":
		// Sets reinstall flags and records boots, acknowledging each
		// write once the store has returned, until killed (or a bound).
		s, err := Open(dir, Options{Logger: quiet, SyncInterval: time.Hour, Sizing: helperSizing()})
		if err != nil {
			say("error %v", err)
			os.Exit(2)
		}
		say("open")
		for i := 0; i < 100000; i++ {
			if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
				say("error %v", err)
				os.Exit(2)
			}
			// Boot bookkeeping is not fsynced (SyncInterval is an hour
			// here) but is in the write-ahead log: a process crash keeps it.
			if _, _, err := s.RecordBoot(macN(1_000_000+i), Sighting{Time: t0, IP: "203.0.113.1"}, localDecision); err != nil {
				say("error %v", err)
				os.Exit(2)
			}
			say("ack %d", i)
		}
		say("bound reached")
		os.Exit(3) // never Close: the parent expects to kill us first
	case "acks":
		// Only SetReinstall, each acknowledged once fsynced (fault_test.go).
		code = acksHelper(dir, say)
	case "hold":
		// Holds the store open until stdin closes.
		s, err := Open(dir, Options{Logger: quiet})
		if err != nil {
			say("error %v", err)
			os.Exit(2)
		}
		say("open")
		io.Copy(io.Discard, os.Stdin)
		if err := s.Close(); err != nil {
			say("error %v", err)
			code = 2
		}
	case "tryopen":
		s, err := Open(dir, Options{Logger: quiet})
		if err == nil {
			s.Close()
			say("opened")
		} else {
			say("inuse=%v %s", errors.Is(err, ErrInUse), err)
		}
	case "diskfull":
		code = diskFullHelper(dir, say)
	case "fill":
		code = fillHelper(dir, say)
	case "fsyncfail":
		code = fsyncFailHelper(dir, say)
	case "fsyncfailboot":
		code = fsyncFailBootHelper(dir, say)
	default:
		say("unknown helper mode %q", mode)
		code = 2
	}
	os.Exit(code)
}

// sizings are the store sizings the crash and disk-full tests run with;
// their helpers read theirs from PXE_TEST_SIZING (helperSizing).
var sizings = []struct {
	name string
	sz   Sizing
}{{"small", SizingSmall}, {"large", SizingLarge}}

// helperSizing is the sizing a helper process opens its store with:
// PXE_TEST_SIZING, small when unset.
func helperSizing() Sizing {
	v := os.Getenv("PXE_TEST_SIZING")
	if v == "" {
		return SizingSmall
	}
	sz, err := ParseSizing(v)
	if err != nil {
		panic(err)
	}
	return sz
}

// helper starts the test binary as a helper in mode on dir.
func helper(t *testing.T, ctx context.Context, mode, dir string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PXE_STORE_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, bufio.NewScanner(stdout), stdin
}

// nextLine reads one line from a helper, failing the test if it ends.
func nextLine(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("helper ended early (%v)", sc.Err())
	}
	return sc.Text()
}

func TestReopenKeepsFlags(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 200
	for i := 0; i < nodes; i++ {
		if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RecordBoot(macN(i), Sighting{Time: t0.Add(time.Second), IP: "203.0.113.7"}, func(n *Node) Event { return Event{Decision: DecisionError} }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, Options{})
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != nodes {
		t.Fatalf("reopened store has %d nodes, want %d", len(list), nodes)
	}
	for i, n := range list {
		if n.MAC != macN(i) || n.State != StateReinstall || !n.Reinstall || n.BootCount != 1 || n.LastIP != "203.0.113.7" {
			t.Fatalf("node %d after reopen = %+v", i, n)
		}
	}
	if ev, err := s.Events(macN(nodes - 1)); err != nil || len(ev) != 1 {
		t.Fatalf("events after reopen = %+v, %v", ev, err)
	}
}

// The crash case: a process sets flags, tells us each time the store
// returned, and is SIGKILLed without Close. Every acknowledged flag, and every
// acknowledged boot, is there when the directory is opened again.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	for _, sz := range sizings {
		t.Run(sz.name, func(t *testing.T) {
			t.Setenv("PXE_TEST_SIZING", sz.name)
			crashKeepsAcknowledgedWrites(t, sz.sz)
		})
	}
}

func crashKeepsAcknowledgedWrites(t *testing.T, sizing Sizing) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, sc, _ := helper(t, ctx, "writer", dir)
	if l := nextLine(t, sc); l != "open" {
		t.Fatalf("helper: %s", l)
	}
	acked := -1
	for acked < 150 {
		l := nextLine(t, sc)
		n, err := strconv.Atoi(strings.TrimPrefix(l, "ack "))
		if err != nil || n != acked+1 {
			t.Fatalf("helper said %q after ack %d", l, acked)
		}
		acked = n
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Acknowledgements already in the pipe count too.
	for sc.Scan() {
		l := sc.Text()
		if n, err := strconv.Atoi(strings.TrimPrefix(l, "ack ")); err == nil && n == acked+1 {
			acked = n
		} else {
			t.Fatalf("helper said %q after ack %d", l, acked)
		}
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed by SIGKILL: %v", err)
	}
	t.Logf("helper killed after %d acknowledged flags", acked+1)

	s := openT(t, dir, Options{Sizing: sizing})
	for i := 0; i <= acked; i++ {
		n, err := s.Get(macN(i))
		if err != nil || n.State != StateReinstall {
			t.Fatalf("acknowledged flag %d (%s) lost after the crash: %+v, %v", i, macN(i), n, err)
		}
		b, err := s.Get(macN(1_000_000 + i))
		if err != nil || b.BootCount != 1 {
			t.Fatalf("acknowledged boot %d lost after the crash: %+v, %v", i, b, err)
		}
	}
	// The store is usable after recovery.
	if _, err := s.SetReinstall(macN(acked+1), true, t0); err != nil {
		t.Fatal(err)
	}
}

func checkInUse(t *testing.T, err error, dir string) {
	t.Helper()
	if err == nil {
		t.Fatal("second Open of an open directory succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("error %q does not wrap ErrInUse", err)
	}
	msg := err.Error()
	if want := "database at " + dir + " is in use by another process"; !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
	if strings.Contains(msg, "goroutine") || strings.Contains(msg, ".go:") || strings.Count(msg, "\n") > 0 {
		t.Errorf("error carries a stack trace or several lines: %q", msg)
	}
}

func TestOpenInUseSameProcess(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	_, err := Open(dir, Options{Logger: quiet})
	checkInUse(t, err, dir)
	// The first store is unharmed.
	if _, err := s.SetReinstall(macN(1), true, t0); err != nil {
		t.Fatal(err)
	}
}

func TestOpenInUseOtherProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("child holds", func(t *testing.T) {
		dir := t.TempDir()
		cmd, sc, stdin := helper(t, ctx, "hold", dir)
		if l := nextLine(t, sc); l != "open" {
			t.Fatalf("helper: %s", l)
		}
		_, err := Open(dir, Options{Logger: quiet})
		checkInUse(t, err, dir)
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
		// Once the holder has gone, the directory opens.
		s := openT(t, dir, Options{})
		if err := s.Ping(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("parent holds", func(t *testing.T) {
		dir := t.TempDir()
		openT(t, dir, Options{})
		cmd, sc, _ := helper(t, ctx, "tryopen", dir)
		l := nextLine(t, sc)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v (said %q)", err, l)
		}
		if !strings.HasPrefix(l, "inuse=true ") {
			t.Fatalf("child's Open: %q, want an ErrInUse error", l)
		}
		if want := "database at " + dir + " is in use by another process"; !strings.Contains(l, want) {
			t.Errorf("child's error %q does not say %q", l, want)
		}
	})
}

// filled returns a closed store directory holding a few nodes.
func filled(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pxe.db")
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := s.SetReinstall(macN(i), true, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A damaged directory is an error that names it, never a panic.
func TestOpenCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"garbage MANIFEST", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "MANIFEST"), []byte(strings.Repeat("not a manifest\x00\xff", 64)))
		}},
		{"truncated MANIFEST", func(t *testing.T, dir string) {
			truncate(t, filepath.Join(dir, "MANIFEST"), 5)
		}},
		{"garbage KEYREGISTRY", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "KEYREGISTRY"), []byte("garbage garbage garbage garbage"))
		}},
		{"truncated tables", func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatalf("no .sst file in %s after Close", dir)
			}
			for _, f := range ssts {
				truncate(t, f, 10)
			}
		}},
		{"table overwritten with garbage", func(t *testing.T, dir string) {
			for _, f := range ssts(t, dir) {
				fi, _ := os.Stat(f)
				writeFile(t, f, []byte(strings.Repeat("\xde\xad\xbe\xef", int(fi.Size()/4))))
			}
		}},
		{"flipped bytes in a table", func(t *testing.T, dir string) {
			for _, f := range ssts(t, dir) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < len(b)/2; i += 97 {
					b[i] ^= 0x5a
				}
				writeFile(t, f, b)
			}
		}},
		{"one flipped byte in a table", func(t *testing.T, dir string) {
			for _, f := range ssts(t, dir) {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/4] ^= 0x01
				writeFile(t, f, b)
			}
		}},
		{"missing table", func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatalf("no .sst file in %s after Close", dir)
			}
			if err := os.Remove(ssts[0]); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filled(t)
			tc.damage(t, dir)
			var (
				s   *Store
				err error
			)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Open of a damaged directory panicked: %v", r)
					}
				}()
				s, err = Open(dir, Options{Logger: quiet})
			}()
			if err == nil {
				s.Close()
				t.Fatalf("Open of a directory with %s succeeded", tc.name)
			}
			if !strings.Contains(err.Error(), "database at "+dir+" ") {
				t.Errorf("error %q does not name the directory", err)
			}
			if errors.Is(err, ErrInUse) {
				t.Errorf("damage reported as in use: %v", err)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

func TestOpenUnwritable(t *testing.T) {
	// Root ignores directory permissions, so the case that fails for
	// everyone is a path under a regular file (ENOTDIR).
	t.Run("under a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		writeFile(t, file, []byte("x"))
		dir := filepath.Join(file, "pxe.db")
		s, err := Open(dir, Options{Logger: quiet})
		if err == nil {
			s.Close()
			t.Fatal("Open under a regular file succeeded")
		}
		if !strings.Contains(err.Error(), "database at "+dir+" ") || !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("error %q does not name the directory or is not ENOTDIR", err)
		}
		t.Log(err)
	})
	t.Run("read-only parent", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Log("running as root, which ignores mode 0500; covered by the case above")
			return
		}
		parent := t.TempDir()
		if err := os.Chmod(parent, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(parent, 0o700) })
		dir := filepath.Join(parent, "pxe.db")
		s, err := Open(dir, Options{Logger: quiet})
		if err == nil {
			s.Close()
			t.Fatal("Open under a read-only directory succeeded")
		}
		if !strings.Contains(err.Error(), "database at "+dir+" ") || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("error %q does not name the directory and the cause", err)
		}
		t.Log(err)
	})
}

func ssts(t *testing.T, dir string) []string {
	t.Helper()
	f, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(f) == 0 {
		t.Fatalf("no .sst file in %s after Close", dir)
	}
	return f
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, name string, size int64) {
	t.Helper()
	if err := os.Truncate(name, size); err != nil {
		t.Fatal(err)
	}
}
