package tftpsrv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/metrics"
)

// Transfer tuning. Firmware TFTP clients are simple and patient: they
// retransmit their ACK after a few seconds and give up after a handful of
// tries. The server resends a DATA block 1 s after it went unacknowledged
// (a LAN round trip is well under a millisecond, so a second means the
// packet was lost, not slow), at most 5 times, with no extra random
// back-off: a PXE ROM on a lossy link then gets a lost block back within
// a second, and a client that vanished mid-transfer holds its goroutine
// and socket for about 6 s.
const (
	transferTimeout = time.Second
	transferRetries = 5
)

// maxActiveTransfers caps transfers under way. pin/tftp opens a socket and
// starts a goroutine for every RRQ before asking us; a flood of RRQs from
// spoofed addresses would otherwise hold one of each for ~6 s apiece until
// the process runs out of file descriptors. At the cap the socket filter
// sends every request to the door, which drops it unanswered: the client
// retransmits its RRQ (iPXE for ~16 s, EDK2 for ~24 s) and is served when
// a slot frees; an ERROR would end its boot (see doc.go). 512 parallel
// boots is far beyond what one appliance on one L2 segment sees. One host
// can hold at most DefaultPerClientLimit of them, for at most the transfer
// deadline (limits.go).
const maxActiveTransfers = 512

// refusalLogBurst is how many refusals a second are logged one by one;
// beyond it they are only counted, and the next line says how many were
// left out. A scan or a flood then costs a few log lines a second.
const refusalLogBurst = 20

