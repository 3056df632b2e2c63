//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// udpPacket is one IPv4/UDP datagram from a capture.
type udpPacket struct {
	src, dst   netip.AddrPort
	payload    []byte
	frameIndex int
}

// readUDP returns the IPv4 UDP datagrams of a classic pcap file written by
// tcpdump on an Ethernet bridge. It is deliberately small: the harness
// only needs to count DHCP replies and TFTP read requests, independently
// of the appliance's own metrics, to check those metrics. Truncated or
// foreign frames are skipped; a bad file header is an error.
func readUDP(path string) ([]udpPacket, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePcapUDP(b)
}

func parsePcapUDP(b []byte) ([]udpPacket, error) {
	if len(b) < 24 {
		return nil, errors.New("pcap: shorter than its 24-byte header")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d: // µs, ns resolution
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("pcap: bad magic %#x", binary.LittleEndian.Uint32(b))
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want 1 (Ethernet)", lt)
	}
	var out []udpPacket
	off := 24
	for i := 0; off+16 <= len(b); i++ {
		incl := int(bo.Uint32(b[off+8:]))
		off += 16
		if incl < 0 || incl > len(b)-off {
			break // truncated last record (capture killed mid-write)
		}
		frame := b[off : off+incl]
		off += incl
		if p, ok := frameUDP(frame); ok {
			p.frameIndex = i
			out = append(out, p)
		}
	}
	return out, nil
}

func frameUDP(f []byte) (udpPacket, bool) {
	if len(f) < 14 {
		return udpPacket{}, false
	}
	etype := binary.BigEndian.Uint16(f[12:])
	ipb := f[14:]
	if etype == 0x8100 && len(f) >= 18 { // 802.1Q
		etype = binary.BigEndian.Uint16(f[16:])
		ipb = f[18:]
	}
	if etype != 0x0800 || len(ipb) < 20 || ipb[0]>>4 != 4 {
		return udpPacket{}, false
	}
	ihl := int(ipb[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ipb[2:]))
	if ihl < 20 || total < ihl || total > len(ipb) || ipb[9] != 17 {
		return udpPacket{}, false
	}
	if binary.BigEndian.Uint16(ipb[6:])&0x3fff != 0 { // fragment
		return udpPacket{}, false
	}
	src := netip.AddrFrom4([4]byte(ipb[12:16]))
	dst := netip.AddrFrom4([4]byte(ipb[16:20]))
	u := ipb[ihl:total]
	if len(u) < 8 {
		return udpPacket{}, false
	}
	ulen := int(binary.BigEndian.Uint16(u[4:]))
	if ulen < 8 || ulen > len(u) {
		return udpPacket{}, false
	}
	return udpPacket{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(u[0:])),
		dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(u[2:])),
		payload: u[8:ulen],
	}, true
}

// tftpRRQFile returns the file name of a TFTP read request, or "".
func tftpRRQFile(p udpPacket) string {
	if p.dst.Port() != 69 || len(p.payload) < 4 || binary.BigEndian.Uint16(p.payload) != 1 {
		return ""
	}
	name, _, ok := bytes.Cut(p.payload[2:], []byte{0})
	if !ok {
		return ""
	}
	return string(name)
}

// isBootReplyFrom reports a BOOTP reply (op 2) sent by the given server
// from port 67 or 4011: a DHCP offer/ack.
func isBootReplyFrom(p udpPacket, server netip.Addr) bool {
	return p.src.Addr() == server && (p.src.Port() == 67 || p.src.Port() == 4011) &&
		len(p.payload) >= 240 && p.payload[0] == 2
}

// captureFacts is what one scenario's capture shows.
type captureFacts struct {
	rrq          map[string]int // TFTP read requests to the appliance, by file
	proxyReplies int            // BOOTP replies from the appliance
}

func analyseCapture(path string) (captureFacts, error) {
	pk, err := readUDP(path)
	if err != nil {
		return captureFacts{}, err
	}
	app := netip.MustParseAddr(applianceIP)
	f := captureFacts{rrq: map[string]int{}}
	for _, p := range pk {
		if n := tftpRRQFile(p); n != "" && p.dst.Addr() == app {
			f.rrq[n]++
		}
		if isBootReplyFrom(p, app) {
			f.proxyReplies++
		}
	}
	return f, nil
}
