package tftpsrv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/metrics"
)

const testBaseURL = "http://203.0.113.10:8000"

// testEnv is a running Server on 127.0.0.1 with Debian's iPXE builds and a
// made-up arm64 build, so all four binary names exist.
type testEnv struct {
	srv  *Server
	addr string
	bins *assets.Binaries
	m    *metrics.Metrics
	logs *bytes.Buffer
	mu   *sync.Mutex // guards logs
	// stop ends Serve's context and returns what Serve returned; the
	// test's cleanup calls it too.
	stop func() error
}

// logText returns what the server logged so far.
func (e *testEnv) logText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logs.String()
}

func startServer(t *testing.T, window time.Duration) *testEnv {
	t.Helper()
	return startServerWith(t, Config{LoopWindow: window})
}

// startServerWith is startServer with more settings: cfg's Addr, Binaries,
// BaseURL, Metrics and Logger are filled in.
func startServerWith(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	for _, n := range []string{assets.UndionlyKPXE, assets.IPXEEFI, assets.SNPOnlyEFI} {
		if _, err := os.Stat(filepath.Join(assets.DebianDir, n)); err != nil {
			t.Fatalf("Debian's iPXE build %s is missing (%v): apt-get install ipxe", n, err)
		}
	}
	arm := filepath.Join(t.TempDir(), "ipxe-arm64.efi")
	// Not a real build: 3000 bytes of a pattern, enough for a multi-block
	// transfer whose last block is partial.
	pat := bytes.Repeat([]byte("arm64-not-really-"), 200)[:3000]
	if err := os.WriteFile(arm, pat, 0o644); err != nil {
		t.Fatal(err)
	}
	bins, err := assets.LoadBinaries(assets.Options{ARM64: arm, NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test")
	logs := &bytes.Buffer{}
	mu := &sync.Mutex{}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: logs, mu: mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Addr, cfg.Binaries, cfg.BaseURL, cfg.Metrics, cfg.Logger = "127.0.0.1:0", bins, testBaseURL, m, logger
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
	return &testEnv{srv: srv, addr: srv.Addr().String(), bins: bins, m: m, logs: logs, mu: mu, stop: stop}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// want returns the bytes a name must be served as (without loop break).
func (e *testEnv) want(t *testing.T, name string) []byte {
	t.Helper()
	if b, ok := e.bins.Get(name); ok {
		return b.Data
	}
	f, ok := e.srv.files[name]
	if !ok {
		t.Fatalf("no file %q", name)
	}
	return f.data
}

func pinGet(addr, name string, blksize int, tsize bool) ([]byte, int64, error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, 0, err
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(5)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(tsize)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		if n, ok := it.Size(); ok {
			size = n
		}
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, size, err
	}
	return buf.Bytes(), size, nil
}

var allNames = []string{assets.UndionlyKPXE, assets.IPXEEFI, assets.SNPOnlyEFI, assets.ARM64EFI, assets.ScriptBoot, assets.ScriptAutoexec}

func TestPinClientDownloadsEveryFile(t *testing.T) {
	// A fresh server per case would hide nothing; the window is 1 ns so
	// the loop breaker never answers a repeated binary with the script.
	e := startServer(t, time.Nanosecond)
	for _, name := range allNames {
		for _, bs := range []int{0, 512, 1468} {
			for _, tsize := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/blksize=%d/tsize=%v", name, bs, tsize), func(t *testing.T) {
					got, size, err := pinGet(e.addr, name, bs, tsize)
					if err != nil {
						t.Fatalf("get %s: %v", name, err)
					}
					want := e.want(t, name)
					if sum(got) != sum(want) {
						t.Fatalf("get %s: %d bytes sha256 %s, want %d bytes %s", name, len(got), sum(got), len(want), sum(want))
					}
					if b, ok := e.bins.Get(name); ok && sum(got) != b.SHA256 {
						t.Fatalf("sha256 differs from assets' record")
					}
					if tsize && size != int64(len(want)) {
						t.Fatalf("tsize = %d, want %d", size, len(want))
					}
					if !tsize && size != -1 {
						t.Fatalf("tsize = %d offered though not asked", size)
					}
				})
			}
		}
	}
	// A single leading slash is tolerated.
	got, _, err := pinGet(e.addr, "/"+assets.UndionlyKPXE, 0, false)
	if err != nil || sum(got) != sum(e.want(t, assets.UndionlyKPXE)) {
		t.Fatalf("get /undionly.kpxe: err %v, sha %s", err, sum(got))
	}
	waitFor(t, "the server to see every last ACK", func() bool {
		return value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "completed"))+
			value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "failed")) == 6
	})
	// One log line per transfer, with what an operator needs.
	line := regexp.MustCompile(`msg="TFTP transfer" component=tftp client=127\.0\.0\.1:\d+ file=ipxe\.efi served=ipxe\.efi bytes=850528 duration=\S+ result=completed`)
	if n := len(line.FindAllString(e.logText(), -1)); n != 6 {
		t.Errorf("%d log lines for the 6 ipxe.efi transfers:\n%s", n, e.logText())
	}
	if v := value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "completed")); v != 6 {
		t.Errorf("ipxe.efi completed = %v, want 6", v)
	}
	if v := value(t, e.m.TFTPBytes.WithLabelValues(assets.IPXEEFI)); v != float64(6*len(e.want(t, assets.IPXEEFI))) {
		t.Errorf("ipxe.efi bytes = %v", v)
	}
	if n := value(t, e.m.TFTPDuration.WithLabelValues(assets.IPXEEFI).(prometheus.Metric)); n != 6 {
		t.Errorf("ipxe.efi durations observed = %v, want 6", n)
	}
}