// Config configures a Server.
type Config struct {
	// Addr is the UDP address for requests: ":69" in production, usually
	// "127.0.0.1:0" in tests. Empty means ":69". The server speaks IPv4
	// (PXE's TFTP is IPv4) unless Addr's host is an IPv6 literal.
	Addr string
	// Binaries are the iPXE builds found at start-up. Only the names found
	// are served; the others answer "file not found".
	Binaries *assets.Binaries
	// BaseURL is PXE_BASE_URL, rendered into boot.ipxe and autoexec.ipxe.
	BaseURL string
	// LoopWindow is PXE_TFTP_LOOP_WINDOW; 0 means DefaultLoopWindow, and
	// a negative window turns the loop breaker off. It must be off when
	// ProxyDHCP runs: iPXE then gets its script by DHCP and never asks TFTP
	// again, so a remembered client would be handed the script the next
	// time its firmware asks for a binary (measured with OVMF: "NBP
	// filesize is 389 Bytes", then the load fails).
	LoopWindow time.Duration
	// PerClientLimit caps the transfers under way for one client IP; 0
	// means DefaultPerClientLimit. Tests that play many machines from
	// 127.0.0.1 raise it.
	PerClientLimit int
	// TransferDeadline bounds a whole transfer; 0 means a deadline sized
	// from each transfer's own file (transferDeadline). Tests shorten it.
	TransferDeadline time.Duration
	// ShutdownTimeout is how long Serve, once its context ends, lets the
	// transfers under way run before it ends them with an ERROR (at their
	// client's next ACK); 0 means until each one's TransferDeadline.
	// PXE_SHUTDOWN_TIMEOUT: without it, one slow client held a stopping
	// appliance for minutes, past what systemd or compose wait before
	// SIGKILL.
	ShutdownTimeout time.Duration
	// Files are extra files served by exact name, which may include
	// folders (see files.go): grub.cfg.
	Files map[string][]byte
	// LazyFiles are extra files read on first use (the Secure Boot chain,
	// assets.Binary.Bytes); a load error answers the transfer with an
	// error and is logged.
	LazyFiles map[string]LazyFile
	// Generate answers every name under one folder from code, per
	// request (GRUB's per-machine script, see files.go); zero: none.
	Generate Generator
	// Metrics receives the TFTP counters; nil means a private registry.
	Metrics *metrics.Metrics
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// file is one name the server answers, read into memory at New.
type file struct {
	name   string
	data   []byte
	load   func() ([]byte, error) // a file read on first use; data is nil
	stream io.Reader              // a generated file sent as it comes (Generator.Stream); size is its length
	size   int
	binary bool // an iPXE binary: subject to the loop breaker
}

// contents is what a transfer of f sends.
func (f file) contents() ([]byte, error) {
	if f.load != nil {
		return f.load()
	}
	return f.data, nil
}

// Server is a read-only TFTP server over the appliance's in-memory files.
type Server struct {
	log     *slog.Logger
	m       *metrics.Metrics
	files   map[string]file
	script  []byte // boot.ipxe, sent in place of a binary by the loop breaker
	loop    *LoopBreaker
	gen     Generator
	door    *net.UDPConn // refusals: WRQ, bad names, garbage
	pinConn *net.UDPConn // requests for known names, served by pin/tftp
	pin     *tftp.Server

	deadline time.Duration // for a whole transfer; 0: sized from its file
	grace    time.Duration // Config.ShutdownTimeout
	cut      chan struct{} // closed when the transfers under way must end
	ipv4     bool          // the request port is IPv4: the filter can hold clients back

	// Admission (limits.go): transfers under way, per client, and the
	// socket filter's current gate. filterNames is what the filter matches.
	gateMu      sync.Mutex
	maxActive   int
	perLimit    int
	total       int
	perClient   map[netip.Addr]int
	gate        gate
	filterNames []string

	serving   atomic.Bool
	closeOnce sync.Once

	// Refusal log limiter, used by the door goroutine only.
	logSecond  time.Time
	logged     int
	suppressed int
}

// New renders the scripts, binds the request port and returns a Server
// ready to Serve. A port already in use is an error here, not in Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Binaries == nil {
		return nil, errors.New("tftpsrv: no iPXE binaries given (Config.Binaries is nil)")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tftpsrv: PXE_BASE_URL %q is not an http(s) URL with a host; boot.ipxe needs it to reach the appliance", cfg.BaseURL)
	}
	if strings.ContainsAny(cfg.BaseURL, " \t\r\n") {
		return nil, fmt.Errorf("tftpsrv: PXE_BASE_URL %q contains white space, which would break the iPXE script", cfg.BaseURL)
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	s := &Server{
		log:       cfg.Logger,
		m:         cfg.Metrics,
		files:     map[string]file{},
		maxActive: maxActiveTransfers,
		perClient: map[netip.Addr]int{},
	}
	if cfg.LoopWindow >= 0 {
		s.loop = NewLoopBreaker(cfg.LoopWindow, 0)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "tftp")
	if s.m == nil {
		s.m = metrics.New("")
	}
	for _, name := range assets.BinaryNames {
		if b, ok := cfg.Binaries.Get(name); ok {
			s.files[name] = file{name: name, data: b.Data, size: len(b.Data), binary: true}
		}
	}
	for _, name := range []string{assets.ScriptBoot, assets.ScriptAutoexec} {
		data, err := assets.Script(name, struct{ BaseURL string }{base})
		if err != nil {
			return nil, fmt.Errorf("tftpsrv: rendering %s: %w", name, err)
		}
		s.files[name] = file{name: name, data: data, size: len(data)}
	}
	s.script = s.files[assets.ScriptBoot].data
	if err := s.addFiles(cfg.Files); err != nil {
		return nil, err
	}
	if err := s.addLazyFiles(cfg.LazyFiles); err != nil {
		return nil, err
	}
	if err := s.setGenerator(cfg.Generate); err != nil {
		return nil, err
	}
	s.perLimit = cfg.PerClientLimit
	if s.perLimit <= 0 {
		s.perLimit = DefaultPerClientLimit
	}
	s.deadline = max(cfg.TransferDeadline, 0) // 0: each file's own (deadlineFor)
	s.grace, s.cut = cfg.ShutdownTimeout, make(chan struct{})

	addr := cfg.Addr
	if addr == "" {
		addr = ":69"
	}
	network := "udp4"
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
			network = "udp6"
		}
	}
	s.ipv4 = network == "udp4"
	s.filterNames = s.socketNames()
	s.door, s.pinConn, err = listenSplit(network, addr, s.filterNames)
	if err != nil {
		return nil, fmt.Errorf("tftpsrv: listening on %s (PXE_TFTP_ADDR): %w", addr, err)
	}

	s.pin = tftp.NewServer(s.handleRead, nil)
	s.pin.SetTimeout(transferTimeout)
	s.pin.SetRetries(transferRetries)
	s.pin.SetBackoff(func(int) time.Duration { return 0 })

	for _, f := range s.files {
		for _, r := range []string{"started", "completed", "failed"} {
			s.m.TFTPTransfers.WithLabelValues(f.name, r)
		}
	}
	for _, r := range []string{"write", "not_found", "bad_path", "too_long", "malformed", "busy", "client_limit", "deadline"} {
		s.m.TFTPRejected.WithLabelValues(r)
	}
	return s, nil
}

