package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/httpapi"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
)

var quietLog = storeLogger(&bytes.Buffer{})

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &out)
	return code, out.String()
}

// TestBackupRestoreCommands: a backup of a running appliance (its database
// open and locked), restored offline into a new directory, holds every node,
// flag and event.
func TestBackupRestoreCommands(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 50; i++ {
		m := store.MAC(fmt.Sprintf("52:54:00:00:01:%02x", i))
		if _, _, err := st.RecordBoot(m, store.Sighting{Time: now, IP: "203.0.113.5"}, func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := st.SetReinstall(m, true, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := apiEnv(t, st)
	file := filepath.Join(t.TempDir(), "pxe.backup")

	if code, out := runCmd(t, map[string]string{"PXE_SERVER": env["PXE_SERVER"]}, "backup", file); code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("backup without the key: %d %s", code, out)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a refused backup left a file")
	}
	if code, out := runCmd(t, env, "backup", file); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	if code, out := runCmd(t, env, "backup", file); code != 2 || !strings.Contains(out, "already exists") {
		t.Fatalf("backup over an existing file: %d %s", code, out)
	}
	to := filepath.Join(t.TempDir(), "restored")
	if code, out := runCmd(t, nil, "restore", file, "--to", to); code != 0 || !strings.Contains(out, "restored 50 nodes") {
		t.Fatalf("restore: %d %s", code, out)
	}
	if code, out := runCmd(t, nil, "restore", file, "--to", to); code != 1 || !strings.Contains(out, "not empty") {
		t.Fatalf("restore into a used directory: %d %s", code, out)
	}
	r, err := store.Open(to, store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want, _ := st.List()
	got, _ := r.List()
	if len(got) != len(want) {
		t.Fatalf("restored %d nodes, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].MAC != want[i].MAC || got[i].Reinstall != want[i].Reinstall || got[i].State != want[i].State {
			t.Errorf("restored %+v, want %+v", got[i], want[i])
		}
		if ev, err := r.Events(got[i].MAC); err != nil || len(ev) != 1 {
			t.Errorf("events of %s after restore: %d %v", got[i].MAC, len(ev), err)
		}
	}
}

// TestBackupCommandsCheckTheEndMarker: a backup damaged on its way (here a
// byte changed between the appliance and the client, which a proxy or a bad
// NIC can do without breaking HTTP) is not kept, though the appliance said
// "ok"; restore refuses a cut backup file and creates nothing.
func TestBackupCommandsCheckTheEndMarker(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.SetReinstall("52:54:00:00:01:01", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewHandler(httpapi.Config{Store: st, Metrics: metrics.New("test"), BaseURL: "http://127.0.0.1", AdminKey: "k", Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&flipWriter{ResponseWriter: w, at: 40}, r)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "pxe.backup")
	env := map[string]string{"PXE_SERVER": srv.URL, "ADMIN_API_KEY": "k"}
	if code, out := runCmd(t, env, "backup", file); code != 1 || !strings.Contains(out, "does not verify") || !strings.Contains(out, "SHA-256") {
		t.Fatalf("backup damaged on its way: %d %s", code, out)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a damaged backup was kept: %v", err)
	}

	if code, out := runCmd(t, apiEnv(t, st), "backup", file); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := file + ".cut"
	if err := os.WriteFile(cut, b[:len(b)-20], 0o600); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "restored")
	if code, out := runCmd(t, nil, "restore", cut, "--to", to); code != 1 || !strings.Contains(out, "has no end marker") {
		t.Fatalf("restore of a cut backup: %d %s", code, out)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatalf("restore of a cut backup left %s: %v", to, err)
	}
}

// flipWriter changes the byte at offset at of the body it passes on.
type flipWriter struct {
	http.ResponseWriter
	at, n int
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if i := f.at - f.n; i >= 0 && i < len(p) {
		p = bytes.Clone(p)
		p[i] ^= 0x40
	}
	f.n += len(p)
	return f.ResponseWriter.Write(p)
}

// TestRecoverCommand: a database whose MANIFEST is gone is refused by the
// appliance; recover salvages it into a new directory, says what it could
// not read, and leaves the source alone.
func TestRecoverCommand(t *testing.T) {
	src := filepath.Join(t.TempDir(), "db")
	st, err := store.Open(src, store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 20; i++ {
		if _, err := st.SetReinstall(store.MAC(fmt.Sprintf("52:54:00:00:02:%02x", i)), true, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(src, store.Options{Logger: quietLog}); err == nil || !strings.Contains(err.Error(), "pxe-pilot recover --from "+src) {
		t.Fatalf("Open of the damaged directory = %v", err)
	}
	to := filepath.Join(t.TempDir(), "salvaged")
	code, out := runCmd(t, nil, "recover", "--from", src, "--to", to)
	if code != exitSalvagedWithLosses || !strings.Contains(out, "salvaged 20 nodes") || !strings.Contains(out, "could not read: MANIFEST: missing") {
		t.Fatalf("recover: %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(src, "MANIFEST")); err == nil {
		t.Error("recover wrote to the source")
	}
	r, err := store.Open(to, store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if nodes, _ := r.List(); len(nodes) != 20 || !nodes[0].Reinstall {
		t.Errorf("salvaged %d nodes (%+v)", len(nodes), nodes)
	}
	if code, out := runCmd(t, nil, "recover", "--from", src); code != 2 || !strings.Contains(out, "usage") {
		t.Errorf("recover without --to: %d %s", code, out)
	}
}

// TestOfflineCommandsStopOnSignal: restore waiting on a backup that does
// not end (a pipe whose writer stays open) stops at SIGINT or SIGTERM at
// once, with exit code 130 and what to do with the directory it began; the
// signals used to be caught and ignored until the command ended.
func TestOfflineCommandsStopOnSignal(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "backup")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "restore", fifo, "--to", filepath.Join(dir, "restored"))
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until restore opens it
		if err != nil {
			cmd.Process.Kill()
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // restore is reading
		cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			w.Close()
			t.Fatalf("%v: restore still running 30 s after the signal", sig)
		}
		w.Close()
		if code := cmd.ProcessState.ExitCode(); code != exitInterrupted || !strings.Contains(stderr.String(), "restore interrupted; if the --to directory exists, it is incomplete: delete it") {
			t.Fatalf("%v: exit %d (%v), stderr:\n%s", sig, code, err, stderr.String())
		}
	}
}

// TestOfflineCommandsFailWithoutSignal: a restore or recover that fails
// exits 1 with its own message, never 130 "interrupted": main cancels the
// signal context as the command returns, and the interrupt watcher used to
// take that for a signal (one run in three here). 30 runs of each.
func TestOfflineCommandsFailWithoutSignal(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.backup")
	if err := os.WriteFile(bad, []byte("pxe-pilot backup 1\ncut"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"restore", bad, "--to", filepath.Join(dir, "restored")},
		{"recover", "--from", filepath.Join(dir, "missing"), "--to", filepath.Join(dir, "salvaged")},
	} {
		for i := 0; i < 30; i++ {
			out, err := exec.Command(bin, args...).CombinedOutput()
			if code := exitCode(err); code != 1 || strings.Contains(string(out), "interrupted") {
				t.Fatalf("%v, run %d: exit %d, output:\n%s", args, i, code, out)
			}
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestHelpListsCommands: "pxe-pilot --help" and "-h" list the commands, as
// "pxe-pilot help" does (they were taken as serve's flags and listed only
// the settings); "serve -h" still lists the settings.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}} {
		if code, out := runCmd(t, nil, args...); code != 0 || !strings.Contains(out, "pxe-pilot nodes") || !strings.Contains(out, "pxe-pilot restore") || !strings.Contains(out, "pxe-pilot explain") {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}
	if code, out := runCmd(t, nil, "serve", "-h"); code != 0 || !strings.Contains(out, "PXE_") || strings.Contains(out, "pxe-pilot restore") {
		t.Errorf("serve -h: exit %d:\n%s", code, out)
	}
}

// apiEnv serves the admin API over st (key "k") on loopback for the
// test's length, and returns the environment a client command needs.
func apiEnv(t *testing.T, st store.Backend) map[string]string {
	t.Helper()
	h, err := httpapi.NewHandler(httpapi.Config{Store: st, Metrics: metrics.New("test"), BaseURL: "http://127.0.0.1", AdminKey: "k", Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return map[string]string{"PXE_SERVER": srv.URL, "ADMIN_API_KEY": "k"}
}
