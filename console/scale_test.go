package console_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// scaleNodes is the fleet size of the scale test and benchmarks.
const scaleNodes = 10_000

// seedMany records n boots of distinct machines straight into the store
// (MACs 52:54:01:…, so the live test's 52:54:00:… ones sort first).
func seedMany(tb testing.TB, a *app, n int) {
	tb.Helper()
	facts := store.Facts{Platform: "efi", BuildArch: "x86_64", Manufacturer: "Dell Inc.", Product: "PowerEdge R650"}
	now := time.Now().UTC()
	for i := range n {
		m := mustMAC(tb, fmt.Sprintf("52:54:01:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff))
		sg := store.Sighting{Time: now, IP: fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), Facts: facts}
		if _, _, err := a.st.RecordBoot(m, sg, func(*store.Node) store.Event { return store.Event{Decision: store.DecisionLocal} }); err != nil {
			tb.Fatal(err)
		}
	}
}

// firstPage times GET /ui/ (the first fleet page: counts, 100 rows)
// through the real server, body read to the end.
func firstPage(tb testing.TB, b *browser, query string) time.Duration {
	tb.Helper()
	start := time.Now()
	resp, err := b.c.Get(b.a.srv.URL + "/ui/" + query)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /ui/%s: %d", query, resp.StatusCode)
	}
	return time.Since(start)
}

// liveLatency times one /boot of a new machine (on the first page) until
// its row arrives on an open fleet stream.
func liveLatency(tb testing.TB, a *app, r *bufio.Reader, i int) time.Duration {
	tb.Helper()
	mac := fmt.Sprintf("52:54:00:ff:%02x:%02x", i>>8&0xff, i&0xff)
	start := time.Now()
	a.bootQuiet(mac)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			tb.Fatalf("live stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"mac":"`+mac+`"`) {
			return time.Since(start)
		}
	}
}

func openStream(tb testing.TB, b *browser, query string) (*bufio.Reader, func()) {
	tb.Helper()
	resp, err := b.c.Get(b.a.srv.URL + "/ui/events" + query)
	if err != nil {
		tb.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		tb.Fatal(err)
	}
	return r, func() { resp.Body.Close() }
}

func percentiles(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return fmt.Sprintf("median %s, p90 %s, max %s", d[len(d)/2].Round(10*time.Microsecond),
		d[len(d)*9/10].Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
}

// TestScale10k measures, with 10,000 nodes in the store, the first fleet
// page's render time (server and transfer, through the loopback server)
// and the time from a /boot to its row on an open live stream. It logs
// the numbers and asserts none (the machine is shared). go test -short
// skips it.
func TestScale10k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 10,000-node scale measurement is skipped")
	}
	a := newApp(t, testKey, nil)
	start := time.Now()
	seedMany(t, a, scaleNodes)
	t.Logf("seeded %d nodes in %s", scaleNodes, time.Since(start).Round(time.Millisecond))
	b := a.browser()
	b.signIn(testKey)

	t.Logf("first page, cold: %s", firstPage(t, b, "").Round(10*time.Microsecond))
	var pages, filtered, scan, lives []time.Duration
	runs := 20
	if raceEnabled {
		runs = 3 // the race detector makes these numbers meaningless anyway
	}
	for range runs {
		pages = append(pages, firstPage(t, b, ""))
		filtered = append(filtered, firstPage(t, b, "?q=PowerEdge&since=24h"))
		scan = append(scan, firstPage(t, b, "?label=rack=r9"))
	}
	t.Logf("first page of %d nodes (%d runs): %s", scaleNodes, runs, percentiles(pages))
	t.Logf("first page, filtered by search and seen-since (%d runs): %s", runs, percentiles(filtered))
	t.Logf("first page, a label filter no node matches (reads all %d records; %d runs): %s", scaleNodes, runs, percentiles(scan))

	r, done := openStream(t, b, "")
	defer done()
	for i := range 20 {
		lives = append(lives, liveLatency(t, a, r, i))
	}
	t.Logf("live update, /boot to its row on the stream (20 boots): %s", percentiles(lives))
	done()

	// The same in real Chromium: the first page's navigation timing, and a
	// boot until its row is in the page's DOM.
	ctx := newChromium(t)
	step(t, ctx, "sign in", chromedp.Navigate(a.srv.URL+"/ui/login"), chromedp.SendKeys(chromedp.CSS("#key"), testKey),
		chromedp.Click(chromedp.CSS("#signin")), chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`)))
	var resps, loads, rows []time.Duration
	for i := range min(runs, 5) {
		step(t, ctx, "reload the fleet page", chromedp.Navigate(a.srv.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`)))
		nav, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(function () { var n = performance.getEntriesByType("navigation")[0]; return [n.responseEnd - n.startTime, n.loadEventEnd - n.startTime]; })()`))
		if err != nil || len(nav) != 2 {
			t.Fatalf("navigation timing: %v %v", nav, err)
		}
		resps = append(resps, time.Duration(nav[0]*float64(time.Millisecond)))
		loads = append(loads, time.Duration(nav[1]*float64(time.Millisecond)))
		mac := fmt.Sprintf("52:54:00:fe:00:%02x", i)
		watchRow(t, ctx, mac)
		start := time.Now()
		a.bootQuiet(mac)
		step(t, ctx, "see the row", chromedp.WaitVisible(chromedp.CSS(`tr[data-mac="`+mac+`"]`)))
		rows = append(rows, seenAfter(t, ctx, start))
	}
	t.Logf("Chromium: fleet page of %d nodes, navigation start to response end (%d loads): %s", scaleNodes, len(resps), percentiles(resps))
	t.Logf("Chromium: fleet page of %d nodes, navigation start to load end (%d loads): %s", scaleNodes, len(loads), percentiles(loads))
	t.Logf("Chromium: /boot to the row in the page's DOM (%d boots): %s", len(rows), percentiles(rows))
	if raceEnabled {
		t.Log("these numbers were taken under the race detector; see README.md for a plain run")
	}
}

// BenchmarkFleetFirstPage10k: GET /ui/ with 10,000 nodes in the store.
func BenchmarkFleetFirstPage10k(bm *testing.B) {
	a := newApp(bm, testKey, nil)
	seedMany(bm, a, scaleNodes)
	b := a.browser()
	b.signIn(testKey)
	bm.ResetTimer()
	for bm.Loop() {
		firstPage(bm, b, "")
	}
}

// BenchmarkLiveUpdate10k: a /boot until its row reaches an open fleet
// stream, with 10,000 nodes in the store.
func BenchmarkLiveUpdate10k(bm *testing.B) {
	a := newApp(bm, testKey, nil)
	seedMany(bm, a, scaleNodes)
	b := a.browser()
	b.signIn(testKey)
	r, done := openStream(bm, b, "")
	defer done()
	i := 0
	bm.ResetTimer()
	for bm.Loop() {
		liveLatency(bm, a, r, i%65536)
		i++
	}
}
