package dhcpproxy

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/pxe-pilot/pxe-pilot/assets"
)

// Reason says why a packet was not answered. The set is fixed: it is the
// value of the reason label of pxe_pilot_dhcp_ignored_total.
type Reason string

const (
	Answer Reason = "" // not ignored

	ReasonTruncated    Reason = "truncated"     // shorter than a BOOTP header + magic cookie
	ReasonOversized    Reason = "oversized"     // larger than any Ethernet frame can carry
	ReasonBadMagic     Reason = "bad_magic"     // not DHCP (no 99.130.83.99 cookie)
	ReasonMalformed    Reason = "malformed"     // options do not parse (length runs past the end, no End option)
	ReasonBootReply    Reason = "bootreply"     // op 2: a server's packet, maybe ours
	ReasonOwnPacket    Reason = "own_packet"    // sent from our own address
	ReasonNotEthernet  Reason = "not_ethernet"  // htype/hlen not Ethernet, no usable MAC
	ReasonNotPXE       Reason = "not_pxe"       // option 60 is not PXEClient/HTTPClient
	ReasonMessageType  Reason = "message_type"  // RELEASE, DECLINE, OFFER, ACK, NAK, plain BOOTP, DISCOVER on 4011
	ReasonNotForUs     Reason = "not_for_us"    // REQUEST on 67 (the router's), or option 54 names another server
	ReasonUnknownArch  Reason = "unknown_arch"  // option 93 / option 60 arch we have no binary for
	ReasonClassArch    Reason = "class_arch"    // HTTPClient with a PXE arch, or PXEClient with an HTTP arch
	ReasonNoARM64      Reason = "arm64_missing" // arm64 client, no arm64 binary configured
	ReasonIA32         Reason = "ia32"          // 32-bit UEFI client: no IA32 iPXE is served
	ReasonUnknownMAC   Reason = "unknown_mac"   // KnownMAC said no (PXE_DHCP_ONLY_KNOWN)
	ReasonLookupFailed Reason = "lookup_error"  // KnownMAC failed
	ReasonBusy         Reason = "busy"          // too many KnownMAC lookups in flight
)

// Reasons lists every Reason, for seeding metrics and for tests.
var Reasons = []Reason{
	ReasonTruncated, ReasonOversized, ReasonBadMagic, ReasonMalformed,
	ReasonBootReply, ReasonOwnPacket, ReasonNotEthernet, ReasonNotPXE,
	ReasonMessageType, ReasonNotForUs, ReasonUnknownArch, ReasonClassArch,
	ReasonNoARM64, ReasonIA32, ReasonUnknownMAC, ReasonLookupFailed, ReasonBusy,
}

// Stage labels: the firmware's own PXE/HTTP client, or iPXE already running.
const (
	StageFirmware = "firmware"
	StageIPXE     = "ipxe"
)

// Port says on which of our two sockets a packet arrived.
type Port int

const (
	PortDHCP       Port = 67   // DHCPDISCOVER / DHCPINFORM, broadcast by clients
	PortBootServer Port = 4011 // PXE boot server discovery DHCPREQUEST, unicast to us
)

// Inbound is where a packet came from and where it arrived.
type Inbound struct {
	Port Port
	Src  *net.UDPAddr // may be nil in tests
}

// Policy is the part of the configuration that decides answers.
type Policy struct {
	ServerIP    net.IP // IPv4: siaddr and option 54
	BaseURL     string // no trailing slash
	EFIBinary   string // for UEFI x86/x64 PXE and x64 HTTP Boot
	ARM64Binary string // "" = ignore arm64 clients
	// UEFILoader is what UEFI x86_64 and arm64 firmware gets by default:
	// LoaderIPXE ("" too) or LoaderShim (the signed shim → GRUB chain,
	// which firmware enforcing Secure Boot accepts).
	UEFILoader string
	// ShimX64 and ShimAA64 are the shim names served ("" = not found:
	// those machines get iPXE whatever the loader setting).
	ShimX64, ShimAA64 string
	// LoaderFor, when set, is the node's own loader (its profile's
	// "loader" field): LoaderIPXE, LoaderShim, or "" for UEFILoader. It
	// must be quick (one store read) and never fail loudly: on error it
	// returns "".
	LoaderFor func(net.HardwareAddr) string
}

