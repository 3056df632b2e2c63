package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/profiles"
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
// 10,000 machines: "seed" with only the seed's default profile, as before
// profiles existed, and "profiles" with a profiles file of 100 groups
// (every tenth machine in a group by MAC list, the rest matched by facts
// or falling to the default; 1 in 50 boots resolves a profile and serves
// an installer). Run both in one go:
//
//	go test -run XXX -bench 'Boot$' -benchtime 20000x -count 3 ./httpapi/
func BenchmarkBoot(b *testing.B) {
	b.Run("seed", func(b *testing.B) { benchBoot(b, nil) })
	b.Run("profiles", func(b *testing.B) { benchBoot(b, benchProfiles(b)) })
}

// benchProfiles is a set of 100 groups over 10 profiles.
func benchProfiles(b *testing.B) *profiles.Set {
	var y strings.Builder
	y.WriteString("profiles:\n")
	for p := 0; p < 10; p++ {
		fmt.Fprintf(&y, "  p%d:\n    kind: linux\n    kernel: http://198.51.100.10/p%d/{{.mac}}/vmlinuz\n    initrd: http://198.51.100.10/p%d/initrd\n    cmdline: \"ip=dhcp host={{.hostname}} rack={{.labels.rack}} ks={{.files_url}}ks.cfg\"\n    files: {ks.cfg: \"network --hostname={{.hostname}}\"}\n", p, p, p)
	}
	y.WriteString("groups:\n")
	for g := 0; g < 100; g++ {
		switch g % 2 {
		case 0: // a MAC list: every 20th machine of its stripe
			fmt.Fprintf(&y, "  - name: list%d\n    profile: p%d\n    match:\n      mac:\n", g, g%10)
			for i := g; i < 10000; i += 1000 {
				fmt.Fprintf(&y, "        - 52:54:%02x:%02x:%02x:%02x\n", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
			}
		default: // facts and labels that most machines do not have
			fmt.Fprintf(&y, "  - name: facts%d\n    profile: p%d\n    match: {manufacturer: \"Vendor%d*\", platform: efi, labels: {rack: r%d}}\n", g, g%10, g, g)
		}
	}
	set, err := profiles.Parse("bench.yaml", []byte(y.String()), fullBoot.Seed())
	if err != nil {
		b.Fatal(err)
	}
	return set
}

func benchBoot(b *testing.B, set *profiles.Set) {
	st, err := store.Open(b.TempDir(), store.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cfg := Config{BaseURL: testBaseURL, Boot: fullBoot, Store: st, Metrics: metrics.New("bench"), Logger: quiet}
	if set != nil {
		cfg.Profiles = func() *profiles.Set { return set }
	}
	h, err := NewHandler(cfg)
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
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if i%50 == 0 { // one boot in 50 reinstalls (fsynced both ways, as in the seed run)
			b.StopTimer()
			if _, err := st.SetReinstall(macOf(i%fleet), true, t0); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, reqs[i%fleet])
		if w.code != http.StatusOK {
			b.Fatalf("boot %d: status %d", i, w.code)
		}
	}
	b.StopTimer()
	// Process CPU per boot (every goroutine, Badger's included): on a
	// shared machine it moves far less than wall time.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if b.N >= fleet {
		if nodes, err := st.List(); err != nil || len(nodes) != fleet {
			b.Fatalf("%d nodes after the run (%v), want %d", len(nodes), err, fleet)
		}
	}
}

func macOf(i int) store.MAC {
	return store.MAC(fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)))
}

// fleet100k is a handler over a store holding 100,000 nodes, each booted
// once with facts.
func fleet100k(b *testing.B) http.Handler {
	st, err := store.Open(b.TempDir(), store.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	m := metrics.New("bench")
	m.RegisterNodeGauge(store.StateNames(), store.NamedCounts(st.CountByState))
	h, err := NewHandler(Config{BaseURL: testBaseURL, Boot: fullBoot, Store: st, Metrics: m, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	const fleet = 100000
	for i := 0; i < fleet; i++ {
		if _, _, err := st.RecordBoot(macOf(i), store.Sighting{Time: t0, IP: "203.0.113.9",
			Facts: store.Facts{Platform: "efi", Manufacturer: "QEMU", Product: "Standard PC", Serial: fmt.Sprintf("SN%d", i)}},
			func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
			b.Fatal(err)
		}
	}
	return h
}

// BenchmarkNodes100k is GET /nodes with 100,000 nodes in the store: the
// first page of 100 (what the console and the CLI ask for first), and the
// seed's plain GET /nodes, every node streamed page by page. Run:
//
//	go test -run XXX -bench Nodes100k -benchtime 20x ./httpapi/
func BenchmarkNodes100k(b *testing.B) {
	h := fleet100k(b)
	b.Run("first-page", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/nodes?limit=100", nil)
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"next": "`) {
				b.Fatalf("page %d: %d\n%.500s", i, w.Code, w.Body.String())
			}
		}
	})
	b.Run("full-stream", func(b *testing.B) {
		req := httptest.NewRequest("GET", "/nodes", nil)
		var bytes int
		for i := 0; i < b.N; i++ {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK || strings.Count(w.Body.String(), `"mac":`) != 100000 {
				b.Fatalf("stream %d: %d, %d nodes", i, w.Code, strings.Count(w.Body.String(), `"mac":`))
			}
			bytes = w.Body.Len()
		}
		b.ReportMetric(float64(bytes)/(1<<20), "MiB/response")
	})
}

// BenchmarkMetrics100k is one Prometheus scrape of GET /metrics with
// 100,000 nodes in the store: the per-state gauge reads counts the store
// keeps up to date, so the cost does not grow with the fleet.
//
//	go test -run XXX -bench Metrics100k -benchtime 200x ./httpapi/
func BenchmarkMetrics100k(b *testing.B) {
	h := fleet100k(b)
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `pxe_pilot_nodes{state="local"} 100000`) {
			b.Fatalf("scrape %d: %d\n%.2000s", i, w.Code, w.Body.String())
		}
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
