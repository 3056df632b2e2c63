package tftpsrv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
)

// slowClient is a TFTP reader on a real socket that ACKs each DATA block
// only after ackDelay, and (if retry > 0) retransmits its RRQ every retry
// until the server answers, as firmware does. It runs until stop, then
// ends its transfer with an ERROR to the server's transfer ID.
type slowClient struct {
	conn     net.PacketConn
	server   *net.UDPAddr
	rrq      []byte
	ackDelay time.Duration
	retry    time.Duration

	mu     sync.Mutex
	blocks int    // DATA blocks received
	errMsg string // the ERROR received, if any
	rrqs   int    // RRQs sent
}

func startSlowClient(t *testing.T, from, server, name string, ackDelay, retry time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) *slowClient {
	t.Helper()
	c, err := net.ListenPacket("udp4", from+":0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	sc := &slowClient{conn: c, server: ua, rrq: rq(opRRQ, name, "octet"), ackDelay: ackDelay, retry: retry}
	sc.sendRRQ()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		sc.run(stop)
	}()
	return sc
}

func (sc *slowClient) sendRRQ() {
	sc.mu.Lock()
	sc.rrqs++
	sc.mu.Unlock()
	sc.conn.WriteTo(sc.rrq, sc.server)
}

func (sc *slowClient) run(stop <-chan struct{}) {
	buf := make([]byte, 2048)
	var tid net.Addr
	lastRRQ := time.Now()
	for {
		select {
		case <-stop:
			if tid != nil {
				sc.conn.WriteTo(errorPacket(ErrNotDefined, "test over"), tid)
			}
			return
		default:
		}
		sc.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := sc.conn.ReadFrom(buf)
		if err != nil {
			if tid == nil && sc.retry > 0 && time.Since(lastRRQ) >= sc.retry {
				sc.sendRRQ()
				lastRRQ = time.Now()
			}
			continue
		}
		if n < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(buf) {
		case opERROR:
			sc.mu.Lock()
			sc.errMsg = string(bytes.TrimRight(buf[4:n], "\x00"))
			sc.mu.Unlock()
			return
		case opDATA:
			tid = from
			block := binary.BigEndian.Uint16(buf[2:])
			sc.mu.Lock()
			sc.blocks++
			sc.mu.Unlock()
			select {
			case <-stop:
				continue // the next loop sends the ERROR
			case <-time.After(sc.ackDelay):
			}
			sc.conn.WriteTo([]byte{0, opACK, byte(block >> 8), byte(block)}, from)
			if n < 4+512 {
				return // last block
			}
		}
	}
}

func (sc *slowClient) state() (blocks int, errMsg string, rrqs int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.blocks, sc.errMsg, sc.rrqs
}

// TestBusyIsSilentAndRetried fills the transfer cap with one slow transfer:
// the next request gets no answer at all (an ERROR would end a firmware's
// boot), is counted as busy, and is served when the client retransmits its
// RRQ after the slot has freed. The same for a generated name (GRUB's
// grub/node/<MAC>), which used to get "file not found".
func TestBusyIsSilentAndRetried(t *testing.T) {
	for _, c := range []struct{ test, name, label string }{
		{"served file", assets.UndionlyKPXE, assets.UndionlyKPXE},
		{"generated file", "grub/node/52:54:00:12:34:56", "grub/node/"},
	} {
		t.Run(c.test, func(t *testing.T) {
			e := startServerWith(t, Config{LoopWindow: -1, Generate: Generator{Prefix: "grub/node/", Make: func(rest string, _ netip.Addr) ([]byte, bool) {
				return []byte("script for " + rest + "\n"), true
			}}})
			e.srv.gateMu.Lock()
			e.srv.maxActive = 1
			e.srv.gateMu.Unlock()
			stop, stopFirst := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			defer func() { close(stop); wg.Wait() }()

			first := startSlowClient(t, "127.0.0.1", e.addr, assets.IPXEEFI, time.Hour, 0, stopFirst, &wg)
			waitFor(t, "the first transfer to start", func() bool { b, _, _ := first.state(); return b > 0 })
			second := startSlowClient(t, "127.0.0.1", e.addr, c.name, 0, 500*time.Millisecond, stop, &wg)
			waitFor(t, "the second request to be held back", func() bool {
				return value(t, e.m.TFTPRejected.WithLabelValues("busy")) >= 1
			})
			waitFor(t, "the second client to retransmit its RRQ", func() bool { _, _, n := second.state(); return n >= 2 })
			if b, msg, _ := second.state(); b != 0 || msg != "" {
				t.Fatalf("held-back client got %d blocks, error %q; want silence", b, msg)
			}
			close(stopFirst)
			waitFor(t, "the retransmitted RRQ to be served to the end", func() bool {
				return value(t, e.m.TFTPTransfers.WithLabelValues(c.label, "completed")) == 1
			})
			if _, msg, n := second.state(); msg != "" {
				t.Fatalf("second client: error %q after %d RRQs", msg, n)
			}
		})
	}
}

