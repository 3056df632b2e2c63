package console

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// stuckWriter is a browser that stops reading: every Write waits until
// release is closed.
type stuckWriter struct {
	h       http.Header
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *stuckWriter) Header() http.Header { return w.h }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Flush()              {}
func (w *stuckWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stuckWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSlowBrowserNeverSlowsBoots: a live stream whose browser has stopped
// reading holds up no store write (the boots below would hang otherwise);
// when the browser reads again it is told to resync.
func TestSlowBrowserNeverSlowsBoots(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := New(Config{Store: st, Metrics: metrics.New("test"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w := &stuckWriter{h: http.Header{}, release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/ui/events", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.stream(w, r) }()

	// Wait until the stream has subscribed (it then blocks on its first write).
	for deadline := time.Now().Add(5 * time.Second); testutilGauge(c) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream never subscribed")
		}
	}
	for i := range 600 { // more than the subscription's buffer of 256
		m, _ := store.ParseMAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff))
		if _, _, err := st.RecordBoot(m, store.Sighting{Time: time.Now()}, func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
			t.Fatal(err)
		}
	}
	close(w.release) // the browser reads again
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.String(), "event: resync") {
		if time.Now().After(deadline) {
			t.Fatalf("no resync event after the browser fell behind; got:\n%.2000s", w.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func testutilGauge(c *Console) int {
	mfs, _ := c.cfg.Metrics.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "pxe_pilot_console_live_streams" {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}