func TestScriptsRenderBaseURL(t *testing.T) {
	e := startServer(t, 0)
	for _, name := range []string{assets.ScriptBoot, assets.ScriptAutoexec} {
		got, _, err := pinGet(e.addr, name, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("#!ipxe\n")) || !bytes.Contains(got, []byte("chain --autofree "+testBaseURL+"/chain")) {
			t.Fatalf("%s:\n%s", name, got)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	bins, err := assets.LoadBinaries(assets.Options{SystemDir: "-", NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Addr: "127.0.0.1:0", BaseURL: testBaseURL},
		{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: ""},
		{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: "ftp://x"},
		{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: "http://a b"},
		{Addr: "127.0.0.1:99999", Binaries: bins, BaseURL: testBaseURL},
	} {
		if s, err := New(c); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", c)
		} else if !strings.HasPrefix(err.Error(), "tftpsrv: ") {
			t.Errorf("error %q does not say where it comes from", err)
		}
	}
	// Port in use is an error at New, not later.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if s, err := New(Config{Addr: pc.LocalAddr().String(), Binaries: bins, BaseURL: testBaseURL}); err == nil {
		s.Close()
		t.Fatalf("New on a port in use succeeded")
	} else {
		t.Logf("port in use: %v", err)
	}
}

// rawExchange sends p from a fresh socket and returns the first reply.
func rawExchange(t *testing.T, addr string, p []byte) []byte {
	t.Helper()
	r, _, _ := rawConversation(t, addr, p)
	return r
}

// rawConversation sends p from a fresh socket (closed at the end of the
// test) and returns the first reply, the socket and the reply's source,
// the server's transfer ID.
func rawConversation(t *testing.T, addr string, p []byte) ([]byte, net.PacketConn, net.Addr) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(p, ua); err != nil {
		t.Fatal(err)
	}
	// A deadline only bounds the wait for an answer that must come; it
	// asserts nothing about speed.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 70000)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no reply to %q: %v", p, err)
	}
	return buf[:n], c, from
}

func rq(op uint16, name, mode string, opts ...string) []byte {
	p := binary.BigEndian.AppendUint16(nil, op)
	for _, s := range append([]string{name, mode}, opts...) {
		p = append(append(p, s...), 0)
	}
	return p
}