// TestGeneratedMadeOnlyWhenAdmitted: a burst of requests for one
// generated name from one address, none acknowledged. Making GRUB's file
// records the boot and may consume a reinstall flag, so it must happen
// only for a request that is then served: requests queued before the
// socket filter closed reach the transfer socket over the per-client limit
// and are refused there, and used to have their file made first.
func TestGeneratedMadeOnlyWhenAdmitted(t *testing.T) {
	var made atomic.Int32
	e := startServerWith(t, Config{LoopWindow: -1, Generate: Generator{Prefix: "grub/node/", Make: func(string, netip.Addr) ([]byte, bool) {
		made.Add(1)
		return bytes.Repeat([]byte("x"), 5000), true
	}}})
	ua, err := net.ResolveUDPAddr("udp4", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteTo(rq(opRRQ, "grub/node/52:54:00:12:34:56", "octet"), ua); err != nil {
			t.Fatal(err)
		}
	}
	started := func() int { return int(value(t, e.m.TFTPTransfers.WithLabelValues("grub/node/", "started"))) }
	waitFor(t, "the per-client limit to be reached", func() bool { return started() == DefaultPerClientLimit })
	refused := func() int {
		return int(value(t, e.m.TFTPRejected.WithLabelValues("client_limit")))
	}
	waitFor(t, "all 20 requests to be answered or held", func() bool { return started()+refused() >= 20 })
	t.Logf("%d transfers started, %d requests refused or held back (%d refused at the transfer socket)",
		started(), refused(), strings.Count(e.logText(), "too many transfers under way"))
	if int(made.Load()) != started() {
		t.Fatalf("the file was made %d times for %d transfers started", made.Load(), started())
	}
}

// TestPerClientLimit: one address holds at most DefaultPerClientLimit transfers;
// its next requests go unanswered (client_limit), another address is served
// meanwhile, and the held-back client is served once one of its own
// transfers has ended.
func TestPerClientLimit(t *testing.T) {
	e := startServerWith(t, Config{LoopWindow: -1})
	stop, stopHeld := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	var held []*slowClient
	for i := 0; i < DefaultPerClientLimit; i++ {
		c := startSlowClient(t, "127.0.0.2", e.addr, assets.IPXEEFI, time.Hour, 0, stopHeld, &wg)
		waitFor(t, "a slow transfer to start", func() bool { b, _, _ := c.state(); return b > 0 })
		held = append(held, c)
	}
	extra := startSlowClient(t, "127.0.0.2", e.addr, assets.UndionlyKPXE, 0, 500*time.Millisecond, stop, &wg)
	waitFor(t, "the extra request to be held back", func() bool {
		return value(t, e.m.TFTPRejected.WithLabelValues("client_limit")) >= 1
	})
	got, _, err := pinGet(e.addr, assets.SNPOnlyEFI, 1468, true)
	if err != nil || sum(got) != sum(e.want(t, assets.SNPOnlyEFI)) {
		t.Fatalf("another address while 127.0.0.2 is at its limit: %v", err)
	}
	if b, msg, _ := extra.state(); b != 0 || msg != "" {
		t.Fatalf("client over its limit got %d blocks, error %q; want silence", b, msg)
	}
	if !strings.Contains(e.logText(), `msg="TFTP request held back, not answered (the client will ask again)" component=tftp client=127.0.0.2:`) {
		t.Errorf("no log line for the held-back request:\n%s", e.logText())
	}
	close(stopHeld)
	waitFor(t, "the held-back client to be served", func() bool {
		return value(t, e.m.TFTPTransfers.WithLabelValues(assets.UndionlyKPXE, "completed")) == 1
	})
	if _, msg, n := extra.state(); msg != "" {
		t.Fatalf("extra client: error %q after %d RRQs", msg, n)
	}
}

