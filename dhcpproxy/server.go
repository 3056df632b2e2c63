package dhcpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/metrics"
)

// Config configures a Server.
type Config struct {
	// Interface to serve (PXE_DHCP_INTERFACE); "" = the interface holding
	// the IPv4 default route.
	Interface string
	// ServerIP is next-server and option 54; nil = the interface's first
	// IPv4 address. TFTP must be reachable there.
	ServerIP net.IP
	// BaseURL of the HTTP API (PXE_BASE_URL), without trailing slash:
	// iPXE gets BaseURL+"/chain", UEFI HTTP Boot BaseURL+"/ipxe/"+EFIBinary.
	BaseURL string
	// EFIBinary for UEFI x86/x64: assets.IPXEEFI (default) or
	// assets.SNPOnlyEFI.
	EFIBinary string
	// ARM64Binary for UEFI arm64; "" = arm64 clients are ignored (logged
	// and counted as arm64_missing).
	ARM64Binary string
	// UEFILoader is PXE_UEFI_LOADER: LoaderIPXE ("" too) or LoaderShim.
	UEFILoader string
	// ShimX64 and ShimAA64 are the signed shims' TFTP names, "" when not
	// found (those machines then get iPXE).
	ShimX64, ShimAA64 string
	// LoaderFor, when set, is a node's own loader (its profile's
	// "loader"), "" for UEFILoader. It is called on the receive path for
	// UEFI firmware packets only and must return promptly.
	LoaderFor func(net.HardwareAddr) string
	// KnownMAC, when set (PXE_DHCP_ONLY_KNOWN), limits answers to the
	// machines it accepts. It is called concurrently, off the receive
	// path, and only for packets we would otherwise answer. It must
	// return promptly (a client stops listening after a few seconds):
	// Serve waits for lookups in flight before it returns.
	KnownMAC func(net.HardwareAddr) (bool, error)
	// Port and BootServerPort: 0 = 67 and 4011.
	Port, BootServerPort int
	Metrics              *metrics.Metrics // nil = a private registry
	Logger               *slog.Logger     // nil = slog.Default()
}

// maxLookups bounds the KnownMAC lookups in flight. Past it, packets are
// dropped (reason busy) rather than queued: a PXE client retries in about
// four seconds, while a queue would answer clients after they stopped
// listening.
const maxLookups = 256

// Server is a ProxyDHCP server on one interface.
type Server struct {
	cfg      Config
	policy   Policy
	ifname   string
	log      *slog.Logger
	m        *metrics.Metrics
	dhcp     *net.UDPConn // port 67
	bootSrv  *net.UDPConn // port 4011
	lookups  chan struct{}
	inflight sync.WaitGroup
}

// New validates cfg and binds UDP 67 and 4011 on the interface. A port in
// use or a missing privilege is an error here, not in Serve.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, lookups: make(chan struct{}, maxLookups)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.m == nil {
		s.m = metrics.New("")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("PXE_BASE_URL=%q is not an absolute http:// or https:// URL; iPXE and UEFI HTTP Boot clients need it", cfg.BaseURL)
	}
	efi := cfg.EFIBinary
	if efi == "" {
		efi = assets.IPXEEFI
	}
	if efi != assets.IPXEEFI && efi != assets.SNPOnlyEFI {
		return nil, fmt.Errorf("PXE_EFI_BINARY=%q: want %s or %s", cfg.EFIBinary, assets.IPXEEFI, assets.SNPOnlyEFI)
	}
	if len(cfg.ARM64Binary) > maxFileField || strings.ContainsRune(cfg.ARM64Binary, 0) {
		return nil, fmt.Errorf("arm64 binary name %q does not fit the BOOTP file field (127 bytes)", cfg.ARM64Binary)
	}
	s.ifname = cfg.Interface
	if s.ifname == "" {
		if s.ifname, err = defaultRouteInterface(routeTable); err != nil {
			return nil, err
		}
	}
	ip := cfg.ServerIP.To4()
	if cfg.ServerIP != nil && ip == nil {
		return nil, fmt.Errorf("ProxyDHCP server IP %v is not IPv4", cfg.ServerIP)
	}
	if ip == nil {
		if ip, err = InterfaceIPv4(s.ifname); err != nil {
			return nil, err
		}
	}
	switch cfg.UEFILoader {
	case "", LoaderIPXE, LoaderShim:
	default:
		return nil, fmt.Errorf("UEFI loader %q: want %s or %s", cfg.UEFILoader, LoaderIPXE, LoaderShim)
	}
	s.policy = Policy{ServerIP: ip, BaseURL: strings.TrimRight(cfg.BaseURL, "/"), EFIBinary: efi, ARM64Binary: cfg.ARM64Binary,
		UEFILoader: cfg.UEFILoader, ShimX64: cfg.ShimX64, ShimAA64: cfg.ShimAA64, LoaderFor: cfg.LoaderFor}

	port, bport := cfg.Port, cfg.BootServerPort
	if port == 0 {
		port = 67
	}
	if bport == 0 {
		bport = 4011
	}
	ctx := context.Background()
	if s.dhcp, err = listenUDP(ctx, s.ifname, port); err != nil {
		return nil, err
	}
	if s.bootSrv, err = listenUDP(ctx, s.ifname, bport); err != nil {
		s.dhcp.Close()
		return nil, err
	}
	// Seed every series a dashboard queries, so a rate() shows 0, not
	// "no data", before the first PXE client.
	for _, r := range Reasons {
		s.m.DHCPIgnored.WithLabelValues(string(r))
	}
	for _, ty := range PacketTypes {
		s.m.DHCPPackets.WithLabelValues(ty)
	}
	for _, a := range ArchLabels {
		s.m.DHCPOffers.WithLabelValues(a, StageFirmware)
		s.m.DHCPOffers.WithLabelValues(a, StageIPXE)
	}
	return s, nil
}