// UEFI loaders (PXE_UEFI_LOADER, a profile's "loader").
const (
	LoaderIPXE = "ipxe"
	LoaderShim = "shim"
)

// loader says which loader a UEFI firmware client gets.
func (p Policy) loader(mac net.HardwareAddr) string {
	if p.LoaderFor != nil {
		if l := p.LoaderFor(mac); l == LoaderIPXE || l == LoaderShim {
			return l
		}
	}
	if p.UEFILoader == LoaderShim {
		return LoaderShim
	}
	return LoaderIPXE
}

// Boot is the classification of a packet we answer: who asks and what they
// get.
type Boot struct {
	MAC       net.HardwareAddr
	Arch      iana.Arch // as sent (option 93, or option 60's Arch field)
	ArchLabel string    // bounded metric label, see archLabels
	Stage     string    // StageFirmware or StageIPXE
	HTTP      bool      // UEFI HTTP Boot: reply with option 60 "HTTPClient"
	File      string    // TFTP file name or absolute URL
	Loader    string    // LoaderIPXE or LoaderShim (what File is)
	// DiscoveryControl: put option 43 with PXE_DISCOVERY_CONTROL = 8 in
	// the reply (BIOS PXE ROMs, see the package comment).
	DiscoveryControl bool
	Reply            dhcpv4.MessageType // OFFER or ACK
}

// Architecture numbers (RFC 4578 and the IANA registry) that we serve.
const (
	archBIOS      iana.Arch = 0
	archEFIIA32   iana.Arch = 6
	archEFIX64    iana.Arch = 7
	archEFIBC     iana.Arch = 9 // "EFI BC": x86-64 in every firmware seen in the field
	archEFIARM64  iana.Arch = 11
	archHTTPIA32  iana.Arch = 15
	archHTTPX64   iana.Arch = 16
	archHTTPARM64 iana.Arch = 19
)

var archLabels = map[iana.Arch]string{
	archBIOS:      "bios",
	archEFIIA32:   "efi-x86",
	archEFIX64:    "efi-x64",
	archEFIBC:     "efi-x64",
	archEFIARM64:  "efi-arm64",
	archHTTPIA32:  "http-x86",
	archHTTPX64:   "http-x64",
	archHTTPARM64: "http-arm64",
}

// ArchLabels lists every arch label value (plus "other" for iPXE on an
// architecture we have no firmware binary for).
var ArchLabels = []string{"bios", "efi-x86", "efi-x64", "efi-arm64", "http-x86", "http-x64", "http-arm64", "other"}

func archLabel(a iana.Arch) string {
	if l, ok := archLabels[a]; ok {
		return l
	}
	return "other"
}