// TestTransferDeadline: a client that ACKs slowly enough to hold a slot
// for ever is cut off at the deadline with an ERROR saying so.
func TestTransferDeadline(t *testing.T) {
	e := startServerWith(t, Config{LoopWindow: -1, TransferDeadline: 300 * time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	c := startSlowClient(t, "127.0.0.1", e.addr, assets.UndionlyKPXE, 100*time.Millisecond, 0, stop, &wg)
	waitFor(t, "the server to end the slow transfer", func() bool { _, msg, _ := c.state(); return msg != "" })
	blocks, msg, _ := c.state()
	if !strings.Contains(msg, "deadline") || !strings.Contains(msg, "300ms") {
		t.Fatalf("ERROR %q after %d blocks, want the deadline named", msg, blocks)
	}
	waitFor(t, "the refusal to be counted", func() bool {
		return value(t, e.m.TFTPRejected.WithLabelValues("deadline")) == 1 &&
			value(t, e.m.TFTPTransfers.WithLabelValues(assets.UndionlyKPXE, "failed")) == 1
	})
	t.Logf("cut off after %d blocks", blocks)
}

func TestTransferDeadlineDefault(t *testing.T) {
	// Debian's ipxe.efi, the biggest file served.
	if d := transferDeadline(850528); d < 80*time.Second || d > 90*time.Second {
		t.Fatalf("deadline for ipxe.efi = %v, want 30 s + 52 s", d)
	}
	// Each transfer's deadline is its own file's: a slow client holds a
	// slot 34 s on undionly.kpxe, not the minutes the biggest file (the
	// Secure Boot chain's grubx64.efi, 3.8 MB: 4.4 min) needs.
	e := startServer(t, -1)
	for _, name := range []string{assets.UndionlyKPXE, assets.IPXEEFI, assets.ScriptBoot} {
		size := len(e.want(t, name))
		if got, want := e.srv.deadlineFor(file{name: name, size: size}, size), transferDeadline(size); got != want {
			t.Errorf("deadline for %s (%d bytes) = %v, want %v", name, size, got, want)
		}
	}
	if d := e.srv.deadlineFor(file{name: "grubx64.efi"}, 3_900_000); d < 4*time.Minute {
		t.Errorf("deadline for a 3.9 MB file = %v: too short for 16 KiB/s", d)
	}
	if d := e.srv.deadlineFor(file{name: assets.UndionlyKPXE}, 70_000); d > 40*time.Second {
		t.Errorf("deadline for a 70 KB file = %v", d)
	}
}

// TestModeAnyCase: RFC 1350 modes are case-insensitive; the socket filter
// passes "OCTET" and "NetAscii" for a known name to pin/tftp.
func TestModeAnyCase(t *testing.T) {
	e := startServer(t, -1)
	for _, mode := range []string{"OCTET", "Octet", "NetAscii"} {
		r, c, tid := rawConversation(t, e.addr, rq(opRRQ, assets.ScriptBoot, mode))
		if binary.BigEndian.Uint16(r) != opDATA {
			t.Fatalf("mode %q: reply %q, want DATA", mode, r)
		}
		c.WriteTo(errorPacket(ErrNotDefined, "enough"), tid)
	}
}

// vmHWM returns the process's peak resident set size line.
func vmHWM(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	return "unknown"
}

// TestFloodFromOneHostDoesNotStarveAnother is issue 12's acceptance test:
// 600 slow-ACK transfers (a block ACKed every 0.8 s) asked from 127.0.0.2
// while 127.0.0.1 downloads ipxe.efi. The download must be intact; the
// flood must get at most DefaultPerClientLimit transfers, the rest refused and
// counted. The time the download took and the peak memory are logged, not
// asserted.
func TestFloodFromOneHostDoesNotStarveAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("600 sockets")
	}
	const flood = 600
	e := startServer(t, -1)
	hwmBefore := vmHWM(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopAll()
	// Bounded: 600 requests, each client stops at the end of the test
	// (and waitFor bounds every wait below). They go out in bursts of 50,
	// each burst seen by the server before the next: a single burst of
	// 600 can overflow a socket's receive queue on a loaded machine, and a
	// request the kernel dropped is never counted.
	clients := make([]*slowClient, flood)
	seen := func() int {
		return int(value(t, e.m.TFTPRejected.WithLabelValues("client_limit")) + value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "started")))
	}
	for i := range clients {
		clients[i] = startSlowClient(t, "127.0.0.2", e.addr, assets.IPXEEFI, 800*time.Millisecond, 0, stop, &wg)
		if (i+1)%50 == 0 {
			waitFor(t, fmt.Sprintf("the server to see the first %d flood requests", i+1), func() bool { return seen() >= i+1 })
		}
	}

	start := time.Now()
	got, size, err := pinGet(e.addr, assets.IPXEEFI, 1468, true)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("download from 127.0.0.1 during the flood: %v", err)
	}
	want := e.want(t, assets.IPXEEFI)
	if sum(got) != sum(want) || size != int64(len(want)) {
		t.Fatalf("download during the flood: %d bytes sha256 %s (tsize %d), want %d bytes %s", len(got), sum(got), size, len(want), sum(want))
	}

	var admitted, refusedWithError, silent int
	for _, c := range clients {
		b, msg, _ := c.state()
		switch {
		case b > 0:
			admitted++
		case msg != "":
			refusedWithError++
		default:
			silent++
		}
	}
	limited := value(t, e.m.TFTPRejected.WithLabelValues("client_limit"))
	// Transfers of ipxe.efi started: the flood's and the one download.
	started := int(value(t, e.m.TFTPTransfers.WithLabelValues(assets.IPXEEFI, "started"))) - 1
	t.Logf("ipxe.efi (%d bytes) from 127.0.0.1 during the flood: %v, sha256 ok", len(got), took.Round(time.Millisecond))
	t.Logf("flood of %d from 127.0.0.2: %d transfers admitted, %d held back silently, %d refused with an ERROR (queued before the filter closed); client_limit=%v",
		flood, admitted, silent, refusedWithError, limited)
	t.Logf("VmHWM before the flood %s, after %s", hwmBefore, vmHWM(t))
	if started < 1 || started > DefaultPerClientLimit || admitted > started {
		t.Fatalf("flood host got %d transfers (%d seen by its clients), want 1..%d", started, admitted, DefaultPerClientLimit)
	}
	if int(limited) != flood-started {
		t.Fatalf("client_limit = %v (silent %d + error %d); want %d refusals", limited, silent, refusedWithError, flood-started)
	}
	for _, c := range clients {
		if _, msg, _ := c.state(); msg != "" && !strings.Contains(msg, "client_limit") {
			t.Fatalf("flood client got ERROR %q", msg)
		}
	}
	stopAll()
}

