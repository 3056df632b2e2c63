package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// grubBoot is a seed configuration GRUB can carry out: no iPXE-only
// ${uuid}, and the ubuntu seed's "ds=nocloud-net;s=…".
var grubBoot = BootConfig{
	KernelURL:      "http://198.51.100.10/ubuntu/vmlinuz",
	InitrdURL:      "http://198.51.100.10/ubuntu/initrd",
	AutoinstallURL: "http://198.51.100.10/autoinstall/${mac}/",
	KernelArgs:     "console=ttyS0",
	LocalBoot:      LocalBootAuto,
}

func wantGRUB(t *testing.T, w interface {
	Result() *http.Response
}, body string, code int) {
	t.Helper()
	if r := w.Result(); r.StatusCode != code {
		t.Fatalf("status %d, want %d:\n%s", r.StatusCode, code, body)
	}
	if !strings.HasSuffix(body, "\nexit\n") || !strings.Contains(body, "chainloader") || strings.HasPrefix(body, "#!ipxe") {
		t.Fatalf("not a GRUB script that leaves GRUB:\n%s", body)
	}
}

// TestGRUBMakesTheBootDecision: /grub goes through the same decision as
// /boot: the flag is consumed once, the event and the metrics name the
// loader, the next boot is local.
func TestGRUBMakesTheBootDecision(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Boot = grubBoot })
	const mac = "52:54:00:12:34:56"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	q := "/grub?mac=" + mac + "&ip=198.51.100.21&platform=efi&buildarch=x86_64"
	w := e.do("GET", q, "")
	body := w.Body.String()
	wantGRUB(t, w, body, http.StatusOK)
	for _, want := range []string{
		"linux '/grub/node/" + mac + ".kernel' 'autoinstall' 'ds=nocloud-net;s=http://198.51.100.10/autoinstall/" + mac + "/' 'console=ttyS0'",
		"initrd '/grub/node/" + mac + ".initrd0'",
		mac + " reinstalls now",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("reinstall script lacks %q:\n%s", want, body)
		}
	}
	n := e.node(mac)
	if n.Reinstall || n.State != store.StateInstalling || n.Facts.Platform != "efi" || n.Facts.BuildArch != "x86_64" || n.LastIP != "198.51.100.21" {
		t.Errorf("after the GRUB reinstall: %+v", n)
	}
	w = e.do("GET", q, "")
	body = w.Body.String()
	wantGRUB(t, w, body, http.StatusOK)
	if !strings.Contains(body, mac+" boots from local disk") {
		t.Errorf("second boot is not local:\n%s", body)
	}
	ev, err := e.st.Events(n.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2 || ev[0].Loader != "grub" || ev[1].Loader != "grub" || ev[1].Decision != store.DecisionReinstall || ev[0].Decision != store.DecisionLocal {
		t.Errorf("events = %+v, want reinstall then local, both by grub", ev)
	}
	for _, d := range []string{"reinstall", "local"} {
		if got := testutil.ToFloat64(e.m.LoaderRequests.WithLabelValues("grub", d)); got != 1 {
			t.Errorf(`loader_boot_requests_total{loader="grub",decision=%q} = %g, want 1`, d, got)
		}
	}
	if got := testutil.ToFloat64(e.m.LoaderRequests.WithLabelValues("ipxe", "reinstall")); got != 0 {
		t.Errorf("ipxe reinstall counted %g times", got)
	}
}

// TestGRUBErrors: what GRUB gets when no plan can be served; the flag
// stays pending.
func TestGRUBErrors(t *testing.T) {
	const mac = "52:54:00:12:34:56"
	for _, tc := range []struct {
		name  string
		boot  BootConfig
		query string
		code  int
		want  string
	}{
		{"bad MAC", grubBoot, "mac=52:54:00:12:34", http.StatusBadRequest, "no usable MAC address"},
		{"empty MAC (GRUB without net_default_mac)", grubBoot, "mac=&ip=", http.StatusBadRequest, "GRUB must ask for /grub/node/$net_default_mac"},
		{"misconfigured", BootConfig{LocalBoot: LocalBootAuto}, "mac=" + mac, http.StatusOK, "set PXE_UBUNTU_KERNEL_URL"},
		{"iPXE-only setting", fullBoot, "mac=" + mac, http.StatusOK, "GRUB cannot expand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Boot = tc.boot })
			wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
			w := e.do("GET", "/grub?"+tc.query, "")
			body := w.Body.String()
			wantGRUB(t, w, body, tc.code)
			if !strings.Contains(body, tc.want) {
				t.Errorf("script lacks %q:\n%s", tc.want, body)
			}
			if !e.node(mac).Reinstall {
				t.Error("the reinstall flag was consumed by an error script")
			}
		})
	}
}

