package console_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/console"
	"github.com/pxe-pilot/pxe-pilot/httpapi"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testKey is the admin key of the signed-in tests.
const testKey = "console-test-key-0123456789"

var seed = httpapi.BootConfig{
	KernelURL:      "http://198.51.100.10/ubuntu/vmlinuz",
	InitrdURL:      "http://198.51.100.10/ubuntu/initrd",
	AutoinstallURL: "http://198.51.100.10/autoinstall/",
	LocalBoot:      httpapi.LocalBootAuto,
}

// app is the appliance's HTTP side as cmd wires it: the JSON API with the
// console mounted under /ui/, on a real loopback server over a real
// Badger store.
type app struct {
	t   testing.TB
	st  *store.Store
	m   *metrics.Metrics
	ui  *console.Console
	srv *httptest.Server
}

func newApp(t testing.TB, key string, mutate func(*console.Config)) *app {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	a := &app{t: t, st: st, m: metrics.New("test")}
	set, err := profiles.Load("", seed.Seed())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "undionly.kpxe"), []byte("not really iPXE"), 0o644); err != nil {
		t.Fatal(err)
	}
	bins, err := assets.LoadBinaries(assets.Options{Dir: dir, SystemDir: "-", NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := console.Config{
		Store: st, Profiles: func() *profiles.Set { return set }, Boot: boot.Config{BaseURL: base, LocalBoot: boot.LocalBootAuto},
		AdminKey: key, Metrics: a.m, Binaries: bins, HTTPAddr: srv.Listener.Addr().String(), Logger: quiet, Version: "test",
		Warnings: []string{"iPXE binary snponly.efi is missing (test)"},
		Services: func() []console.Service {
			return []console.Service{{Name: "TFTP", Enabled: true, Detail: "listening on 127.0.0.1:6969"}, {Name: "ProxyDHCP", Detail: "off"}}
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a.ui, err = console.New(cfg)
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	h, err := httpapi.NewHandler(httpapi.Config{BaseURL: base, Boot: seed, Profiles: cfg.Profiles, AdminKey: key,
		Store: st, Metrics: a.m, Logger: quiet, Extra: a.ui})
	if err != nil {
		t.Fatalf("httpapi.NewHandler: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	a.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.ui.Serve(ctx) }()
	t.Cleanup(func() {
		cancel() // ends the live streams first
		wg.Wait()
		srv.Close()
		st.Close()
	})
	return a
}

// boot is GET /boot, as iPXE sends it, through the JSON API.
func (a *app) boot(mac string) {
	a.t.Helper()
	q := url.Values{"mac": {mac}, "ip": {"192.168.10." + strconv.Itoa(int(mustMAC(a.t, mac)[16]))}, "platform": {"efi"}, "buildarch": {"x86_64"}, "manufacturer": {"QEMU"}, "product": {"Standard PC (Q35 + ICH9, 2009)"}}
	resp, err := http.Get(a.srv.URL + "/boot?" + q.Encode())
	if err != nil {
		a.t.Fatalf("GET /boot: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET /boot: status %d", resp.StatusCode)
	}
}

// apiState reads a node's state through the JSON API (GET /nodes/<mac>).
func (a *app) apiState(mac, key string) string {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.srv.URL+"/nodes/"+mac, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("GET /nodes/%s: %v", mac, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("GET /nodes/%s: status %d: %s", mac, resp.StatusCode, body)
	}
	m := regexp.MustCompile(`"state": "([a-z]+)"`).FindSubmatch(body)
	if m == nil {
		a.t.Fatalf("GET /nodes/%s: no state in %s", mac, body)
	}
	return string(m[1])
}

// browser is a plain HTTP client with a cookie jar that does not follow
// redirects (the tests look at them).
type browser struct {
	t testing.TB
	c *http.Client
	a *app
}

func (a *app) browser() *browser {
	jar, _ := cookiejar.New(nil)
	// The timeout only ends a hung request: a filter no node matches reads
	// all 10,000 records of the scale test, which under the race detector
	// on a busy 2-core machine took over 10 s.
	return &browser{t: a.t, a: a, c: &http.Client{Jar: jar, Timeout: 90 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get returns the status, headers and body of GET path.
func (b *browser) get(path string) (int, http.Header, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.a.srv.URL + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func (b *browser) post(path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.a.srv.URL+path, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token on the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	code, _, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("GET %s (status %d): no csrf field in the page", path, code)
	}
	return m[1]
}

// signIn signs in with key and fails unless that worked.
func (b *browser) signIn(key string) {
	b.t.Helper()
	tok := b.csrf("/ui/login")
	code, h, body := b.post("/ui/login", url.Values{"csrf": {tok}, "key": {key}, "next": {"/ui/"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
		b.t.Fatalf("sign-in: status %d, Location %q; body:\n%s", code, h.Get("Location"), body)
	}
}

func mustContain(t testing.TB, what, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Errorf("%s does not contain %q", what, p)
		}
	}
}

func mustMAC(t testing.TB, s string) store.MAC {
	t.Helper()
	m, err := store.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seedFleet gives the store one node in every state, with an install
// outcome, progress, a hostname and labels: what an operator sees on a
// busy day.
func (a *app) seedFleet() {
	a.t.Helper()
	now := time.Now().UTC()
	report := func(mac, kind, msg string) {
		_, err := a.st.Update(mustMAC(a.t, mac), false, now, func(n *store.Node) (*store.Event, error) {
			ev, err := n.Report(kind, true, "", "installer", msg, now)
			return &ev, err
		})
		if err != nil {
			a.t.Fatalf("report %s %s: %v", kind, mac, err)
		}
	}
	install := func(mac string) {
		if _, err := a.st.SetReinstall(mustMAC(a.t, mac), true, now); err != nil {
			a.t.Fatal(err)
		}
		a.boot(mac) // serves the installer: installing
	}
	for i, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04", "52:54:00:00:00:05"} {
		a.boot(mac)
		_, err := a.st.Update(mustMAC(a.t, mac), false, now, func(n *store.Node) (*store.Event, error) {
			n.Hostname = fmt.Sprintf("node%d", i+1)
			n.Labels = map[string]string{"rack": fmt.Sprintf("r%d", i%2+1)}
			return &store.Event{Type: store.EventAdmin, Reason: "settings: hostname, labels"}, nil
		})
		if err != nil {
			a.t.Fatal(err)
		}
	}
	install("52:54:00:00:00:02")
	report("52:54:00:00:00:02", store.EventProgress, "curtin: installing packages (40%)")
	install("52:54:00:00:00:03")
	report("52:54:00:00:00:03", store.EventInstalled, "")
	install("52:54:00:00:00:04")
	report("52:54:00:00:00:04", store.EventFailed, "disk /dev/sda not found")
	if _, err := a.st.SetReinstall(mustMAC(a.t, "52:54:00:00:00:05"), true, now); err != nil {
		a.t.Fatal(err)
	}
}

// bootQuiet is boot without facts (a bulk seed).
func (a *app) bootQuiet(mac string) {
	a.t.Helper()
	resp, err := http.Get(a.srv.URL + "/boot?mac=" + mac + "&platform=pcbios")
	if err != nil {
		a.t.Fatalf("GET /boot: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// report applies an admin installer report straight to the store.
func (a *app) report(mac, kind, msg string) {
	now := time.Now().UTC()
	_, err := a.st.Update(mustMAC(a.t, mac), false, now, func(n *store.Node) (*store.Event, error) {
		ev, err := n.Report(kind, true, "", "installer", msg, now)
		return &ev, err
	})
	if err != nil {
		a.t.Errorf("report %s %s: %v", kind, mac, err)
	}
}
