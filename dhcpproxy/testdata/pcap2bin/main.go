// Command pcap2bin extracts the UDP payloads of a classic pcap file
// (Ethernet link type, as tcpdump -w writes it) into one file per datagram,
// named <index>-<src port>-<dst port>-<op>-<dhcp type>.bin, for turning
// capture.sh recordings into fixtures.
//
//	go run ./testdata/pcap2bin capture.pcap outdir
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pcap2bin file.pcap outdir")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 {
		fmt.Fprintln(os.Stderr, "not a little-endian microsecond pcap file")
		os.Exit(1)
	}
	if lt := binary.LittleEndian.Uint32(data[20:]); lt != 1 {
		fmt.Fprintf(os.Stderr, "link type %d, want 1 (Ethernet)\n", lt)
		os.Exit(1)
	}
	if err := os.MkdirAll(os.Args[2], 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	off, i := 24, 0
	for off+16 <= len(data) {
		incl := int(binary.LittleEndian.Uint32(data[off+8:]))
		off += 16
		if off+incl > len(data) {
			break
		}
		frame := data[off : off+incl]
		off += incl
		i++
		if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		sp, dp := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
		ulen := int(binary.BigEndian.Uint16(udp[4:]))
		if ulen < 8 || ulen > len(udp) {
			continue
		}
		payload := udp[8:ulen]
		mt := "none"
		if len(payload) > 240 {
			for o := 240; o+1 < len(payload); {
				c := payload[o]
				if c == 0 {
					o++
					continue
				}
				if c == 255 {
					break
				}
				l := int(payload[o+1])
				if c == 53 && l == 1 && o+2 < len(payload) {
					mt = fmt.Sprint(payload[o+2])
				}
				o += 2 + l
			}
		}
		name := fmt.Sprintf("%03d-%d-%d-op%d-type%s.bin", i, sp, dp, payload[0], mt)
		if err := os.WriteFile(filepath.Join(os.Args[2], name), payload, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(name, len(payload))
	}
}