// TestShutdownEndsSlowTransfers: once Serve's context ends, a transfer
// under way gets ShutdownTimeout, then an ERROR at its client's next ACK,
// and Serve returns; it used to wait for the transfer's own deadline
// (minutes for a slow client), past what systemd or compose wait before
// SIGKILL.
func TestShutdownEndsSlowTransfers(t *testing.T) {
	e := startServerWith(t, Config{LoopWindow: -1, ShutdownTimeout: 300 * time.Millisecond, TransferDeadline: time.Hour})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	slow := startSlowClient(t, "127.0.0.1", e.addr, assets.IPXEEFI, 200*time.Millisecond, 0, stop, &wg)
	waitFor(t, "the slow transfer to start", func() bool { b, _, _ := slow.state(); return b > 0 })
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(60 * time.Second): // the transfer alone would take ~20 min, its deadline an hour
		t.Fatal("Serve still waiting for a slow transfer 60 s after its context ended, with a 300 ms ShutdownTimeout")
	}
	waitFor(t, "the slow client to be told", func() bool { _, msg, _ := slow.state(); return msg != "" })
	if b, msg, _ := slow.state(); !strings.Contains(msg, "shutting down") {
		t.Fatalf("slow client after %d blocks: error %q, want one saying the server is shutting down", b, msg)
	}
}