func TestRefusalsOnTheWire(t *testing.T) {
	e := startServer(t, 0)
	long := strings.Repeat("a", 300)
	cases := []struct {
		name   string
		pkt    []byte
		code   ErrorCode
		msg    string
		reason string
	}{
		{"write request", rq(opWRQ, "undionly.kpxe", "octet"), ErrAccessViolation, "read-only", "write"},
		{"write request new file", rq(opWRQ, "x", "octet", "tsize", "10"), ErrAccessViolation, "read-only", "write"},
		{"parent dir", rq(opRRQ, "../etc/passwd", "octet"), ErrAccessViolation, "starts with a dot", "bad_path"},
		{"absolute", rq(opRRQ, "/etc/passwd", "octet"), ErrAccessViolation, "directory part", "bad_path"},
		{"double slash", rq(opRRQ, "//undionly.kpxe", "octet"), ErrAccessViolation, "absolute path", "bad_path"},
		{"subdir traversal", rq(opRRQ, "pxelinux.cfg/../../etc/shadow", "octet"), ErrAccessViolation, "directory part", "bad_path"},
		{"backslash", rq(opRRQ, "boot\\x64\\wdsnbp.com", "octet"), ErrAccessViolation, "directory part", "bad_path"},
		{"dotfile", rq(opRRQ, ".ssh", "octet"), ErrAccessViolation, "starts with a dot", "bad_path"},
		{"control char", rq(opRRQ, "undionly.kpxe\n", "octet"), ErrAccessViolation, "control characters", "bad_path"},
		{"over-long name", rq(opRRQ, long, "octet"), ErrIllegalOp, "longer than 255", "too_long"},
		{"unknown", rq(opRRQ, "pxelinux.0", "octet"), ErrFileNotFound, "file not found", "not_found"},
		{"wrong case", rq(opRRQ, "UNDIONLY.KPXE", "octet"), ErrFileNotFound, "file not found", "not_found"},
		{"prefix of a name", rq(opRRQ, "undionly.kpx", "octet"), ErrFileNotFound, "file not found", "not_found"},
		{"name plus suffix", rq(opRRQ, "undionly.kpxe.bak", "octet"), ErrFileNotFound, "file not found", "not_found"},
		{"no mode", append(binary.BigEndian.AppendUint16(nil, opRRQ), "undionly.kpxe\x00"...), ErrIllegalOp, "no transfer mode", "malformed"},
		{"bad mode", rq(opRRQ, "pxelinux.0", "binary"), ErrIllegalOp, "unknown transfer mode", "malformed"},
		{"known name, bad mode", rq(opRRQ, "ipxe.efi", "binary"), ErrIllegalOp, "unknown transfer mode", "malformed"},
		{"known name, mode prefix", rq(opRRQ, "undionly.kpxe", "octets"), ErrIllegalOp, "unknown transfer mode", "malformed"},
		{"known name, mode mail", rq(opRRQ, "boot.ipxe", "mail"), ErrIllegalOp, "write requests only", "malformed"},
		{"known name, no final NUL", []byte("\x00\x01undionly.kpxe\x00octet"), ErrIllegalOp, "not NUL-terminated", "malformed"},
		{"known name, options without final NUL", []byte("\x00\x01/ipxe.efi\x00octet\x00tsize\x000"), ErrIllegalOp, "not NUL-terminated", "malformed"},
		{"unknown name, no final NUL", []byte("\x00\x01pxelinux.0\x00octet"), ErrIllegalOp, "not NUL-terminated", "malformed"},
		{"one byte", []byte{0x42}, ErrIllegalOp, "no opcode", "malformed"},
		{"unknown opcode", []byte{0x47, 0x45, 0x54, 0x20, 0x2f}, ErrIllegalOp, "unknown opcode", "malformed"},
		{"zero opcode", []byte{0, 0, 0, 0}, ErrIllegalOp, "unknown opcode", "malformed"},
		{"stray ACK", []byte{0, opACK, 0, 1}, ErrIllegalOp, "only valid inside a transfer", "malformed"},
		{"stray DATA", []byte{0, opDATA, 0, 1, 'x'}, ErrIllegalOp, "only valid inside a transfer", "malformed"},
		{"not NUL-terminated", []byte{0, opRRQ, 'u', 'n', 'd'}, ErrIllegalOp, "not NUL-terminated", "malformed"},
		{"odd option", rq(opRRQ, "x", "octet", "blksize"), ErrIllegalOp, "has no value", "malformed"},
		{"huge packet", append(rq(opRRQ, "undionly.kpxe", "octet"), make([]byte, 2000)...), ErrIllegalOp, "longer than 516", "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := value(t, e.m.TFTPRejected.WithLabelValues(c.reason))
			r := rawExchange(t, e.addr, c.pkt)
			if len(r) < 5 || binary.BigEndian.Uint16(r) != opERROR || r[len(r)-1] != 0 {
				t.Fatalf("reply %q is not a TFTP ERROR packet", r)
			}
			code, msg := ErrorCode(binary.BigEndian.Uint16(r[2:])), string(r[4:len(r)-1])
			if code != c.code || !strings.Contains(msg, c.msg) {
				t.Fatalf("got ERROR %d %q, want %d containing %q", code, msg, c.code, c.msg)
			}
			if after := value(t, e.m.TFTPRejected.WithLabelValues(c.reason)); after != before+1 {
				t.Fatalf("rejected{reason=%q} went %v -> %v", c.reason, before, after)
			}
			// And the server still serves.
			got, _, err := pinGet(e.addr, assets.ScriptBoot, 0, false)
			if err != nil || !bytes.HasPrefix(got, []byte("#!ipxe")) {
				t.Fatalf("server stopped serving after %s: %v", c.name, err)
			}
		})
	}
}