// names lists the served names in a stable order.
func (s *Server) names() []string {
	out := make([]string, 0, len(s.files))
	for n := range s.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Addr returns the address requests are received on.
func (s *Server) Addr() net.Addr { return s.door.LocalAddr() }

// Serve answers requests until ctx ends, then stops taking requests, lets
// the transfers under way finish or time out, releases the sockets and
// returns nil. It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("tftpsrv: Serve called twice")
	}
	window := "off"
	if s.loop != nil {
		window = s.loop.Window().String()
	}
	s.gateMu.Lock()
	maxActive := s.maxActive
	s.gateMu.Unlock()
	s.log.Info("TFTP server listening", "addr", s.Addr().String(), "files", s.names(), "loop_window", window,
		"max_transfers", maxActive, "per_client", s.perLimit, "transfer_deadline", s.deadlineText())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.pin.Serve(s.pinConn); err != nil {
			s.log.Error("TFTP transfer loop stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		s.serveDoor()
	}()
	<-ctx.Done()
	s.door.Close()
	if s.grace > 0 {
		t := time.AfterFunc(s.grace, func() { close(s.cut) })
		defer t.Stop()
	}
	// Shutdown closes pinConn and waits for the transfers under way.
	s.pin.Shutdown()
	// But when it runs before pin/tftp's Serve has stored the socket, it
	// closes nothing, and that Serve then reads for ever (seen in CI:
	// TestServeStopsRightAfterStart). Closing the socket here ends the
	// read either way.
	s.pinConn.Close()
	wg.Wait()
	s.Close()
	s.log.Info("TFTP server stopped")
	return nil
}

// Close releases the sockets of a Server that is not serving (or has
// served). It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.door.Close()
		s.pinConn.Close()
	})
	return nil
}

