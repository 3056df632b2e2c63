package dhcpproxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/metrics"
)

const (
	routerIP = "203.0.113.1"
	proxyIP  = "203.0.113.2"
	clientIP = "203.0.113.50" // nmap needs a source address; our client sends from 0.0.0.0-equivalent ciaddr anyway
)

// proxyLAN is a LAN with a plain dnsmasq as the router, our proxy, and a
// client namespace.
type proxyLAN struct {
	*testLAN
	client string
	m      *metrics.Metrics
	srv    *Server
}

func startProxyLAN(t *testing.T, cfg Config) *proxyLAN {
	requireRoot(t, map[string]string{"dnsmasq": "dnsmasq", "ip": "iproute2", "nmap": "nmap"})
	l := &proxyLAN{testLAN: newTestLAN(t, "i")}
	router := l.host("router", routerIP+"/24")
	proxy := l.host("proxy", proxyIP+"/24")
	l.client = l.host("client", clientIP+"/24")

	var routerLog lockedBuffer
	l.start(router, &routerLog, "dnsmasq", "--no-daemon", "--no-ping", "--conf-file=/dev/null", "--port=0",
		"--interface=eth0", "--bind-interfaces", "--dhcp-range=203.0.113.100,203.0.113.200,1m",
		"--dhcp-leasefile=/dev/null", "--pid-file=", "--log-dhcp")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router dnsmasq log:\n%s", routerLog.String())
		}
	})

	l.m = metrics.New("test")
	cfg.Interface, cfg.Metrics = "eth0", l.m
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://" + proxyIP + ":8000"
	}
	var err error
	inNetns(t, proxy, func() { l.srv, err = New(cfg) })
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if !l.srv.ServerIP().Equal(net.ParseIP(proxyIP)) {
		t.Fatalf("ServerIP = %v, want the interface's address %s", l.srv.ServerIP(), proxyIP)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
	return l
}

