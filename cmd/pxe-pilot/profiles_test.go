package main

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/profiles"
)

// TestReloadDoesNotHoldShutdown: a SIGHUP reload whose file read hangs (a
// profiles file on a stalled NFS mount; here a FIFO nobody writes) does not
// keep the reloader, and so the appliance's shutdown, waiting: the
// reloader used to read the file in line, and a shutdown waited for it
// for ever. The read is released at the end, so nothing is left behind.
func TestReloadDoesNotHoldShutdown(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	var set atomic.Pointer[profiles.Set]
	r := &reloader{cfg: config{ProfilesFile: fifo}, set: &set, log: quietLog, hup: hup}
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() { returned <- r.Serve(ctx) }()
	hup <- syscall.SIGHUP
	// The read has begun once a writer can open the FIFO without waiting.
	var w *os.File
	for i := 0; w == nil; i++ { // bounded: 10 s
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w = f
		} else if i == 500 {
			t.Fatal("the reload did not open the profiles file within 10 s")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer w.Close() // ends the read
	cancel()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reloader still waits for a hanging profiles file 10 s after the shutdown began")
	}
	if set.Load() != nil {
		t.Error("a reload that did not finish was applied")
	}
}
