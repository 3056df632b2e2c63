//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParsePcapUDP: the capture reader must never panic or loop, whatever
// the bytes (a capture cut short by a killed tcpdump is the common case).
// Seeds: testdata/pcap/*.pcap, real captures of a DHCP exchange and a TFTP
// read request on the test bridge.
func FuzzParsePcapUDP(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/pcap/*.pcap")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)*2/3])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := parsePcapUDP(b)
		if err != nil {
			return
		}
		for _, p := range pk {
			_ = tftpRRQFile(p)
			if len(p.payload) > len(b) {
				t.Fatalf("payload longer than the file")
			}
		}
	})
}

// TestCaptureCounting pins the counts the metric checks rely on, against
// real captures: the router-only boot asked the appliance for undionly.kpxe
// twice (iPXE ROM, then the chainloaded undionly.kpxe, which the loop
// breaker answered); the reference boot got two replies from the
// appliance's address (dnsmasq's ProxyDHCP offer and its port-4011 ack).
func TestCaptureCounting(t *testing.T) {
	for _, tc := range []struct {
		file    string
		rrq     map[string]int
		replies int
	}{
		{"router-tftp-rrq.pcap", map[string]int{"undionly.kpxe": 2}, 0},
		{"reference-dhcp.pcap", map[string]int{}, 2},
	} {
		f, err := analyseCapture(filepath.Join("testdata", "pcap", tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if len(f.rrq) != len(tc.rrq) {
			t.Errorf("%s: read requests %v, want %v", tc.file, f.rrq, tc.rrq)
		}
		for k, v := range tc.rrq {
			if f.rrq[k] != v {
				t.Errorf("%s: read requests %v, want %v", tc.file, f.rrq, tc.rrq)
			}
		}
		if f.proxyReplies != tc.replies {
			t.Errorf("%s: %d BOOTP replies from the appliance address, want %d", tc.file, f.proxyReplies, tc.replies)
		}
	}
	if _, err := parsePcapUDP([]byte("not a capture at all, but long enough")); err == nil {
		t.Error("garbage parsed as a capture")
	}
}