func TestStrayErrorPacketIsNotAnswered(t *testing.T) {
	e := startServer(t, 0)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, _ := net.ResolveUDPAddr("udp4", e.addr)
	// An ERROR to port 69 first, then a request from the same socket: the
	// first (and only) reply must be the answer to the request.
	c.WriteTo(append([]byte{0, opERROR, 0, 1}, "no\x00"...), ua)
	c.WriteTo(rq(opWRQ, "f", "octet"), ua)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 600)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if code := binary.BigEndian.Uint16(buf[2:]); code != uint16(ErrAccessViolation) {
		t.Fatalf("first reply %q: want the WRQ's access violation", buf[:n])
	}
}

func TestPinClientSeesRefusals(t *testing.T) {
	e := startServer(t, 0)
	for name, want := range map[string]string{"../etc/passwd": "code: 2", "nope": "code: 1"} {
		_, _, err := pinGet(e.addr, name, 1468, true)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("get %q: err %v, want %s", name, err, want)
		}
	}
	c, _ := tftp.NewClient(e.addr)
	c.SetTimeout(2 * time.Second)
	rf, err := c.Send("upload.bin", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("data"))
	}
	if err == nil || !strings.Contains(err.Error(), "code=2") {
		t.Errorf("put: err %v, want access violation", err)
	}
}

// value reads a counter's value or a histogram's sample count.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("metric %v is neither a counter nor a histogram", c.Desc())
	return 0
}

// TestServeReleasesEverything ends Serve while a transfer is stalled (the
// client went quiet after the first block) and checks that Serve returns
// and the port can be bound again.
func TestServeReleasesEverything(t *testing.T) {
	bins, err := assets.LoadBinaries(assets.Options{NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Binaries: bins, BaseURL: testBaseURL})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	r := rawExchange(t, addr, rq(opRRQ, assets.IPXEEFI, "octet"))
	if binary.BigEndian.Uint16(r) != opDATA {
		t.Fatalf("reply %q", r[:4])
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after its context ended")
	}
	if err := srv.Serve(context.Background()); err == nil {
		t.Fatal("second Serve succeeded")
	}
	again, err := New(Config{Addr: addr, Binaries: bins, BaseURL: testBaseURL})
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	again.Close()
}

func TestRefusalLogIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil))}
	src := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 2000}
	re := reject(ErrAccessViolation, "write", "access violation")
	t0 := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	for i := 0; i < 100; i++ {
		s.logRefusal(t0.Add(time.Duration(i)*time.Millisecond), src, re)
	}
	if n := strings.Count(buf.String(), "TFTP request refused"); n != refusalLogBurst {
		t.Fatalf("%d lines in the first second, want %d", n, refusalLogBurst)
	}
	s.logRefusal(t0.Add(1500*time.Millisecond), src, re)
	if !strings.Contains(buf.String(), "count=80") || strings.Count(buf.String(), "TFTP request refused") != refusalLogBurst+1 {
		t.Fatalf("after the second:\n%s", buf.String())
	}
}

// TestGarbageFloodDoesNotStopService sends a bounded burst of garbage and
// bad requests, then downloads a binary.
func TestGarbageFloodDoesNotStopService(t *testing.T) {
	e := startServer(t, time.Nanosecond)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, _ := net.ResolveUDPAddr("udp4", e.addr)
	pkts := [][]byte{{0xff}, {0, 9, 1, 2}, rq(opWRQ, "x", "octet"), rq(opRRQ, "../x", "octet"), make([]byte, 1400)}
	for i := 0; i < 5000; i++ {
		c.WriteTo(pkts[i%len(pkts)], ua)
	}
	got, _, err := pinGet(e.addr, assets.UndionlyKPXE, 1468, true)
	if err != nil || sum(got) != sum(e.want(t, assets.UndionlyKPXE)) {
		t.Fatalf("download after the flood: %v", err)
	}
	if v := value(t, e.m.TFTPRejected.WithLabelValues("malformed")); v == 0 {
		t.Fatalf("no refusals counted: the flood never arrived")
	}
}