// Addr is the port-67 socket's address; BootServerAddr the port-4011 one.
func (s *Server) Addr() net.Addr           { return s.dhcp.LocalAddr() }
func (s *Server) BootServerAddr() net.Addr { return s.bootSrv.LocalAddr() }

// ServerIP is the address put in siaddr and option 54.
func (s *Server) ServerIP() net.IP { return s.policy.ServerIP }

// Interface is the interface served.
func (s *Server) Interface() string { return s.ifname }

// Serve answers until ctx ends, then closes both sockets, waits for every
// goroutine it started and returns nil. A read error other than the close
// is returned.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("ProxyDHCP serving", "interface", s.ifname, "server_ip", s.policy.ServerIP.String(),
		"dhcp", s.dhcp.LocalAddr().String(), "boot_server", s.bootSrv.LocalAddr().String(),
		"only_known", s.cfg.KnownMAC != nil)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, l := range []struct {
		c *net.UDPConn
		p Port
	}{{s.dhcp, PortDHCP}, {s.bootSrv, PortBootServer}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.readLoop(l.c, l.p); err != nil {
				errs <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	s.dhcp.Close()
	s.bootSrv.Close()
	wg.Wait()
	s.inflight.Wait()
	return err
}

func (s *Server) readLoop(c *net.UDPConn, port Port) error {
	// One buffer larger than maxPacket, so an oversized datagram shows
	// up as oversized instead of silently truncated.
	buf := make([]byte, 4096)
	for {
		n, src, err := c.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("reading DHCP port %d: %w", port, err)
		}
		start := time.Now()
		r := Process(buf[:n], Inbound{Port: port, Src: src}, s.policy)
		s.m.DHCPPackets.WithLabelValues(r.Type).Inc()
		if r.Reason != Answer {
			s.ignored(r, src, port)
			continue
		}
		if s.cfg.KnownMAC == nil {
			s.send(c, r, start)
			continue
		}
		select {
		case s.lookups <- struct{}{}:
		default:
			r.Reason = ReasonBusy
			s.ignored(r, src, port)
			continue
		}
		s.inflight.Add(1)
		go func() {
			defer func() { <-s.lookups; s.inflight.Done() }()
			known, err := s.cfg.KnownMAC(r.MAC)
			switch {
			case err != nil:
				r.Reason = ReasonLookupFailed
				s.log.Warn("ProxyDHCP: known-MAC lookup failed, not answering", "mac", r.MAC.String(), "err", err)
			case !known:
				r.Reason = ReasonUnknownMAC
			}
			if r.Reason != Answer {
				s.ignored(r, src, port)
				return
			}
			s.send(c, r, start)
		}()
	}
}

func (s *Server) ignored(r Result, src *net.UDPAddr, port Port) {
	s.m.DHCPIgnored.WithLabelValues(string(r.Reason)).Inc()
	switch r.Reason {
	case ReasonNoARM64:
		// Actionable, so above debug: the machine will not boot
		// until someone supplies an arm64 iPXE.
		s.log.Info("ProxyDHCP: arm64 UEFI client ignored, no arm64 iPXE binary configured (set PXE_IPXE_ARM64_EFI)",
			"mac", r.MAC.String(), "port", int(port))
		return
	case ReasonIA32:
		s.log.Info("ProxyDHCP: 32-bit UEFI client ignored: every loader served is x86_64, which it cannot run (switch its firmware to legacy BIOS boot, or serve it from another PXE server)",
			"mac", r.MAC.String(), "port", int(port))
		return
	}
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []any{"reason", string(r.Reason), "type", r.Type, "src", src.String(), "port", int(port)}
	if r.MAC != nil {
		attrs = append([]any{"mac", r.MAC.String()}, attrs...)
	}
	s.log.Debug("ProxyDHCP ignored packet", attrs...)
}

func (s *Server) send(c *net.UDPConn, r Result, start time.Time) {
	_, err := c.WriteToUDP(r.Reply, r.Dest)
	if errors.Is(err, net.ErrClosed) {
		return // shutting down: a lookup outlived the socket
	}
	if err != nil {
		s.m.DHCPSendErrors.Inc()
		s.log.Warn("ProxyDHCP reply not sent", "mac", r.MAC.String(), "dest", r.Dest.String(), "err", err)
		return
	}
	s.m.DHCPReplyDuration.Observe(time.Since(start).Seconds())
	s.m.DHCPOffers.WithLabelValues(r.Boot.ArchLabel, r.Boot.Stage).Inc()
	s.log.Debug("ProxyDHCP answered", "mac", r.MAC.String(), "type", r.Type, "arch", r.Boot.ArchLabel,
		"stage", r.Boot.Stage, "loader", r.Boot.Loader, "file", r.Boot.File, "dest", r.Dest.String())
}