// clientConn is a client socket on the client host's eth0, port 68 (or
// 4011), able to send and receive broadcasts.
func (l *proxyLAN) clientConn(t *testing.T, port int) *net.UDPConn {
	var c *net.UDPConn
	var err error
	inNetns(t, l.client, func() { c, err = listenUDP(context.Background(), "eth0", port) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type reply struct {
	from *net.UDPAddr
	pkt  *dhcpv4.DHCPv4
}

// exchange sends req to dst and collects replies with req's xid until
// done(replies) says enough or the bound runs out: at most 4 attempts of
// 2 seconds each (a DHCP client retries too; the first attempt may race
// dnsmasq's start-up).
func exchange(t *testing.T, c *net.UDPConn, req *dhcpv4.DHCPv4, dst *net.UDPAddr, done func([]reply) bool) []reply {
	t.Helper()
	var got []reply
	buf := make([]byte, 2048)
	for attempt := 0; attempt < 4 && !done(got); attempt++ {
		if _, err := c.WriteToUDP(req.ToBytes(), dst); err != nil {
			t.Fatalf("send: %v", err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for !done(got) {
			_ = c.SetReadDeadline(deadline)
			n, from, err := c.ReadFromUDP(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			p, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || p.OpCode != dhcpv4.OpcodeBootReply || p.TransactionID != req.TransactionID {
				continue
			}
			dup := false
			for _, r := range got {
				if r.from.IP.Equal(from.IP) {
					dup = true
				}
			}
			if !dup {
				got = append(got, reply{from, p})
			}
		}
	}
	return got
}

func from(rs []reply, ip string) *dhcpv4.DHCPv4 {
	for _, r := range rs {
		if r.from.IP.Equal(net.ParseIP(ip)) {
			return r.pkt
		}
	}
	return nil
}

func both(rs []reply) bool { return from(rs, routerIP) != nil && from(rs, proxyIP) != nil }

// clientRequest turns a fixture into a fresh request from mac with xid,
// broadcast flag set so dnsmasq broadcasts its offer to our address-less
// (in DHCP terms) client.
func clientRequest(t *testing.T, name string, mac net.HardwareAddr, xid byte) *dhcpv4.DHCPv4 {
	p := parse(t, fixture(t, name))
	p.ClientHWAddr = mac
	p.TransactionID = dhcpv4.TransactionID{0x7e, 0x57, 0x00, xid}
	p.SetBroadcast()
	p.Options.Del(dhcpv4.OptionClientIdentifier)
	return p
}

func TestIntegrationProxyBesideRouter(t *testing.T) {
	l := startProxyLAN(t, Config{})
	c := l.clientConn(t, 68)
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

	cases := []struct {
		fixture string
		mac     string
		file    string
		class   string
		opt43   bool
	}{
		{"bios-pxe-rom-discover.bin", "02:00:00:00:00:01", "undionly.kpxe", "PXEClient", true},
		{"uefi-x64-pxe-discover.bin", "02:00:00:00:00:02", "ipxe.efi", "PXEClient", false},
		{"uefi-x64-http-discover.bin", "02:00:00:00:00:03", "http://" + proxyIP + ":8000/ipxe/ipxe.efi", "HTTPClient", false},
		{"ipxe-bios-discover.bin", "02:00:00:00:00:04", "http://" + proxyIP + ":8000/chain", "PXEClient", false},
	}
	for i, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			mac, _ := net.ParseMAC(tc.mac)
			got := exchange(t, c, clientRequest(t, tc.fixture, mac, byte(i)), bcast, both)
			ro, po := from(got, routerIP), from(got, proxyIP)
			if ro == nil {
				t.Fatalf("no offer from the router dnsmasq (replies: %d)", len(got))
			}
			if po == nil {
				t.Fatal("no offer from the proxy")
			}
			if y := ro.YourIPAddr.To4(); y == nil || y[3] < 100 || y[3] > 200 {
				t.Errorf("router offered %v, want an address from its range", ro.YourIPAddr)
			}
			if !po.YourIPAddr.Equal(net.IPv4zero) {
				t.Errorf("proxy offered address %v; it must never", po.YourIPAddr)
			}
			if po.MessageType() != dhcpv4.MessageTypeOffer || po.BootFileName != tc.file ||
				!po.ServerIPAddr.Equal(net.ParseIP(proxyIP)) || !po.ServerIdentifier().Equal(net.ParseIP(proxyIP)) ||
				po.ClassIdentifier() != tc.class || !bytes.Equal(po.ClientHWAddr, mac) {
				t.Errorf("proxy offer wrong:\n%s", po.Summary())
			}
			if has := po.Options.Has(dhcpv4.OptionVendorSpecificInformation); has != tc.opt43 {
				t.Errorf("option 43 present = %v, want %v", has, tc.opt43)
			}
		})
	}

	t.Run("non-PXE client gets nothing from the proxy", func(t *testing.T) {
		before := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonNotPXE)))
		mac, _ := net.ParseMAC("02:00:00:00:00:10")
		plain := clientRequest(t, "nmap-plain-discover.bin", mac, 0x10)
		got := exchange(t, c, plain, bcast, func(rs []reply) bool { return from(rs, routerIP) != nil })
		if from(got, routerIP) == nil {
			t.Fatal("router did not answer the plain client")
		}
		if p := from(got, proxyIP); p != nil {
			t.Fatalf("proxy answered a non-PXE client:\n%s", p.Summary())
		}
		// The proxy reads one socket in order: once it has answered a
		// PXE discover sent after the plain one, any reply to the
		// plain one would have been sent already.
		pmac, _ := net.ParseMAC("02:00:00:00:00:11")
		exchange(t, c, clientRequest(t, "bios-pxe-rom-discover.bin", pmac, 0x11), bcast,
			func(rs []reply) bool { return from(rs, proxyIP) != nil })
		noQueuedReply(t, c, plain.TransactionID, "a non-PXE client")
		if after := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonNotPXE))); after < before+1 {
			t.Errorf("ignored{not_pxe} went %v -> %v, want +1 at least", before, after)
		}
	})

	t.Run("nmap broadcast-dhcp-discover sees only the router", func(t *testing.T) {
		before := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonNotPXE)))
		out := run(t, "ip", "netns", "exec", l.client, "nmap", "-e", "eth0", "--script", "broadcast-dhcp-discover",
			"--script-args", "broadcast-dhcp-discover.timeout=3")
		if !strings.Contains(out, "Server Identifier: "+routerIP) {
			t.Fatalf("nmap saw no offer from the router:\n%s", out)
		}
		if strings.Count(out, "Server Identifier: ") != 1 || !strings.Contains(out, "Response 1 of 1") {
			t.Fatalf("nmap saw the proxy answer a non-PXE discover:\n%s", out)
		}
		if after := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonNotPXE))); after < before+1 {
			t.Errorf("the proxy did not see nmap's discover: ignored{not_pxe} %v -> %v", before, after)
		}
	})

	t.Run("port 4011 boot server request", func(t *testing.T) {
		// As OVMF does: from the address the router gave, port 4011,
		// unicast to the proxy's 4011 (captured fixture).
		c4011 := l.clientConn(t, 4011)
		req := parse(t, fixture(t, "uefi-x64-pxe-request-4011.bin"))
		req.ClientIPAddr = net.ParseIP(clientIP).To4()
		req.TransactionID = dhcpv4.TransactionID{0x7e, 0x57, 0x40, 0x11}
		got := exchange(t, c4011, req, &net.UDPAddr{IP: net.ParseIP(proxyIP), Port: 4011},
			func(rs []reply) bool { return from(rs, proxyIP) != nil })
		ack := from(got, proxyIP)
		if ack == nil {
			t.Fatal("no ACK on port 4011")
		}
		if got[0].from.Port != 4011 {
			t.Errorf("ACK came from port %d, want 4011", got[0].from.Port)
		}
		if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" ||
			!ack.ServerIPAddr.Equal(net.ParseIP(proxyIP)) || !ack.ServerIdentifier().Equal(net.ParseIP(proxyIP)) ||
			ack.ClassIdentifier() != "PXEClient" || !ack.YourIPAddr.Equal(net.IPv4zero) ||
			!bytes.Equal(ack.Options.Get(dhcpv4.OptionClientMachineIdentifier), req.Options.Get(dhcpv4.OptionClientMachineIdentifier)) {
			t.Errorf("bad 4011 ACK:\n%s", ack.Summary())
		}
	})

	t.Run("bad input is dropped, counted, and blocks nobody", func(t *testing.T) {
		good := fixture(t, "bios-pxe-rom-discover.bin")
		wrongMagic := append([]byte(nil), good...)
		wrongMagic[236] = 0
		bad := map[Reason][]byte{
			ReasonTruncated: good[:120],
			ReasonOversized: append(append([]byte(nil), good...), make([]byte, 1700)...), // fragmented on the wire
			ReasonBadMagic:  wrongMagic,
			ReasonMalformed: append(append([]byte(nil), good[:240]...), 53, 1, 1, 60, 200, 'P'),
		}
		before := map[Reason]float64{}
		for r := range bad {
			before[r] = testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(r)))
		}
		// Rounds of four bad packets, each followed by a good
		// discover: the proxy reads in order, so once that discover
		// is answered, the bad packets before it have been judged
		// (and the socket never queues more than five, so the kernel
		// drops none).
		for round := 0; round < 10; round++ {
			for _, b := range bad {
				if _, err := c.WriteToUDP(b, bcast); err != nil {
					t.Fatal(err)
				}
			}
			mac := net.HardwareAddr{2, 0, 0, 0, 0x20, byte(round)}
			got := exchange(t, c, clientRequest(t, "uefi-x64-pxe-discover.bin", mac, 0x20+byte(round)), bcast,
				func(rs []reply) bool { return from(rs, proxyIP) != nil })
			if from(got, proxyIP) == nil {
				t.Fatal("after bad packets, a good client was not answered")
			}
		}
		for r := range bad {
			if d := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(r))) - before[r]; d != 10 {
				t.Errorf("ignored{%s} grew by %v, want 10", r, d)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		for _, lv := range [][2]string{{"bios", StageFirmware}, {"efi-x64", StageFirmware}, {"http-x64", StageFirmware}, {"bios", StageIPXE}} {
			if v := testutil.ToFloat64(l.m.DHCPOffers.WithLabelValues(lv[0], lv[1])); v < 1 {
				t.Errorf("offers{arch=%s,stage=%s} = %v, want >= 1", lv[0], lv[1], v)
			}
		}
		if n := testutil.CollectAndCount(l.m.DHCPReplyDuration); n != 1 {
			t.Errorf("reply duration histogram missing")
		}
		if v := testutil.ToFloat64(l.m.DHCPPackets.WithLabelValues("discover")); v < 5 {
			t.Errorf("packets{discover} = %v, want >= 5", v)
		}
	})
}

