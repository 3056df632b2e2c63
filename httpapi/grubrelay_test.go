package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/tftpsrv"
)

// grubRRQ is a read request as Debian's GRUB sends it.
func grubRRQ(name string) []byte {
	p := []byte{0, 1}
	for _, s := range []string{name, "octet", "blksize", "1024", "tsize", "0"} {
		p = append(append(p, s...), 0)
	}
	return p
}

// grubOpen opens a file as Debian's GRUB does (tftp.mod's tftp_open: 40
// requests, waiting 400 ms and then 20 ms more each time, 31.6 s in all,
// then "time out opening"), and returns the first answer and its sender.
func grubOpen(t *testing.T, c *net.UDPConn, srv *net.UDPAddr, name string) ([]byte, *net.UDPAddr) {
	t.Helper()
	buf := make([]byte, 2048)
	for ms := 400; ms < 1200; ms += 20 {
		if _, err := c.WriteToUDP(grubRRQ(name), srv); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
		if n, from, err := c.ReadFromUDP(buf); err == nil {
			return append([]byte(nil), buf[:n]...), from
		}
	}
	return nil, nil
}

// grubRead ACKs the OACK and reads the file to its end.
func grubRead(t *testing.T, c *net.UDPConn, from *net.UDPAddr) []byte {
	t.Helper()
	ack := func(b uint16) { c.WriteToUDP([]byte{0, 4, byte(b >> 8), byte(b)}, from) }
	ack(0)
	var body bytes.Buffer
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint16(buf) != 3 {
			t.Fatalf("not DATA: %q", buf[:n])
		}
		block := binary.BigEndian.Uint16(buf[2:])
		if int(block) == body.Len()/1024+1 {
			body.Write(buf[4:n])
		}
		ack(block)
		if n-4 < 1024 {
			return body.Bytes()
		}
	}
}

// relayEnv is newEnv with the seed's kernel (at kernel) and initrd
// (/initrd) on the test's mirror at base, and the real clock.
func relayEnv(t *testing.T, base, kernel string, more func(*Config)) *env {
	t.Helper()
	return newEnv(t, func(c *Config) {
		c.Boot = BootConfig{KernelURL: base + kernel, InitrdURL: base + "/initrd", AutoinstallURL: base + "/ai/", LocalBoot: LocalBootAuto}
		c.Now = time.Now
		if more != nil {
			more(c)
		}
	})
}

// TestGRUBRelayStreams: a relayed file's transfer starts once its length is
// known, and GRUB reads it as it comes. The relay used to answer only once
// the whole file was fetched, and GRUB gives up opening after 31.6 s: a
// big initrd from a slow mirror failed every time, after the flag was
// consumed. Here the mirror sends its headers and the first half, then
// waits until the GRUB client got its OACK (the relay, holding the file
// back, would never let it); through the real TFTP server.
func TestGRUBRelayStreams(t *testing.T) {
	kernel := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	opened := make(chan struct{})
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/vmlinuz" {
			w.Write([]byte("small"))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(kernel)))
		w.Write(kernel[:len(kernel)/2])
		w.(http.Flusher).Flush()
		select {
		case <-opened:
		case <-r.Context().Done():
			return
		}
		w.Write(kernel[len(kernel)/2:])
	}))
	defer files.Close()
	e := relayEnv(t, files.URL, "/vmlinuz", nil)
	s, err := newServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	bins, err := assets.LoadBinaries(assets.Options{SystemDir: "-", NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tftpsrv.New(tftpsrv.Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, Logger: quiet,
		Generate: tftpsrv.Generator{Prefix: boot.GRUBNodeFolder, Make: s.GRUBScript, Stream: s.GRUBRelayed}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { ts.Serve(ctx); close(served) }()
	defer func() { stop(); <-served }()
	srv := ts.Addr().(*net.UDPAddr)
	client := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	const mac = "52:54:00:12:34:56"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	c := client()
	oack, from := grubOpen(t, c, srv, "/grub/node/"+mac)
	if oack == nil {
		t.Fatal("no answer for the script")
	}
	if script := string(grubRead(t, c, from)); !strings.Contains(script, "linux '/grub/node/"+mac+".kernel'") {
		t.Fatalf("script:\n%s", script)
	}
	c = client()
	oack, from = grubOpen(t, c, srv, "/grub/node/"+mac+".kernel")
	if oack == nil {
		close(opened)
		t.Fatalf("GRUB's 40 requests for the relayed kernel got no answer while the mirror was half way: GRUB would say \"time out opening\" (node now %s)", e.node(mac).State)
	}
	close(opened)
	if binary.BigEndian.Uint16(oack) != 6 || !bytes.Contains(oack, []byte("tsize\x00"+strconv.Itoa(len(kernel))+"\x00")) {
		t.Fatalf("answer %q, want an OACK with tsize %d", oack, len(kernel))
	}
	if got := grubRead(t, c, from); !bytes.Equal(got, kernel) {
		t.Fatalf("relayed kernel: %d bytes, want the mirror's %d", len(got), len(kernel))
	}
}

// TestGRUBNodeOverHTTP: a GRUB loaded over HTTP (its root the appliance's
// HTTP server) finds what the grub.cfg served over HTTP sources, and the
// relayed files its script names. Both were TFTP-only: 404 over HTTP, after
// the flag was consumed.
func TestGRUBNodeOverHTTP(t *testing.T) {
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("body of " + r.URL.Path))
	}))
	defer files.Close()
	e := relayEnv(t, files.URL, "/vmlinuz", nil)
	const mac = "52:54:00:12:34:56"
	cfg := e.do("GET", "/grub/grub.cfg", "").Body.String()
	m := regexp.MustCompile(`source "([^"]*)\$\{net_default_mac\}"`).FindStringSubmatch(cfg)
	if m == nil {
		t.Fatalf("grub.cfg:\n%s", cfg)
	}
	if w := e.do("GET", m[1]+mac, ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "boots from local disk") {
		t.Fatalf("GET %s%s: %d\n%s", m[1], mac, w.Code, w.Body)
	}
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	script := e.do("GET", m[1]+mac, "").Body.String()
	for _, re := range []string{`linux '([^']*)'`, `initrd '([^']*)'`} {
		k := regexp.MustCompile(re).FindStringSubmatch(script)
		if k == nil {
			t.Fatalf("script:\n%s", script)
		}
		w := e.do("GET", k[1], "")
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Body.String(), "body of /") {
			t.Errorf("GET %s (named by the script): %d %q", k[1], w.Code, w.Body)
		}
	}
	wantJSONError(t, e.do("GET", "/grub/node/"+mac+".efi", ""), http.StatusNotFound, "installer files")
}

