package etcdstore_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/httpapi"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// nullWriter keeps only the status, so the benchmark measures the handler
// and the store.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) WriteHeader(code int)        { w.code = code }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkBootBackends is GET /boot through the same handler over the
// embedded Badger store and over a 3-member etcd cluster in this process
// (loopback, fsync off in the test cluster: the network and Raft round
// trips, not the disk), 16 concurrent boots of a fleet of 10,000 machines
// (new at first, known after). Run:
//
//	go test -run XXX -bench BootBackends -benchtime 20000x ./store/etcdstore/
func BenchmarkBootBackends(b *testing.B) {
	backends := []struct {
		name string
		open func(b *testing.B) store.Backend
	}{
		{"badger", func(b *testing.B) store.Backend {
			st, err := store.Open(b.TempDir(), store.Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
		{"etcd", func(b *testing.B) store.Backend {
			c := startCluster(b)
			return open(b, c.Endpoints(), "/bench/")
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			h, err := httpapi.NewHandler(httpapi.Config{BaseURL: "http://198.51.100.1:8000", Boot: bootCfg, Store: st,
				Metrics: metrics.New("bench"), Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			const fleet = 10000
			var next atomic.Int64
			b.SetParallelism(8) // 16 goroutines on 2 cores, as wrk -c16
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				w := &nullWriter{h: http.Header{}}
				for pb.Next() {
					i := next.Add(1)
					r := httptest.NewRequest("GET", fmt.Sprintf("/boot?mac=52:54:01:%02x:%02x:%02x&platform=efi", byte((i%fleet)>>16), byte((i%fleet)>>8), byte(i%fleet)), nil)
					r.RemoteAddr = "203.0.113.7:40000"
					clear(w.h)
					w.code = 0
					h.ServeHTTP(w, r)
					if w.code != http.StatusOK {
						b.Errorf("boot %d: status %d", i, w.code)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "boots/s")
		})
	}
}
