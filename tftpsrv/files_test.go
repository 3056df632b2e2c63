package tftpsrv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/metrics"
)

// signedFiles is the set the appliance serves for the Secure Boot chain:
// long folder names under both GRUB prefixes, so the socket filter is
// checked at its real size.
func signedFiles() map[string][]byte {
	big := bytes.Repeat([]byte("shim-not-really-"), 100)
	return map[string][]byte{
		"shimx64.efi":                          big,
		"grubx64.efi":                          big[:1000],
		"shimaa64.efi":                         big[:700],
		"grubaa64.efi":                         big[:900],
		"grub/grub.cfg":                        []byte("# grub.cfg\n"),
		"debian-installer/amd64/grub/grub.cfg": []byte("# d-i grub.cfg\n"),
	}
}

func startWithFiles(t *testing.T, files map[string][]byte) *Server {
	t.Helper()
	bins, err := assets.LoadBinaries(assets.Options{NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, LoopWindow: -1, Files: files})
}

// serve starts a server on cfg as it is; it stops in t.Cleanup.
func serve(t *testing.T, cfg Config) *Server {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

// TestExtraFilesServed: every extra file, with and without the leading
// slash GRUB puts in front of its prefix, through a real client.
func TestExtraFilesServed(t *testing.T) {
	files := signedFiles()
	srv := startWithFiles(t, files)
	addr := srv.Addr().String()
	for name, data := range files {
		for _, asked := range []string{name, "/" + name} {
			got, _, err := pinGet(addr, asked, 1428, true)
			if err != nil {
				t.Errorf("RRQ %q: %v", asked, err)
				continue
			}
			if !bytes.Equal(got, data) {
				t.Errorf("RRQ %q: got %d bytes, want %d", asked, len(got), len(data))
			}
		}
	}
	// Neighbours of a served path are still refused by CleanName's rules.
	for _, tc := range []struct {
		name string
		code ErrorCode
	}{
		{"/grub/x86_64-efi/command.lst", ErrAccessViolation},
		{"//grub/grub.cfg", ErrAccessViolation},
		{"grub/../grub/grub.cfg", ErrAccessViolation},
		{"grub.cfg-01-52-54-00-12-34-56", ErrFileNotFound},
	} {
		p := rawExchange(t, addr, rq(opRRQ, tc.name, "octet"))
		if len(p) < 4 || p[1] != opERROR || ErrorCode(p[3]) != tc.code {
			t.Errorf("RRQ %q: got % x, want ERROR code %d", tc.name, p, tc.code)
		}
	}
}

// TestLazyFiles: a file read on first use is served whole; one that
// cannot be read answers the transfer with an error naming it, is logged
// and counted, and the server goes on serving the others.
func TestLazyFiles(t *testing.T) {
	bins, err := assets.LoadBinaries(assets.Options{NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	shim := bytes.Repeat([]byte("lazy-shim-"), 300)
	var loads atomic.Int32
	m := metrics.New("")
	srv := serve(t, Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, LoopWindow: -1, Metrics: m,
		LazyFiles: map[string]LazyFile{
			"shimx64.efi": {Size: len(shim), Load: func() ([]byte, error) { loads.Add(1); return shim, nil }},
			"grubx64.efi": {Size: 10, Load: func() ([]byte, error) { return nil, errors.New("grubx64.efi changed since start-up") }},
		}})
	addr := srv.Addr().String()
	if loads.Load() != 0 {
		t.Fatal("a lazy file was read before anyone asked for it")
	}
	got, _, err := pinGet(addr, "shimx64.efi", 1428, true)
	if err != nil || !bytes.Equal(got, shim) {
		t.Fatalf("shimx64.efi: %d bytes, %v; want %d", len(got), err, len(shim))
	}
	p := rawExchange(t, addr, rq(opRRQ, "grubx64.efi", "octet"))
	if len(p) < 5 || p[1] != opERROR || !strings.Contains(string(p[4:]), `cannot read "grubx64.efi"`) {
		t.Fatalf("unreadable grubx64.efi: got %q, want an ERROR naming it", p)
	}
	if got := value(t, m.TFTPRejected.WithLabelValues("unreadable")); got != 1 {
		t.Errorf("tftp rejected{unreadable} = %v, want 1", got)
	}
	if got, _, err := pinGet(addr, "shimx64.efi", 1428, true); err != nil || !bytes.Equal(got, shim) {
		t.Fatalf("shimx64.efi after the failure: %d bytes, %v", len(got), err)
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, LazyFiles: map[string]LazyFile{"x.efi": {}}}); err == nil {
		t.Error("a lazy file without contents was accepted")
	}
}

func TestExtraFileNamesChecked(t *testing.T) {
	for _, bad := range []string{"", "/grub/grub.cfg", "grub//grub.cfg", "grub/.hidden", "../x", `boot\x64`, "a\x01b", strings.Repeat("a", 300), assets.ScriptBoot} {
		bins, _ := assets.LoadBinaries(assets.Options{NoEmbedded: true, SystemDir: "-"})
		if _, err := New(Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, Files: map[string][]byte{bad: nil}}); err == nil {
			t.Errorf("extra file name %q accepted", bad)
		}
	}
}