func TestGRUBStaticFiles(t *testing.T) {
	dir := t.TempDir()
	signed, err := assets.LoadSigned(assets.SignedOptions{Dir: dir, System: map[string][]string{}, NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Signed = signed })
	for _, p := range []string{"/grub/grub.cfg", "/debian-installer/amd64/grub/grub.cfg"} {
		w := e.do("GET", p, "")
		wantCode(t, w, http.StatusOK)
		if !strings.Contains(w.Body.String(), `source "/grub/node/${net_default_mac}"`) {
			t.Errorf("%s:\n%s", p, w.Body.String())
		}
	}
	wantJSONError(t, e.do("GET", "/shim/shimx64.efi", ""), http.StatusNotFound, "shim-signed")
	wantJSONError(t, e.do("GET", "/shim/nope.efi", ""), http.StatusNotFound, "known: shimx64.efi")
}

// TestShimServedFromFirstUse: /shim/<name> serves the chain read on first
// use; a file changed on disk since start-up gets 503 naming it and the
// way out, never half a file.
func TestShimServedFromFirstUse(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{assets.ShimX64: "a shim", assets.GRUBX64: "a grub"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := assets.LoadSigned(assets.SignedOptions{Dir: dir, System: map[string][]string{}, NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Signed = signed })
	w := e.do("GET", "/shim/shimx64.efi", "")
	wantCode(t, w, http.StatusOK)
	if w.Body.String() != "a shim" {
		t.Errorf("shim body %q", w.Body.String())
	}
	if err := os.WriteFile(filepath.Join(dir, assets.GRUBX64), []byte("a newer grub"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantJSONError(t, e.do("GET", "/shim/grubx64.efi", ""), http.StatusServiceUnavailable, "restart pxe-pilot")
	if got := testutil.ToFloat64(e.m.AssetRequests.WithLabelValues(assets.GRUBX64, "unreadable")); got != 1 {
		t.Errorf("asset requests{grubx64.efi, unreadable} = %v, want 1", got)
	}
}

// FuzzGRUBQuery: whatever GRUB (or anyone) sends to /grub, the answer is a
// GRUB script that ends by leaving GRUB, and nothing panics.
func FuzzGRUBQuery(f *testing.F) {
	f.Add("mac=52:54:00:12:34:56&ip=198.51.100.21&platform=efi&buildarch=x86_64")
	f.Add("mac=&ip=&platform=&buildarch=")
	f.Add("mac=52%3A54%3A00%3A12%3A34%3A56&ip=fe80::1%25eth0")
	f.Add("mac=52:54:00:12:34:56;echo&ip=$x&platform='")
	f.Add("mac=52-54-00-12-34-56&mac=x&platform=%00%0aexit")
	e := newEnv(f, func(c *Config) { c.Boot = grubBoot })
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", "/grub", nil)
		req.URL.RawQuery = query // as a server receives it, valid or not
		req.RemoteAddr = testPeer
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		body := w.Body.String()
		if !strings.HasSuffix(body, "\nexit\n") {
			t.Fatalf("query %q: answer does not end in exit:\n%s", query, body)
		}
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "echo ") && !strings.HasPrefix(l, "echo '") {
				t.Fatalf("query %q: unquoted echo %q", query, l)
			}
		}
	})
}

// TestGRUBScriptOverTFTP: the TFTP generator makes the same decision as
// /grub, with the TFTP client's address.
func TestGRUBScriptOverTFTP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Boot = grubBoot })
	s, err := newServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:12:34:56"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	body, ok := s.GRUBScript(mac, netip.MustParseAddr("198.51.100.21"))
	if !ok || !strings.Contains(string(body), "reinstalls now") {
		t.Fatalf("%t:\n%s", ok, body)
	}
	n := e.node(mac)
	if n.Reinstall || n.LastIP != "198.51.100.21" || n.Facts.Platform != "efi" {
		t.Errorf("node after the TFTP script: %+v", n)
	}
	if body, ok := s.GRUBScript("not-a-mac", netip.Addr{}); !ok || !strings.Contains(string(body), "no usable MAC") {
		t.Errorf("bad MAC: %t\n%s", ok, body)
	}
}

