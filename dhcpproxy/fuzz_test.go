package dhcpproxy

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzProcess drives the whole parse-classify-reply path with arbitrary
// datagrams on both ports. Seeds: testdata/fuzz/FuzzProcess (the captured
// fixtures and the bad-input shapes). Whatever comes in, Process must not
// panic, must give a reason from the fixed set, and any reply must be a
// well-formed BOOTREPLY for the same client that never offers an address.
func FuzzProcess(f *testing.F) {
	known, types := labelSets()
	f.Fuzz(func(t *testing.T, raw []byte, bootServer bool) {
		in := Inbound{Port: PortDHCP, Src: &net.UDPAddr{IP: net.IPv4zero, Port: 68}}
		if bootServer {
			in = Inbound{Port: PortBootServer, Src: &net.UDPAddr{IP: net.IPv4(203, 0, 113, 200), Port: 68}}
		}
		r := Process(raw, in, testPolicy)
		if !known[r.Reason] || !types[r.Type] {
			t.Fatalf("labels outside the fixed sets: reason %q type %q", r.Reason, r.Type)
		}
		if r.Reason != Answer {
			if r.Reply != nil {
				t.Fatal("ignored packet has a reply")
			}
			return
		}
		req, err := dhcpv4.FromBytes(raw)
		if err != nil {
			t.Fatalf("answered a packet that does not parse: %v", err)
		}
		rep, err := dhcpv4.FromBytes(r.Reply)
		if err != nil {
			t.Fatalf("our reply does not parse: %v", err)
		}
		if rep.OpCode != dhcpv4.OpcodeBootReply || !rep.YourIPAddr.Equal(net.IPv4zero) ||
			!rep.ServerIPAddr.Equal(testPolicy.ServerIP) || rep.TransactionID != req.TransactionID ||
			!bytes.Equal(rep.ClientHWAddr, req.ClientHWAddr) {
			t.Fatalf("bad reply: %s", rep.Summary())
		}
		if mt := rep.MessageType(); mt != dhcpv4.MessageTypeOffer && mt != dhcpv4.MessageTypeAck {
			t.Fatalf("reply type %v", mt)
		}
		if r.Dest == nil || r.Dest.IP.To4() == nil {
			t.Fatalf("reply without an IPv4 destination: %v", r.Dest)
		}
	})
}