// Classify decides whether to answer req, which arrived as described by in,
// and with what. It looks at nothing but its arguments.
func Classify(req *dhcpv4.DHCPv4, in Inbound, p Policy) (Boot, Reason) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return Boot{}, ReasonBootReply
	}
	if in.Src != nil && p.ServerIP != nil && in.Src.IP.Equal(p.ServerIP) {
		return Boot{}, ReasonOwnPacket
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return Boot{}, ReasonNotEthernet
	}
	class := req.Options.Get(dhcpv4.OptionClassIdentifier)
	isPXE := bytes.HasPrefix(class, []byte("PXEClient"))
	isHTTP := bytes.HasPrefix(class, []byte("HTTPClient"))
	if !isPXE && !isHTTP {
		return Boot{}, ReasonNotPXE
	}

	b := Boot{MAC: req.ClientHWAddr}
	switch mt := req.MessageType(); {
	case mt == dhcpv4.MessageTypeDiscover && in.Port == PortDHCP:
		b.Reply = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest && in.Port == PortBootServer:
		b.Reply = dhcpv4.MessageTypeAck
	case mt == dhcpv4.MessageTypeRequest:
		// Every PXE client requests its address from the router on
		// port 67; that exchange is not ours.
		return Boot{}, ReasonNotForUs
	case mt == dhcpv4.MessageTypeInform:
		b.Reply = dhcpv4.MessageTypeAck
	default:
		return Boot{}, ReasonMessageType
	}
	if sid := req.ServerIdentifier(); sid != nil && p.ServerIP != nil && !sid.Equal(p.ServerIP) {
		return Boot{}, ReasonNotForUs
	}

	arch, ok := clientArch(req, class)
	if !ok {
		return Boot{}, ReasonUnknownArch
	}
	b.Arch, b.ArchLabel = arch, archLabel(arch)

	if isIPXE(req) {
		// iPXE speaks HTTP: whatever the platform, it continues with
		// the chain script, which sends it on to /boot.
		b.Stage, b.File = StageIPXE, p.BaseURL+"/chain"
		return b, Answer
	}

	b.Stage, b.Loader = StageFirmware, LoaderIPXE
	httpArch := arch == archHTTPIA32 || arch == archHTTPX64 || arch == archHTTPARM64
	if _, known := archLabels[arch]; known && httpArch != isHTTP {
		return Boot{}, ReasonClassArch
	}
	switch arch {
	case archBIOS:
		b.File, b.DiscoveryControl = assets.UndionlyKPXE, true
	case archEFIX64, archEFIBC, archHTTPX64:
		// The signed chain exists for x86_64 only (no ia32 shim in
		// Debian), and for PXE only: Debian's signed GRUB configures its
		// network from the PXE base code's DHCP answer and has no http
		// module, so after UEFI HTTP Boot it would find no grub.cfg and
		// stop at its prompt. HTTP Boot clients keep iPXE (refused under
		// Secure Boot, so the firmware moves on to its next entry).
		if arch != archHTTPX64 && p.ShimX64 != "" && p.loader(req.ClientHWAddr) == LoaderShim {
			b.File, b.Loader = p.ShimX64, LoaderShim
			return b, Answer
		}
		b.File = p.EFIBinary
		if arch == archHTTPX64 {
			b.File, b.HTTP = p.BaseURL+"/ipxe/"+p.EFIBinary, true
		}
	case archEFIIA32, archHTTPIA32:
		// Every binary served is x86_64 (Debian builds no IA32 iPXE,
		// shim or GRUB), which 32-bit UEFI cannot load: offering it would
		// only make the machine download it and fail, while another
		// server on the LAN might have an IA32 loader.
		return Boot{}, ReasonIA32
	case archEFIARM64, archHTTPARM64:
		if arch == archEFIARM64 && p.ShimAA64 != "" && p.loader(req.ClientHWAddr) == LoaderShim {
			b.File, b.Loader = p.ShimAA64, LoaderShim
			return b, Answer
		}
		if p.ARM64Binary == "" {
			return Boot{}, ReasonNoARM64
		}
		b.File = p.ARM64Binary
		if arch == archHTTPARM64 {
			b.File, b.HTTP = p.BaseURL+"/ipxe/"+p.ARM64Binary, true
		}
	default:
		return Boot{}, ReasonUnknownArch
	}
	return b, Answer
}

// clientArch reads option 93 (its first entry: a client lists one), or
// failing that the "Arch:NNNNN" field of option 60, which older PXE ROMs and
// every EDK2 build also send.
func clientArch(req *dhcpv4.DHCPv4, class []byte) (iana.Arch, bool) {
	if v := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(v) >= 2 {
		return iana.Arch(uint16(v[0])<<8 | uint16(v[1])), true
	}
	// "PXEClient:Arch:00007:UNDI:003016"
	parts := strings.Split(string(class), ":")
	if len(parts) >= 3 && parts[1] == "Arch" {
		if n, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
			return iana.Arch(n), true
		}
	}
	return 0, false
}