// TestGRUBRelayCacheBounded: the fetched files the relay keeps are bounded
// (relayCacheMax); past it the oldest are dropped and fetched again when
// asked for, still whole. The cache had no bound: per-machine initrd URLs
// could fill memory for the relay's 10 minutes.
func TestGRUBRelayCacheBounded(t *testing.T) {
	var (
		mu   sync.Mutex
		hits = map[string]int{}
	)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		w.Write(bytes.Repeat([]byte(r.URL.Path[1:2]), 1000))
	}))
	defer files.Close()
	e := relayEnv(t, files.URL, "/kernel", nil)
	s, err := newServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.relay.maxCache = 1500 // one of the two 1,000-byte files
	const mac = "52:54:00:12:34:56"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	s.GRUBScript(mac, netip.MustParseAddr("198.51.100.21"))
	for _, name := range []string{".kernel", ".initrd0", ".kernel", ".initrd0"} {
		got, ok := relayedT(t, s, mac+name)
		if want := strings.Repeat(name[1:2], 1000); !ok || got != want {
			t.Fatalf("%s: %t, %d bytes", name, ok, len(got))
		}
		s.relay.mu.Lock()
		held := 0
		for _, b := range s.relay.bodies {
			b.mu.Lock()
			if b.done {
				held += len(b.buf)
			}
			b.mu.Unlock()
		}
		s.relay.mu.Unlock()
		if held > 1500 {
			t.Fatalf("after %s the relay keeps %d bytes, over its bound of 1,500", name, held)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits["/kernel"]+hits["/initrd"] < 3 {
		t.Errorf("fetches %v: with room for one file, asking for both in turn must fetch again", hits)
	}
}

// TestGRUBRelayHidesPasswords: the relay fetches http:// URLs with a
// user and password too; its log lines and errors name them without the
// password.
func TestGRUBRelayHidesPasswords(t *testing.T) {
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/initrd" {
			http.Error(w, "gone", http.StatusNotFound)
			return
		}
		w.Write([]byte("kernel"))
	}))
	defer files.Close()
	var (
		mu   sync.Mutex
		logs bytes.Buffer
	)
	withCreds := strings.Replace(files.URL, "http://", "http://mirror:s3cretPW@", 1)
	e := newEnv(t, func(c *Config) {
		c.Boot = BootConfig{KernelURL: withCreds + "/vmlinuz", InitrdURL: withCreds + "/initrd", AutoinstallURL: files.URL + "/ai/", LocalBoot: LocalBootAuto}
		c.Now = time.Now
		c.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil))
	})
	s, err := newServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:12:34:56"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	s.GRUBScript(mac, netip.MustParseAddr("198.51.100.21"))
	if got, ok := relayedT(t, s, mac+".kernel"); !ok || got != "kernel" {
		t.Fatalf("kernel: %t %q", ok, got)
	}
	if _, _, ok := s.GRUBRelayed(mac+".initrd0", netip.Addr{}); ok {
		t.Fatal("a 404 upstream was relayed")
	}
	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if strings.Contains(out, "s3cretPW") || !strings.Contains(out, "mirror:xxxxx@") {
		t.Errorf("relay log:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestGRUBNodeOverHTTPOutlivesTheWriteTimeout: a relayed file goes out over
// HTTP at the mirror's pace, past the server's write timeout (5 minutes in
// Serve, 1 s here), which used to cut a slow mirror's initrd for a GRUB
// loaded over HTTP.
func TestGRUBNodeOverHTTPOutlivesTheWriteTimeout(t *testing.T) {
	half := bytes.Repeat([]byte("k"), 64<<10)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(2*len(half)))
		w.Write(half)
		w.(http.Flusher).Flush()
		select { // the second half comes after the appliance's write timeout
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Write(half)
	}))
	defer files.Close()
	e := relayEnv(t, files.URL, "/vmlinuz", nil)
	srv := httptest.NewUnstartedServer(e.h)
	srv.Config.WriteTimeout = time.Second
	srv.Start()
	defer srv.Close()
	const mac = "52:54:00:12:34:56"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantCode(t, e.do("GET", "/grub/node/"+mac, ""), http.StatusOK)
	resp, err := http.Get(srv.URL + "/grub/node/" + mac + ".kernel")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || len(got) != 2*len(half) {
		t.Fatalf("relayed kernel over HTTP: %d of %d bytes, %v", len(got), 2*len(half), err)
	}
}