// handleRead is pin/tftp's read handler. The socket filter only lets RRQs
// for known names through, so the lookup fails only if the filter and this
// table disagree. Metrics labels are always a served name (a key of
// s.files, fixed at New): nothing a client sends becomes a label.
func (s *Server) handleRead(filename string, rf io.ReaderFrom) error {
	start := time.Now()
	var client netip.Addr
	var clientAddr string
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ra := ot.RemoteAddr()
		client, _ = netip.AddrFromSlice(ra.IP)
		client = client.Unmap()
		clientAddr = ra.String()
	}
	notFound := func() error {
		s.m.TFTPRejected.WithLabelValues("not_found").Inc()
		s.log.Warn("TFTP request for an unknown name reached the transfer socket", "client", clientAddr, "file", filename)
		return fmt.Errorf("file not found: %q", filename)
	}
	name, rerr := s.clean(filename)
	_, known := s.files[name]
	if _, gen := s.generated(name); rerr != nil || !known && !gen {
		return notFound()
	}
	// The socket filter holds requests back once a limit is reached; only
	// requests already queued when it closed get here over a limit.
	if reason := s.admit(client); reason != "" {
		s.m.TFTPRejected.WithLabelValues(reason).Inc()
		s.log.Warn("TFTP request refused: too many transfers under way", "client", clientAddr, "file", filename, "reason", reason, "per_client", s.perLimit)
		return fmt.Errorf("server busy (%s): try again", reason)
	}
	defer s.release(client)
	// Only now, with a slot taken, is a generated file made: making GRUB's
	// records the boot and may consume a reinstall flag, which a refused
	// request must not.
	f, ok := s.lookup(name, client)
	if !ok {
		return notFound()
	}
	var data []byte
	if f.stream == nil {
		var err error
		if data, err = f.contents(); err != nil {
			s.m.TFTPRejected.WithLabelValues("unreadable").Inc()
			s.log.Error("TFTP file cannot be served", "client", clientAddr, "file", filename, "err", err)
			return fmt.Errorf("cannot read %q on the appliance: see its log", filename)
		}
	}
	served := f.name
	decision := ServeBinary
	breaking := f.binary && s.loop != nil
	if breaking {
		decision = s.loop.Decide(client, f.name, start)
		if decision == ServeScript {
			data, served = s.script, assets.ScriptBoot
			s.m.TFTPLoopBreaks.Inc()
		}
	}
	s.m.TFTPTransfers.WithLabelValues(served, "started").Inc()
	var src io.Reader = bytes.NewReader(data)
	size := len(data)
	if f.stream != nil {
		src, size = f.stream, f.size
	}
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		// The deadline reader hides bytes.Reader's Seek, which pin/tftp
		// would use for tsize.
		ot.SetSize(int64(size))
	}
	n, err := rf.ReadFrom(&deadlineReader{r: src, deadline: start.Add(s.deadlineFor(f, size)), limit: s.deadlineFor(f, size), cut: s.cut})
	end := time.Now()
	dur := end.Sub(start)
	if breaking {
		s.loop.Completed(client, f.name, decision, err == nil, end)
	}
	s.m.TFTPBytes.WithLabelValues(served).Add(float64(n))
	attrs := []any{"client", clientAddr, "file", filename, "served", served, "bytes", n, "duration", dur.Round(time.Microsecond).String()}
	if f.binary && decision == ServeScript {
		attrs = append(attrs, "loop_break", true)
	}
	// Log before counting: whoever watches the counters (a test, an
	// alert) then finds the log line already written.
	if err != nil {
		level, msg := slog.LevelWarn, "TFTP transfer failed"
		if n == 0 && strings.Contains(err.Error(), "sending block 0: code=") {
			// Many PXE ROMs (Intel's among them) first send an RRQ with
			// only "tsize", read the size from our OACK, answer it with
			// an ERROR and then ask again for real. Routine, not a
			// problem worth a warning; pin/tftp reports it as an ERROR
			// received while block 0 (the OACK) was outstanding.
			level, msg = slog.LevelInfo, "TFTP transfer ended by the client after option negotiation (firmware size probe)"
		}
		if errors.Is(err, errDeadline) {
			msg = "TFTP transfer ended: it ran past the transfer deadline"
			s.m.TFTPRejected.WithLabelValues("deadline").Inc()
		}
		s.log.Log(context.Background(), level, msg, append(attrs, "result", "failed", "err", err)...)
		s.m.TFTPTransfers.WithLabelValues(served, "failed").Inc()
		return err
	}
	s.log.Info("TFTP transfer", append(attrs, "result", "completed")...)
	s.m.TFTPDuration.WithLabelValues(served).Observe(dur.Seconds())
	s.m.TFTPTransfers.WithLabelValues(served, "completed").Inc()
	return nil
}
