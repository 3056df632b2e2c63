package dhcpproxy

import (
	"net"
	"testing"
)

// BenchmarkProcess measures the pure per-packet path (parse, classify,
// build and encode the reply) for each captured client kind.
//
//	go test -run '^$' -bench Process -benchmem ./dhcpproxy
func BenchmarkProcess(b *testing.B) {
	in := Inbound{Port: PortDHCP, Src: &net.UDPAddr{IP: net.IPv4zero, Port: 68}}
	for _, name := range []string{"bios-pxe-rom-discover.bin", "uefi-x64-pxe-discover.bin", "ipxe-bios-discover.bin", "nmap-plain-discover.bin"} {
		raw := fixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Process(raw, in, testPolicy)
			}
		})
	}
}
