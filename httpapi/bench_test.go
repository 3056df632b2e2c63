package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// nullWriter is a ResponseWriter that keeps only the status, so the
// benchmark measures the handler and the store, not a recorder's buffer.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) WriteHeader(code int)        { w.code = code }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkBoot is GET /boot through the full handler (routing, metrics,
// MAC parsing, the store's read-modify-write of the node and its event,
// script rendering) over a real Badger store, cycling through a fleet of
// 10,000 machines. Run: go test -run XXX -bench Boot -benchtime 20000x ./httpapi/
func BenchmarkBoot(b *testing.B) {
	st, err := store.Open(b.TempDir(), store.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h, err := NewHandler(Config{BaseURL: testBaseURL, Boot: fullBoot, Store: st, Metrics: metrics.New("bench"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	const fleet = 10000
	reqs := make([]*http.Request, fleet)
	for i := range reqs {
		platform := "efi"
		if i%2 == 0 {
			platform = "pcbios"
		}
		reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("/boot?mac=52:54:%02x:%02x:%02x:%02x&ip=198.51.100.%d&platform=%s&buildarch=x86_64",
			byte(i>>24), byte(i>>16), byte(i>>8), byte(i), 1+i%250, platform), nil)
		reqs[i].RemoteAddr = testPeer
	}
	w := &nullWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, reqs[i%fleet])
		if w.code != http.StatusOK {
			b.Fatalf("boot %d: status %d", i, w.code)
		}
	}
	b.StopTimer()
	if b.N >= fleet {
		if nodes, err := st.List(); err != nil || len(nodes) != fleet {
			b.Fatalf("%d nodes after the run (%v), want %d", len(nodes), err, fleet)
		}
	}
}