// TestIntegrationKnownMAC: with KnownMAC set, unknown machines are ignored
// and a slow lookup for one client does not delay the answer to another.
func TestIntegrationKnownMAC(t *testing.T) {
	slowMAC, _ := net.ParseMAC("02:00:00:00:00:51")
	fastMAC, _ := net.ParseMAC("02:00:00:00:00:52")
	unknownMAC, _ := net.ParseMAC("02:00:00:00:00:53")
	release := make(chan struct{})
	var once sync.Once
	l := startProxyLAN(t, Config{KnownMAC: func(mac net.HardwareAddr) (bool, error) {
		switch mac.String() {
		case slowMAC.String():
			<-release // held until the fast client has its answer
			return true, nil
		case fastMAC.String():
			return true, nil
		}
		return false, nil
	}})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	c := l.clientConn(t, 68)
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	proxyAnswered := func(rs []reply) bool { return from(rs, proxyIP) != nil }

	slow := clientRequest(t, "bios-pxe-rom-discover.bin", slowMAC, 0x51)
	if _, err := c.WriteToUDP(slow.ToBytes(), bcast); err != nil {
		t.Fatal(err)
	}
	// The slow lookup is blocked; the fast client must still be answered.
	got := exchange(t, c, clientRequest(t, "uefi-x64-pxe-discover.bin", fastMAC, 0x52), bcast, proxyAnswered)
	if from(got, proxyIP) == nil {
		t.Fatal("a blocked KnownMAC lookup for one client held up the answer to another")
	}
	once.Do(func() { close(release) })
	got = exchange(t, c, slow, bcast, proxyAnswered)
	if from(got, proxyIP) == nil {
		t.Fatal("the slow-lookup client was never answered")
	}

	before := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonUnknownMAC)))
	unknown := clientRequest(t, "bios-pxe-rom-discover.bin", unknownMAC, 0x53)
	got = exchange(t, c, unknown, bcast, func(rs []reply) bool { return from(rs, routerIP) != nil })
	if from(got, routerIP) == nil {
		t.Fatal("router did not answer")
	}
	// The lookup runs off the receive path: wait (bounded) for its
	// verdict to be counted. Once counted as unknown_mac, no reply can
	// follow; then make sure none came before either.
	for i := 0; i < 200 && testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonUnknownMAC))) < before+1; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if after := testutil.ToFloat64(l.m.DHCPIgnored.WithLabelValues(string(ReasonUnknownMAC))); after < before+1 {
		t.Fatalf("ignored{unknown_mac} %v -> %v, want +1", before, after)
	}
	if from(got, proxyIP) != nil {
		t.Fatal("proxy answered an unknown MAC")
	}
	noQueuedReply(t, c, unknown.TransactionID, "an unknown MAC")
}

