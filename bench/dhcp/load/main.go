// Command load measures a ProxyDHCP server: it broadcasts PXE
// DHCPDISCOVERs for -n distinct MACs, keeping at most -window of them
// unanswered at a time, and counts the OFFERs that come back from -server
// (matched by transaction ID). It prints offers/s and latency percentiles
// (send to receive, in this process) as one line of key=value pairs.
//
// Bounded in count (-n) and in time (-max, and -timeout per discover).
// Run it where the server's broadcasts arrive: a namespace on the same L2
// segment, interface -interface, port 68 free (see run.sh).
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 10000, "discovers to send, one MAC each")
	window := flag.Int("window", 64, "discovers in flight at most")
	timeout := flag.Duration("timeout", time.Second, "give up on one discover after this long")
	maxDur := flag.Duration("max", 120*time.Second, "stop the whole run after this long")
	ifname := flag.String("interface", "eth0", "interface to send on")
	server := flag.String("server", "", "count only replies from this IP")
	arch := flag.Uint("arch", 0, "option 93 architecture (0 BIOS, 7 UEFI x64)")
	label := flag.String("label", "server", "name printed in the result line")
	flag.Parse()
	srv := net.ParseIP(*server)
	if srv == nil || *n <= 0 || *window <= 0 {
		fmt.Fprintln(os.Stderr, "load: -server IP, -n > 0 and -window > 0 are required")
		os.Exit(2)
	}
	conn, err := listen(*ifname)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	defer conn.Close()

	sent := make([]time.Time, *n)
	lat := make([]time.Duration, *n)
	done := make([]bool, *n)
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	start := time.Now()
	end := start.Add(*maxDur)
	next, answered, timedOut, inflight := 0, 0, 0, map[int]bool{}
	buf := make([]byte, 2048)
	for (next < *n || len(inflight) > 0) && time.Now().Before(end) {
		for next < *n && len(inflight) < *window {
			pkt := discover(next, iana.Arch(*arch))
			sent[next] = time.Now()
			if _, err := conn.WriteToUDP(pkt, dst); err != nil {
				fmt.Fprintln(os.Stderr, "load: send:", err)
				os.Exit(1)
			}
			inflight[next] = true
			next++
		}
		// Expire the oldest in-flight discovers.
		now := time.Now()
		for i := range inflight {
			if now.Sub(sent[i]) > *timeout {
				delete(inflight, i)
				timedOut++
			}
		}
		_ = conn.SetReadDeadline(now.Add(10 * time.Millisecond))
		nr, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		t := time.Now()
		if !from.IP.Equal(srv) {
			continue
		}
		p, err := dhcpv4.FromBytes(buf[:nr])
		if err != nil || p.OpCode != dhcpv4.OpcodeBootReply || p.MessageType() != dhcpv4.MessageTypeOffer {
			continue
		}
		i := int(binary.BigEndian.Uint32(p.TransactionID[:]) & 0x00ffffff)
		if i >= *n || done[i] || !p.YourIPAddr.Equal(net.IPv4zero) {
			continue
		}
		done[i] = true
		lat[i] = t.Sub(sent[i])
		answered++
		delete(inflight, i)
	}
	elapsed := time.Since(start)
	var ls []time.Duration
	for i := range lat {
		if done[i] {
			ls = append(ls, lat[i])
		}
	}
	sort.Slice(ls, func(a, b int) bool { return ls[a] < ls[b] })
	pct := func(p float64) time.Duration {
		if len(ls) == 0 {
			return 0
		}
		return ls[int(p*float64(len(ls)-1))]
	}
	fmt.Printf("server=%s sent=%d offers=%d lost=%d timed_out=%d elapsed=%.2fs offers_per_s=%.0f p50=%s p99=%s max=%s\n",
		*label, next, answered, next-answered, timedOut, elapsed.Seconds(), float64(answered)/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
}

// discover builds a BIOS/UEFI PXE DHCPDISCOVER for client i: MAC
// 02:00:00:xx:xx:xx and xid 0xb0xxxxxx carry i.
func discover(i int, arch iana.Arch) []byte {
	mac := net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
	p := &dhcpv4.DHCPv4{
		OpCode: dhcpv4.OpcodeBootRequest, HWType: iana.HWTypeEthernet,
		TransactionID: dhcpv4.TransactionID{0xb0, byte(i >> 16), byte(i >> 8), byte(i)},
		Flags:         0x8000,
		ClientIPAddr:  net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero,
		ClientHWAddr: mac,
		Options:      dhcpv4.Options{},
	}
	p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeDiscover))
	p.UpdateOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", arch)))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(arch >> 8), byte(arch)}))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}))
	guid := make([]byte, 17)
	binary.BigEndian.PutUint32(guid[13:], uint32(i))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 6, 43, 54, 60, 66, 67, 97, 128, 129, 130}))
	return p.ToBytes()
}

func listen(ifname string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			// A deep receive queue, so a burst of replies is
			// measured rather than dropped by our own socket.
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			serr = unix.BindToDevice(s, ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		return nil, fmt.Errorf("binding 0.0.0.0:68 on %s: %w", ifname, err)
	}
	return pc.(*net.UDPConn), nil
}