// isIPXE reports whether option 77 says "iPXE", as iPXE sends it (the bare
// string) or as an RFC 3004 list.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	raw := req.Options.Get(dhcpv4.OptionUserClassInformation)
	if string(raw) == "iPXE" {
		return true
	}
	for len(raw) > 0 {
		n := int(raw[0])
		if n == 0 || 1+n > len(raw) {
			return false
		}
		if string(raw[1:1+n]) == "iPXE" {
			return true
		}
		raw = raw[1+n:]
	}
	return false
}

// PacketType is the type label of pxe_pilot_dhcp_packets_total for a parsed
// packet: the DHCP message type in lower case, "bootp" without option 53,
// "other" for a type outside RFC 2132.
func PacketType(req *dhcpv4.DHCPv4) string {
	v := req.Options.Get(dhcpv4.OptionDHCPMessageType)
	if len(v) == 0 {
		return "bootp"
	}
	switch dhcpv4.MessageType(v[0]) {
	case dhcpv4.MessageTypeDiscover:
		return "discover"
	case dhcpv4.MessageTypeOffer:
		return "offer"
	case dhcpv4.MessageTypeRequest:
		return "request"
	case dhcpv4.MessageTypeDecline:
		return "decline"
	case dhcpv4.MessageTypeAck:
		return "ack"
	case dhcpv4.MessageTypeNak:
		return "nak"
	case dhcpv4.MessageTypeRelease:
		return "release"
	case dhcpv4.MessageTypeInform:
		return "inform"
	}
	return "other"
}

// PacketTypes lists every value PacketType returns, plus "malformed".
var PacketTypes = []string{"discover", "offer", "request", "decline", "ack", "nak", "release", "inform", "bootp", "other", "malformed"}

// Result is what Process makes of one received datagram.
type Result struct {
	Type   string // packet type label ("malformed" if it did not parse)
	Reason Reason // Answer, or why not
	Boot   Boot   // valid when Reason == Answer
	Reply  []byte // the reply's bytes, when Reason == Answer
	Dest   *net.UDPAddr
	MAC    net.HardwareAddr // when known, for logs
}

// maxPacket is the largest DHCP message we accept: a full Ethernet payload
// minus IPv4 and UDP headers. Anything longer came over something else.
const maxPacket = 1500 - 20 - 8

// minPacket is the fixed BOOTP header (236 bytes) plus the magic cookie.
const minPacket = 236 + 4

// Process is the whole pure path for one datagram: parse, classify, build
// the reply and choose where it goes. The server only adds I/O, KnownMAC,
// metrics and logs.
func Process(raw []byte, in Inbound, p Policy) Result {
	switch {
	case len(raw) < minPacket:
		return Result{Type: "malformed", Reason: ReasonTruncated}
	case len(raw) > maxPacket:
		return Result{Type: "malformed", Reason: ReasonOversized}
	case !bytes.Equal(raw[236:240], []byte{99, 130, 83, 99}):
		return Result{Type: "malformed", Reason: ReasonBadMagic}
	}
	req, err := dhcpv4.FromBytes(raw)
	if err != nil {
		return Result{Type: "malformed", Reason: ReasonMalformed}
	}
	r := Result{Type: PacketType(req)}
	if req.HWType == iana.HWTypeEthernet && len(req.ClientHWAddr) == 6 {
		r.MAC = req.ClientHWAddr
	}
	b, why := Classify(req, in, p)
	if why != Answer {
		r.Reason = why
		return r
	}
	r.Boot, r.Reply, r.Dest = b, BuildReply(req, b, p).ToBytes(), Destination(req, in)
	return r
}
