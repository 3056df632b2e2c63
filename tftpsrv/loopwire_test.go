package tftpsrv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
)

// TestLoopBreakOnTheWire walks the router-only sequence with real
// transfers: PXE ROM gets undionly.kpxe, iPXE asks for undionly.kpxe again
// and gets boot.ipxe's bytes under that name, the next boot gets the
// binary again. The client is always 127.0.0.1, so this is one machine.
func TestLoopBreakOnTheWire(t *testing.T) {
	e := startServer(t, time.Hour)
	bin := e.want(t, assets.UndionlyKPXE)
	script := e.want(t, assets.ScriptBoot)
	ended := 0.0
	for i, want := range [][]byte{bin, script, bin, script, bin} {
		// The client has its last block before the server has the last
		// ACK: wait for the server to close the previous transfer, as the
		// seconds iPXE spends starting and DHCPing do in real life.
		waitFor(t, "previous transfer to end", func() bool {
			return transfersEnded(t, e) == ended
		})
		ended++
		got, size, err := pinGet(e.addr, assets.UndionlyKPXE, 1468, true)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if !bytes.Equal(got, want) || size != int64(len(want)) {
			t.Fatalf("fetch %d: got %d bytes (tsize %d) starting %q, want %d", i, len(got), size, got[:min(len(got), 8)], len(want))
		}
	}
	waitFor(t, "last transfer to end", func() bool { return transfersEnded(t, e) == 5 })
	if v := value(t, e.m.TFTPLoopBreaks); v != 2 {
		t.Errorf("loop breaks = %v, want 2", v)
	}
	if v := value(t, e.m.TFTPTransfers.WithLabelValues(assets.ScriptBoot, "completed")); v != 2 {
		t.Errorf("boot.ipxe completed = %v, want 2 (loop breaks count as the script)", v)
	}
	if v := value(t, e.m.TFTPTransfers.WithLabelValues(assets.UndionlyKPXE, "completed")); v != 3 {
		t.Errorf("undionly.kpxe completed = %v, want 3", v)
	}
	if !strings.Contains(e.logText(), "loop_break=true") {
		t.Errorf("no loop_break in the logs:\n%s", e.logText())
	}
	// The script never replaces a name that is not a binary.
	got, _, err := pinGet(e.addr, assets.ScriptAutoexec, 0, false)
	if err != nil || !bytes.Equal(got, e.want(t, assets.ScriptAutoexec)) {
		t.Fatalf("autoexec.ipxe: %v", err)
	}
}

// TestLoopBreakOff: with the breaker off (ProxyDHCP mode), a machine that
// fetches its binary twice in a row, as firmware does on every power-on,
// gets the binary both times.
func TestLoopBreakOff(t *testing.T) {
	e := startServer(t, -1)
	bin := e.want(t, assets.UndionlyKPXE)
	for i := 0; i < 2; i++ {
		waitFor(t, "previous transfer to end", func() bool { return transfersEnded(t, e) == float64(i) })
		got, _, err := pinGet(e.addr, assets.UndionlyKPXE, 1468, true)
		if err != nil || !bytes.Equal(got, bin) {
			t.Fatalf("fetch %d: err %v, %d bytes; want the binary (%d bytes)", i, err, len(got), len(bin))
		}
	}
	if v := value(t, e.m.TFTPLoopBreaks); v != 0 {
		t.Errorf("loop breaks = %v with the breaker off", v)
	}
	if !strings.Contains(e.logText(), "loop_window=off") {
		t.Errorf("start-up log does not say the breaker is off:\n%s", e.logText())
	}
}

// TestAbortedBinaryDoesNotCount aborts a binary transfer after its first
// block, as a PXE ROM that gives up does: the retry must get the binary.
func TestAbortedBinaryDoesNotCount(t *testing.T) {
	e := startServer(t, time.Hour)
	r, c, tid := rawConversation(t, e.addr, rq(opRRQ, assets.UndionlyKPXE, "octet"))
	if binary.BigEndian.Uint16(r) != opDATA || binary.BigEndian.Uint16(r[2:]) != 1 {
		t.Fatalf("first reply %q is not DATA block 1", r[:4])
	}
	if _, err := c.WriteTo(errorPacket(ErrNotDefined, "user abort"), tid); err != nil {
		t.Fatal(err)
	}
	// The server notices the abort when it reads the ERROR; wait for the
	// failed count (bounded: the transfer's own timeouts end it anyway).
	waitFor(t, "the aborted transfer to count as failed", func() bool {
		return value(t, e.m.TFTPTransfers.WithLabelValues(assets.UndionlyKPXE, "failed")) == 1
	})
	got, _, err := pinGet(e.addr, assets.UndionlyKPXE, 0, false)
	if err != nil || !bytes.Equal(got, e.want(t, assets.UndionlyKPXE)) {
		t.Fatalf("retry after abort: err %v, %d bytes; want the binary", err, len(got))
	}
	if v := value(t, e.m.TFTPLoopBreaks); v != 0 {
		t.Errorf("loop breaks = %v, want 0", v)
	}
}

func TestFiftyConcurrentDownloads(t *testing.T) {
	// Fifty machines, all 127.0.0.1 here: lift the per-client limit
	// (TestPerClientLimit tests it).
	e := startServerWith(t, Config{LoopWindow: time.Nanosecond, PerClientLimit: 64})
	want := sum(e.want(t, assets.IPXEEFI))
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bs := []int{0, 512, 1468}[i%3]
			got, _, err := pinGet(e.addr, assets.IPXEEFI, bs, i%2 == 0)
			if err == nil && sum(got) != want {
				err = fmt.Errorf("sha256 %s, want %s", sum(got), want)
			}
			if err != nil {
				errs <- fmt.Errorf("client %d (blksize %d): %w", i, bs, err)
			}
		}(i)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		t.Fatal("50 downloads did not finish within 5 minutes")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each client is done when it has sent its last ACK; the server is
	// done when it has read it.
	waitFor(t, "the server to see every last ACK", func() bool {
		return value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "completed"))+
			value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "failed")) == n
	})
	if v := value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "completed")); v != n {
		t.Errorf("completed = %v, want %d", v, n)
	}
}

// transfersEnded counts transfers the server has finished, either way.
func transfersEnded(t *testing.T, e *testEnv) float64 {
	var n float64
	for _, f := range []string{assets.UndionlyKPXE, assets.ScriptBoot} {
		for _, r := range []string{"completed", "failed"} {
			n += value(t, e.m.TFTPTransfers.WithLabelValues(f, r))
		}
	}
	return n
}

// waitFor polls cond until it holds. The bound only keeps a broken server
// from hanging the suite; it asserts nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