// TestGeneratedFolder: names under the generated folder are made per
// request, with the client's address; others in it are "not found".
func TestGeneratedFolder(t *testing.T) {
	bins, err := assets.LoadBinaries(assets.Options{NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	gen := Generator{Prefix: "grub/node/", Make: func(rest string, client netip.Addr) ([]byte, bool) {
		if rest == "unknown" {
			return nil, false
		}
		return []byte("script for " + rest + " at " + client.String() + "\n"), true
	}}
	srv := serve(t, Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, LoopWindow: -1, Files: signedFiles(), Generate: gen})
	addr := srv.Addr().String()
	for _, asked := range []string{"/grub/node/52:54:00:12:34:56", "grub/node/52:54:00:12:34:56"} {
		got, _, err := pinGet(addr, asked, 512, true)
		if err != nil || string(got) != "script for 52:54:00:12:34:56 at 127.0.0.1\n" {
			t.Errorf("RRQ %q: %q %v", asked, got, err)
		}
	}
	for _, asked := range []string{"/grub/node/unknown", "/grub/node/../grub.cfg", "/grub/node/"} {
		if _, _, err := pinGet(addr, asked, 512, false); err == nil {
			t.Errorf("RRQ %q was served", asked)
		}
	}
	if got, _, err := pinGet(addr, "/grub/grub.cfg", 512, false); err != nil || string(got) != "# grub.cfg\n" {
		t.Errorf("grub.cfg next to the generated folder: %q %v", got, err)
	}
}

// TestGeneratedFolderStrictMode: the socket filter checks the mode of a
// name in the generated folder as of any other name (it used to pass the
// folder's names to pin/tftp whatever followed them), for names up to
// MaxNameLen long.
func TestGeneratedFolderStrictMode(t *testing.T) {
	e := startServerWith(t, Config{LoopWindow: -1, Generate: Generator{Prefix: "grub/node/", Make: func(rest string, _ netip.Addr) ([]byte, bool) {
		return []byte("script for " + rest + "\n"), true
	}}})
	const mac = "grub/node/52:54:00:12:34:56"
	for _, mode := range []string{"bogus", "mail", "", "octets", "binary"} {
		r := rawExchange(t, e.addr, rq(opRRQ, mac, mode))
		if binary.BigEndian.Uint16(r) != opERROR || ErrorCode(binary.BigEndian.Uint16(r[2:])) != ErrIllegalOp {
			t.Errorf("mode %q: reply %q, want an illegal-operation ERROR", mode, r)
		}
	}
	// The longest generated name: MaxNameLen with its optional slash.
	longest := "grub/node/" + strings.Repeat("a", MaxNameLen-1-len("grub/node/"))
	for _, c := range []struct {
		pkt  []byte
		want string
	}{
		{rq(opRRQ, mac, "OCTET"), "script for 52:54:00:12:34:56\n"},
		{rq(opRRQ, "/"+mac, "netascii", "blksize", "1468"), "script for 52:54:00:12:34:56\r\n"},
		{rq(opRRQ, "/"+longest, "octet"), "script for " + longest[len("grub/node/"):] + "\n"},
	} {
		r, conn, tid := rawConversation(t, e.addr, c.pkt)
		if binary.BigEndian.Uint16(r) == opOACK { // options acknowledged: ACK block 0
			conn.WriteTo([]byte{0, opACK, 0, 0}, tid)
			buf := make([]byte, 2000)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				t.Fatalf("%q: no DATA after the OACK: %v", c.pkt, err)
			}
			r = buf[:n]
		}
		if binary.BigEndian.Uint16(r) != opDATA || string(r[4:]) != c.want {
			t.Errorf("%q: reply %q, want DATA %q", c.pkt, r, c.want)
		}
		conn.WriteTo(errorPacket(ErrNotDefined, "enough"), tid)
	}
	if r := rawExchange(t, e.addr, rq(opRRQ, "/"+longest+"a", "octet")); ErrorCode(binary.BigEndian.Uint16(r[2:])) != ErrIllegalOp {
		t.Errorf("a name one byte over MaxNameLen: reply %q", r)
	}
}

// TestServeStopsRightAfterStart: a Serve cancelled as soon as it starts
// returns. pin/tftp's Shutdown, run before its Serve has stored the socket,
// closed nothing, and its Serve then blocked in a read for ever (it hung
// TestTransferDeadlineDefault until the 15-minute timeout, once in CI).
func TestServeStopsRightAfterStart(t *testing.T) {
	bins, err := assets.LoadBinaries(assets.Options{NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		srv, err := New(Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL, LoopWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx) }()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Serve returned %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Serve did not return 20 s after its context ended", i)
		}
	}
}
