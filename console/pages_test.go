package console_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/console"
)

// TestNoTokenOnAnyPage: an installing node's install token reaches no page
// and no live update (the API shows it only through Node.Public, which
// drops it).
func TestNoTokenOnAnyPage(t *testing.T) {
	a := newApp(t, "", nil)
	a.seedFleet()
	n, err := a.st.Get(mustMAC(t, "52:54:00:00:00:02"))
	if err != nil || n.Install == nil || n.Install.Token == "" {
		t.Fatalf("the seed left no installing node with a token: %+v, %v", n.Install, err)
	}
	tok := n.Install.Token
	b := a.browser()
	for _, path := range []string{"/ui/", "/ui/nodes/52:54:00:00:00:02", "/ui/appliance", "/ui/?q=52:54:00:00:00:02"} {
		code, _, body := b.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		if strings.Contains(body, tok) {
			t.Errorf("GET %s shows the install token", path)
		}
	}
	// The live stream: a progress report while a node page follows it.
	resp, err := b.c.Get(a.srv.URL + "/ui/events?node=52:54:00:00:00:02")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	r.ReadString('\n') // the stream is open
	go a.report("52:54:00:00:00:02", "progress", "partitioning")
	got := readEvents(t, r, "event")
	if strings.Contains(got, tok) {
		t.Errorf("the live stream shows the install token")
	}
	if !strings.Contains(got, "partitioning") {
		t.Errorf("the live stream missed the progress report:\n%s", got)
	}
}

// readEvents reads the stream until an event named last, and returns all
// it read.
func readEvents(t *testing.T, r *bufio.Reader, last string) string {
	t.Helper()
	var all strings.Builder
	deadline := time.AfterFunc(10*time.Second, func() { t.Errorf("no %q event within 10s; read:\n%s", last, all.String()) })
	defer deadline.Stop()
	for {
		line, err := r.ReadString('\n')
		all.WriteString(line)
		if err != nil {
			t.Fatalf("reading the live stream: %v; read:\n%s", err, all.String())
		}
		if strings.TrimSpace(line) == "event: "+last {
			l, _ := r.ReadString('\n')
			all.WriteString(l)
			return all.String()
		}
	}
}

// TestFleetPageWeight: the fleet view (a full page of 100 nodes, its
// stylesheet and script) stays under 200 KB as transferred (headers and
// bodies, no compression).
func TestFleetPageWeight(t *testing.T) {
	a := newApp(t, "", nil)
	for i := range 150 {
		a.bootQuiet(fmt.Sprintf("52:54:00:10:%02x:%02x", i/256, i%256))
	}
	b := a.browser()
	total := 0
	for _, path := range []string{"/ui/", "/ui/static/console.css", "/ui/static/console.js"} {
		resp, err := b.c.Get(a.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := httputil.DumpResponse(resp, true)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		t.Logf("GET %s: %d bytes", path, len(raw))
		total += len(raw)
	}
	t.Logf("fleet view, 100 nodes: %d bytes transferred", total)
	if total > 200<<10 {
		t.Errorf("fleet view weighs %d bytes; the budget is 200 KB", total)
	}
}

// TestLiveStreamIsBounded: past MaxLive browsers, a stream says "busy" and
// asks the browser to retry later instead of holding a subscription.
func TestLiveStreamIsBounded(t *testing.T) {
	a := newApp(t, "", func(c *console.Config) { c.MaxLive = 1; c.Heartbeat = 50 * time.Millisecond })
	b := a.browser()
	first, err := b.c.Get(a.srv.URL + "/ui/events")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	r := bufio.NewReader(first.Body)
	r.ReadString('\n')
	code, h, body := b.get("/ui/events")
	if code != http.StatusOK || !strings.Contains(body, "event: busy") || !strings.Contains(body, "retry: ") {
		t.Errorf("second stream: %d %q; want 200 with a busy event and a retry delay", code, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	// The first stream keeps beating.
	line := ""
	for !strings.HasPrefix(line, ": beat") {
		if line, err = r.ReadString('\n'); err != nil {
			t.Fatalf("the first stream broke: %v", err)
		}
	}
}