// TestGRUBRelay: the plan's http URLs reach GRUB as TFTP files of the
// appliance, fetched when GRUB asks; nothing else is fetched.
func TestGRUBRelay(t *testing.T) {
	var (
		mu   sync.Mutex
		hits []string // the kernel and initrd are fetched at once, as the script is served
	)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.URL.Path)
		mu.Unlock()
		w.Write([]byte("body of " + r.URL.Path))
	}))
	defer files.Close()
	boot := BootConfig{KernelURL: files.URL + "/vmlinuz", InitrdURL: files.URL + "/initrd", AutoinstallURL: files.URL + "/ai/", LocalBoot: LocalBootAuto}
	e := newEnv(t, func(c *Config) { c.Boot = boot })
	s, err := newServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:12:34:56"
	if _, ok := relayedT(t, s, mac+".kernel"); ok {
		t.Fatal("relayed a file before any plan named it")
	}
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	body, _ := s.GRUBScript(mac, netip.MustParseAddr("198.51.100.21"))
	if !strings.Contains(string(body), "linux '/grub/node/"+mac+".kernel'") {
		t.Fatalf("script:\n%s", body)
	}
	for name, want := range map[string]string{mac + ".kernel": "body of /vmlinuz", mac + ".initrd0": "body of /initrd"} {
		got, ok := relayedT(t, s, name)
		if !ok || got != want {
			t.Errorf("%s: %t %q", name, ok, got)
		}
		if _, ok := s.GRUBScript(name, netip.Addr{}); ok {
			t.Errorf("GRUBScript made a script for %s", name)
		}
	}
	relayedT(t, s, mac+".kernel") // cached
	for _, bad := range []string{mac + ".efi", "52:54:00:12:34:57.kernel", mac + ".initrd1"} {
		if _, ok := relayedT(t, s, bad); ok {
			t.Errorf("%s relayed", bad)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 2 {
		t.Errorf("file server hits %v, want one per file", hits)
	}
}

// relayedT reads a relayed file whole, as a TFTP transfer would.
func relayedT(t *testing.T, s *Server, name string) (string, bool) {
	t.Helper()
	r, size, ok := s.GRUBRelayed(name, netip.Addr{})
	if !ok {
		return "", false
	}
	b, err := io.ReadAll(r)
	if err != nil || int64(len(b)) != size {
		t.Errorf("%s: read %d of %d bytes: %v", name, len(b), size, err)
	}
	return string(b), true
}

// TestGRUBRelayFetchesOnceAndForgets: GRUB's retransmitted requests, and
// other machines installing the same profile, wait for one fetch of a file
// and share its body (each request used to fetch it again, and each
// machine to keep its own copy); the bodies are freed once the plans
// expire, even when no GRUB asks for anything after them (they used to
// stay until the next GRUB reinstall).
func TestGRUBRelayFetchesOnceAndForgets(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/initrd" {
			hits.Add(1)
		}
		<-release // the fetch is slow: every request below arrives during it
		w.Write([]byte("body of " + r.URL.Path))
	}))
	defer files.Close()
	boot := BootConfig{KernelURL: files.URL + "/vmlinuz", InitrdURL: files.URL + "/initrd", AutoinstallURL: files.URL + "/ai/", LocalBoot: LocalBootAuto}
	// The real clock: the test env's steps a second a call, and the TTL
	// is shortened to 2 s.
	e := newEnv(t, func(c *Config) { c.Boot = boot; c.Now = time.Now })
	s, err := newServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.relay.ttl = 2 * time.Second
	macs := []string{"52:54:00:12:34:56", "52:54:00:12:34:57"}
	for _, mac := range macs {
		wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
		if body, _ := s.GRUBScript(mac, netip.MustParseAddr("198.51.100.21")); !strings.Contains(string(body), mac+".initrd0") {
			t.Fatalf("script for %s:\n%s", mac, body)
		}
	}
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies[i], _ = relayedT(t, s, macs[i%2]+".initrd0")
		}()
	}
	for start := time.Now(); hits.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			close(release)
			t.Fatal("no request fetched the file within 30 s")
		}
	}
	time.Sleep(100 * time.Millisecond) // let the other requests queue behind the fetch
	close(release)
	wg.Wait()
	for i, b := range bodies {
		if b != "body of /initrd" {
			t.Errorf("request %d got %q", i, b)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("8 requests from 2 machines for one file: %d fetches, want 1", n)
	}
	// No GRUB asks for anything more: the relay forgets by itself.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.relay.mu.Lock()
		held := len(s.relay.entries) + len(s.relay.bodies)
		s.relay.mu.Unlock()
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after a 2 s TTL the relay still holds %d plans and bodies", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
