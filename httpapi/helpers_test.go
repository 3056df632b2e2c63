package httpapi

import (
	"encoding/json"
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

// quiet keeps Badger's and the API's logs out of test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Test addresses: documentation ranges only (never 192.0.2.0/24, the host's
// real network here). The handler tests never open a socket; these are just
// strings in RemoteAddr and URLs.
const (
	testBaseURL = "http://198.51.100.1:8000"
	testPeer    = "203.0.113.7:40000" // the machine booting, as the connection shows it
)

// fullBoot is a complete installer configuration whose URLs carry every
// placeholder Substitute knows, plus one (${uuid}) it must leave for iPXE.
var fullBoot = BootConfig{
	KernelURL:      "http://198.51.100.10/ubuntu/${mac}/vmlinuz",
	InitrdURL:      "http://198.51.100.10/ubuntu/initrd?ip=${ip}",
	AutoinstallURL: "http://198.51.100.10/autoinstall/${mac_hyphen}/${uuid}/",
	KernelArgs:     "console=ttyS0,115200n8",
	LocalBoot:      LocalBootAuto,
}

// t0 is the fixed start of the test clock.
var t0 = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

// stepClock is a deterministic clock that moves one second per reading, so
// two boots in one test never share a timestamp (events are keyed by time).
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// env is one API over one real Badger store in a temporary directory.
type env struct {
	t     testing.TB
	dir   string
	st    *store.Store
	m     *metrics.Metrics
	cfg   Config
	h     http.Handler
	clock *stepClock
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newEnv builds the handler with fullBoot and no admin key; mutate adjusts
// the Config before NewHandler.
func newEnv(t testing.TB, mutate func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), m: metrics.New("test"), clock: &stepClock{t: t0}}
	e.st = openStore(t, e.dir)
	e.cfg = Config{
		BaseURL: testBaseURL,
		Boot:    fullBoot,
		Store:   e.st,
		Metrics: e.m,
		Logger:  quiet,
		Now:     e.clock.Now,
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	h, err := NewHandler(e.cfg)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	e.h = h
	return e
}

// do sends one request through the handler from testPeer.
func (e *env) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.RemoteAddr = testPeer
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// boot is GET /boot for mac on a platform.
func (e *env) boot(mac, platform string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do("GET", "/boot?mac="+mac+"&platform="+platform, "")
}

func (e *env) node(mac string) store.Node {
	e.t.Helper()
	n, err := e.st.Get(mustMAC(e.t, mac))
	if err != nil {
		e.t.Fatalf("store.Get(%s): %v", mac, err)
	}
	return n
}

func mustMAC(t testing.TB, s string) store.MAC {
	t.Helper()
	m, err := store.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantCode fails unless w has the status code.
func wantCode(t testing.TB, w *httptest.ResponseRecorder, code int) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body:\n%s", w.Code, code, w.Body.String())
	}
}

// jsonBody decodes a JSON answer, checking its Content-Type.
func jsonBody[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body:\n%s", ct, w.Body.String())
	}
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body is not the JSON expected: %v\n%s", err, w.Body.String())
	}
	return v
}

// wantJSONError checks a JSON error answer: the code, and an "error"
// message containing every one of parts.
func wantJSONError(t testing.TB, w *httptest.ResponseRecorder, code int, parts ...string) string {
	t.Helper()
	wantCode(t, w, code)
	v := jsonBody[map[string]string](t, w)
	msg, ok := v["error"]
	if !ok || msg == "" {
		t.Fatalf(`answer has no "error" message: %s`, w.Body.String())
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not mention %q", msg, p)
		}
	}
	return msg
}

// wantScript checks an iPXE script answer.
func wantScript(t testing.TB, w *httptest.ResponseRecorder, code int) string {
	t.Helper()
	wantCode(t, w, code)
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/plain; charset=utf-8", ct)
	}
	body := w.Body.String()
	if !strings.HasPrefix(body, "#!ipxe\n") {
		t.Fatalf("script does not start with #!ipxe:\n%s", body)
	}
	return body
}