// TestNewErrors: a port already in use and bad settings fail in New with
// a sentence naming the setting.
func TestNewErrors(t *testing.T) {
	l := newTestLAN(t, "e")
	ns := l.host("h", "198.51.100.2/24")
	inNetns(t, ns, func() {
		// Port 67 held by a plain socket (another DHCP server
		// bound to all interfaces): New must fail and say so.
		busy, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 67})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{Interface: "eth0", BaseURL: "http://198.51.100.2:8000"}); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("New with port 67 taken = %v, want an error saying it is in use", err)
		}
		busy.Close()
		s, err := New(Config{Interface: "eth0", BaseURL: "http://198.51.100.2:8000"})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		s.dhcp.Close()
		s.bootSrv.Close()
		for _, c := range []struct {
			cfg  Config
			want string
		}{
			{Config{Interface: "eth0", BaseURL: "ftp://x"}, "PXE_BASE_URL"},
			{Config{Interface: "eth0", BaseURL: ""}, "PXE_BASE_URL"},
			{Config{Interface: "eth0", BaseURL: "http://x", EFIBinary: "grub.efi"}, "PXE_EFI_BINARY"},
			{Config{Interface: "nosuch0", BaseURL: "http://x"}, "PXE_DHCP_INTERFACE"},
			{Config{Interface: "lo", BaseURL: "http://x", ServerIP: net.ParseIP("2001:db8::1")}, "not IPv4"},
		} {
			if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
			}
		}
		// The default interface: this namespace has no default route.
		if _, _, err := DefaultInterface(); err == nil || !strings.Contains(err.Error(), "PXE_DHCP_INTERFACE") {
			t.Errorf("DefaultInterface without a default route = %v, want an error naming PXE_DHCP_INTERFACE", err)
		}
		run(t, "ip", "-n", ns, "route", "add", "default", "via", "198.51.100.1")
		name, ip, err := DefaultInterface()
		if err != nil || name != "eth0" || !ip.Equal(net.ParseIP("198.51.100.2")) {
			t.Errorf("DefaultInterface = %s %v %v, want eth0 198.51.100.2", name, ip, err)
		}
	})
}

// noQueuedReply reads whatever is already queued on c and fails if the
// proxy answered the transaction xid: called after a later exchange proved
// the proxy has processed the earlier packet.
func noQueuedReply(t *testing.T, c *net.UDPConn, xid dhcpv4.TransactionID, who string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now())
	buf := make([]byte, 2048)
	for {
		n, src, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if p, err := dhcpv4.FromBytes(buf[:n]); err == nil && p.TransactionID == xid && src.IP.Equal(net.ParseIP(proxyIP)) {
			t.Fatalf("proxy answered %s:\n%s", who, p.Summary())
		}
	}
}
