package dhcpproxy

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// PXE vendor sub-options (PXE 2.1 spec, table 2-1) carried in option 43.
const (
	pxeDiscoveryControl = 6
	// Bit 3: "if a boot file name is present in the ProxyDHCP offer,
	// download it directly, without boot server discovery".
	pxeUseFileInOffer = 8
)

// maxFileField is the BOOTP file field's capacity: 128 bytes including the
// terminating NUL.
const maxFileField = 127

// BuildReply builds the ProxyDHCP reply to req as classified by b. It never
// carries an address: yiaddr stays 0.0.0.0, and no lease, mask or router
// options are sent, so the client takes those from the real DHCP server.
func BuildReply(req *dhcpv4.DHCPv4, b Boot, p Policy) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		// Keep the client's broadcast flag: a client that cannot
		// receive unicast before it is configured sets it.
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero.To4(),
		YourIPAddr:    net.IPv4zero.To4(),
		ServerIPAddr:  p.ServerIP.To4(), // next-server: where TFTP goes
		GatewayIPAddr: req.GatewayIPAddr,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       dhcpv4.Options{},
	}
	if b.Reply == dhcpv4.MessageTypeAck {
		// An ACK to a configured client (port 4011, INFORM) repeats
		// its address in ciaddr, as RFC 2131 table 3 asks.
		r.ClientIPAddr = req.ClientIPAddr
	}
	if len(b.File) <= maxFileField {
		r.BootFileName = b.File
	}
	r.UpdateOption(dhcpv4.OptMessageType(b.Reply))
	r.UpdateOption(dhcpv4.OptServerIdentifier(p.ServerIP.To4()))
	// Option 60 must echo the client's class family: PXE ROMs discard a
	// ProxyDHCP offer without "PXEClient", and EDK2's HTTP Boot driver
	// one without "HTTPClient".
	class := "PXEClient"
	if b.HTTP {
		class = "HTTPClient"
	}
	r.UpdateOption(dhcpv4.OptClassIdentifier(class))
	if b.Stage == StageIPXE || b.HTTP || len(b.File) > maxFileField {
		// URLs: option 67 has no 127-byte limit (it is split over
		// several option instances per RFC 3396 when longer than 255).
		r.UpdateOption(dhcpv4.OptBootFileName(b.File))
	}
	if guid := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	if b.DiscoveryControl {
		// Sub-option 6 = 8, then the End of the encapsulated options.
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation,
			[]byte{pxeDiscoveryControl, 1, pxeUseFileInOffer, 255}))
	}
	// A relay that inserted option 82 expects it back (RFC 3046).
	if ri := req.Options.Get(dhcpv4.OptionRelayAgentInformation); ri != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, ri))
	}
	return r
}

// Destination is where the reply to req goes.
//
//   - Port 4011: back to the request's source address and port. A client
//     that broadcast it without an address of its own gets a broadcast to
//     the port it used.
//   - Port 67 through a relay (giaddr set): to the relay's port 67.
//   - Port 67 from a configured client (ciaddr set, e.g. INFORM): unicast to
//     ciaddr:68.
//   - Otherwise the client has no address yet and cannot answer ARP, so the
//     reply is broadcast to 255.255.255.255:68.
func Destination(req *dhcpv4.DHCPv4, in Inbound) *net.UDPAddr {
	if in.Port == PortBootServer && in.Src != nil {
		if ip := in.Src.IP.To4(); ip != nil && !ip.Equal(net.IPv4zero) {
			return &net.UDPAddr{IP: ip, Port: in.Src.Port}
		}
		return &net.UDPAddr{IP: net.IPv4bcast, Port: in.Src.Port}
	}
	if gi := req.GatewayIPAddr.To4(); gi != nil && !gi.Equal(net.IPv4zero) {
		return &net.UDPAddr{IP: gi, Port: 67}
	}
	if ci := req.ClientIPAddr.To4(); ci != nil && !ci.Equal(net.IPv4zero) {
		return &net.UDPAddr{IP: ci, Port: 68}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: 68}
}
