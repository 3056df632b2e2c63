package dhcpproxy

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden and the spec-built fixtures")

var testPolicy = Policy{
	ServerIP:  net.IPv4(203, 0, 113, 2).To4(),
	BaseURL:   "http://203.0.113.2:8000",
	EFIBinary: "ipxe.efi",
}

var bcast68 = "255.255.255.255:68"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return b
}

func parse(t testing.TB, b []byte) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

// specBIOSDiscover builds the DHCPDISCOVER of a classic (non-iPXE) BIOS PXE
// 2.1 ROM, as the PXE specification (section 2.2.1) lists it: QEMU's ROMs
// are all iPXE, so this one cannot be captured here. Options 93 = 0,
// 94 = UNDI 2.1, 97 = type 0 + GUID, 60 with Arch and UNDI fields, 57, and
// a parameter request list that includes 128-135 as Intel ROMs send it.
func specBIOSDiscover() []byte {
	p := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		TransactionID: dhcpv4.TransactionID{0x5e, 0xc1, 0xa5, 0x01},
		NumSeconds:    4,
		Flags:         0x8000,
		ClientIPAddr:  net.IPv4zero, YourIPAddr: net.IPv4zero,
		ServerIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero,
		ClientHWAddr: net.HardwareAddr{0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e},
		Options:      dhcpv4.Options{},
	}
	p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeDiscover))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionMaximumDHCPMessageSize, []byte{0x04, 0xec}))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList,
		[]byte{1, 2, 3, 4, 5, 6, 11, 12, 13, 15, 16, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135}))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier,
		[]byte{0, 0x4c, 0x4c, 0x45, 0x44, 0x00, 0x58, 0x10, 0x80, 0x38, 0xb2, 0xc0, 0x4f, 0x50, 0x36, 0x34, 0x31}))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}))
	p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}))
	p.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	return p.ToBytes()
}

// TestSpecFixture keeps the spec-built BIOS fixture in step with its
// generator (run with -update after changing it).
func TestSpecFixture(t *testing.T) {
	path := filepath.Join("testdata", "bios-pxe-rom-discover.bin")
	if *update {
		if err := os.WriteFile(path, specBIOSDiscover(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := fixture(t, "bios-pxe-rom-discover.bin"); !bytes.Equal(got, specBIOSDiscover()) {
		t.Fatal("testdata/bios-pxe-rom-discover.bin differs from specBIOSDiscover(); run go test -run TestSpecFixture -update")
	}
}

// dump renders a Process result for golden files: every header field and
// every option in hex, so any change in a reply's bytes shows.
func dump(t testing.TB, r Result) string {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "type: %s\n", r.Type)
	if r.Reason != Answer {
		fmt.Fprintf(&sb, "ignored: %s\n", r.Reason)
		return sb.String()
	}
	p := parse(t, r.Reply)
	fmt.Fprintf(&sb, "dest: %s\nstage: %s\narch: %s (%d)\nlength: %d\n", r.Dest, r.Boot.Stage, r.Boot.ArchLabel, r.Boot.Arch, len(r.Reply))
	fmt.Fprintf(&sb, "op: %d htype: %d hlen: %d hops: %d xid: %x secs: %d flags: %#04x\n",
		p.OpCode, p.HWType, len(p.ClientHWAddr), p.HopCount, p.TransactionID[:], p.NumSeconds, p.Flags)
	fmt.Fprintf(&sb, "ciaddr: %s yiaddr: %s siaddr: %s giaddr: %s\nchaddr: %s\nsname: %q\nfile: %q\n",
		p.ClientIPAddr, p.YourIPAddr, p.ServerIPAddr, p.GatewayIPAddr, p.ClientHWAddr, p.ServerHostName, p.BootFileName)
	codes := make([]int, 0, len(p.Options))
	for c := range p.Options {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&sb, "option %d: %s\n", c, hex.EncodeToString(p.Options[uint8(c)]))
	}
	return sb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file %s: %v (run with -update to create it)", path, err)
	}
	if got != string(want) {
		t.Errorf("reply differs from %s (run with -update if intended):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// want describes the fields a reply must carry; "" / nil means "must be
// absent" for options and is checked too.
type want struct {
	reason  Reason
	stage   string
	arch    string
	msgType dhcpv4.MessageType
	file    string // BOOTP file field
	opt67   string // option 67, "" = absent
	class   string // option 60
	opt43   []byte // nil = absent
	guid    bool   // option 97 echoed
	dest    string
}

func TestFixtures(t *testing.T) {
	src := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	cases := []struct {
		name, file string
		port       Port
		src        *net.UDPAddr
		want       want
	}{
		{"bios-pxe-rom", "bios-pxe-rom-discover.bin", PortDHCP, src, want{
			stage: StageFirmware, arch: "bios", msgType: dhcpv4.MessageTypeOffer,
			file: "undionly.kpxe", class: "PXEClient", opt43: []byte{6, 1, 8, 255}, guid: true, dest: bcast68}},
		{"uefi-x64-pxe", "uefi-x64-pxe-discover.bin", PortDHCP, src, want{
			stage: StageFirmware, arch: "efi-x64", msgType: dhcpv4.MessageTypeOffer,
			file: "ipxe.efi", class: "PXEClient", guid: true, dest: bcast68}},
		{"uefi-x64-http", "uefi-x64-http-discover.bin", PortDHCP, src, want{
			stage: StageFirmware, arch: "http-x64", msgType: dhcpv4.MessageTypeOffer,
			file: "http://203.0.113.2:8000/ipxe/ipxe.efi", opt67: "http://203.0.113.2:8000/ipxe/ipxe.efi",
			class: "HTTPClient", guid: true, dest: bcast68}},
		{"ipxe-bios", "ipxe-bios-discover.bin", PortDHCP, src, want{
			stage: StageIPXE, arch: "bios", msgType: dhcpv4.MessageTypeOffer,
			file: "http://203.0.113.2:8000/chain", opt67: "http://203.0.113.2:8000/chain",
			class: "PXEClient", guid: true, dest: bcast68}},
		{"uefi-x64-pxe-4011", "uefi-x64-pxe-request-4011.bin", PortBootServer,
			&net.UDPAddr{IP: net.IPv4(203, 0, 113, 200), Port: 4011}, want{
				stage: StageFirmware, arch: "efi-x64", msgType: dhcpv4.MessageTypeAck,
				file: "ipxe.efi", class: "PXEClient", guid: true, dest: "203.0.113.200:4011"}},
		{"plain-nmap", "nmap-plain-discover.bin", PortDHCP, src, want{reason: ReasonNotPXE}},
		{"ipxe-request-to-router", "ipxe-request-to-router.bin", PortDHCP, src, want{reason: ReasonNotForUs}},
		{"router-offer", "router-offer.bin", PortDHCP, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 1), Port: 67}, want{reason: ReasonBootReply}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := fixture(t, c.file)
			r := Process(raw, Inbound{Port: c.port, Src: c.src}, testPolicy)
			golden(t, c.name, dump(t, r))
			checkReply(t, raw, r, c.want)
		})
	}
}

// checkReply checks a Process result field by field against w and the
// invariants every ProxyDHCP reply must keep.
func checkReply(t *testing.T, raw []byte, r Result, w want) {
	t.Helper()
	if r.Reason != w.reason {
		t.Fatalf("reason = %q, want %q", r.Reason, w.reason)
	}
	if w.reason != Answer {
		if r.Reply != nil {
			t.Fatal("ignored packet has a reply")
		}
		return
	}
	req, rep := parse(t, raw), parse(t, r.Reply)
	if r.Boot.Stage != w.stage || r.Boot.ArchLabel != w.arch {
		t.Errorf("stage/arch = %s/%s, want %s/%s", r.Boot.Stage, r.Boot.ArchLabel, w.stage, w.arch)
	}
	if rep.OpCode != dhcpv4.OpcodeBootReply {
		t.Errorf("op = %v, want BootReply", rep.OpCode)
	}
	if rep.MessageType() != w.msgType {
		t.Errorf("message type = %v, want %v", rep.MessageType(), w.msgType)
	}
	if rep.TransactionID != req.TransactionID || !bytes.Equal(rep.ClientHWAddr, req.ClientHWAddr) || rep.HWType != req.HWType {
		t.Errorf("xid/chaddr/htype not copied: %x %s %v", rep.TransactionID, rep.ClientHWAddr, rep.HWType)
	}
	if rep.Flags != req.Flags {
		t.Errorf("flags = %#x, want the request's %#x", rep.Flags, req.Flags)
	}
	if !rep.YourIPAddr.Equal(net.IPv4zero) {
		t.Errorf("yiaddr = %v: a ProxyDHCP reply must never offer an address", rep.YourIPAddr)
	}
	if !rep.ServerIPAddr.Equal(testPolicy.ServerIP) {
		t.Errorf("siaddr = %v, want %v", rep.ServerIPAddr, testPolicy.ServerIP)
	}
	if sid := rep.ServerIdentifier(); !sid.Equal(testPolicy.ServerIP) {
		t.Errorf("option 54 = %v, want %v", sid, testPolicy.ServerIP)
	}
	if rep.BootFileName != w.file {
		t.Errorf("file = %q, want %q", rep.BootFileName, w.file)
	}
	if got := string(rep.Options.Get(dhcpv4.OptionBootfileName)); got != w.opt67 {
		t.Errorf("option 67 = %q, want %q", got, w.opt67)
	}
	if got := rep.ClassIdentifier(); got != w.class {
		t.Errorf("option 60 = %q, want %q", got, w.class)
	}
	if got := rep.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, w.opt43) {
		t.Errorf("option 43 = %x, want %x", got, w.opt43)
	}
	reqGUID := req.Options.Get(dhcpv4.OptionClientMachineIdentifier)
	repGUID := rep.Options.Get(dhcpv4.OptionClientMachineIdentifier)
	if w.guid && (reqGUID == nil || !bytes.Equal(reqGUID, repGUID)) {
		t.Errorf("option 97 = %x, want the request's %x", repGUID, reqGUID)
	}
	if !w.guid && repGUID != nil {
		t.Errorf("option 97 = %x, want none", repGUID)
	}
	for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionIPAddressLeaseTime} {
		if rep.Options.Has(o) {
			t.Errorf("reply carries %v: a ProxyDHCP reply must not configure the address", o)
		}
	}
	if len(r.Reply) < 300 {
		t.Errorf("reply is %d bytes; BOOTP minimum is 300", len(r.Reply))
	}
	if r.Dest.String() != w.dest {
		t.Errorf("dest = %s, want %s", r.Dest, w.dest)
	}
}

// mutate parses a fixture, applies f and re-encodes it.
func mutate(t *testing.T, name string, f func(p *dhcpv4.DHCPv4)) []byte {
	t.Helper()
	p := parse(t, fixture(t, name))
	f(p)
	return p.ToBytes()
}

func setArch(a uint16) func(*dhcpv4.DHCPv4) {
	return func(p *dhcpv4.DHCPv4) {
		p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(a >> 8), byte(a)}))
	}
}

func TestVariants(t *testing.T) {
	bc := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	arm := testPolicy
	arm.ARM64Binary = "ipxe-arm64.efi"
	cases := []struct {
		name   string
		raw    []byte
		in     Inbound
		policy Policy
		want   want
	}{
		{"arm64-unconfigured", mutate(t, "uefi-x64-pxe-discover.bin", setArch(11)), Inbound{PortDHCP, bc}, testPolicy,
			want{reason: ReasonNoARM64}},
		{"arm64", mutate(t, "uefi-x64-pxe-discover.bin", setArch(11)), Inbound{PortDHCP, bc}, arm, want{
			stage: StageFirmware, arch: "efi-arm64", msgType: dhcpv4.MessageTypeOffer,
			file: "ipxe-arm64.efi", class: "PXEClient", guid: true, dest: bcast68}},
		{"arm64-http", mutate(t, "uefi-x64-http-discover.bin", setArch(19)), Inbound{PortDHCP, bc}, arm, want{
			stage: StageFirmware, arch: "http-arm64", msgType: dhcpv4.MessageTypeOffer,
			file: "http://203.0.113.2:8000/ipxe/ipxe-arm64.efi", opt67: "http://203.0.113.2:8000/ipxe/ipxe-arm64.efi",
			class: "HTTPClient", guid: true, dest: bcast68}},
		// 32-bit UEFI cannot load the x86_64 binaries served: no answer.
		{"efi-ia32", mutate(t, "uefi-x64-pxe-discover.bin", setArch(6)), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonIA32}},
		{"http-ia32", mutate(t, "uefi-x64-http-discover.bin", setArch(15)), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonIA32}},
		{"efi-bc", mutate(t, "uefi-x64-pxe-discover.bin", setArch(9)), Inbound{PortDHCP, bc}, testPolicy, want{
			stage: StageFirmware, arch: "efi-x64", msgType: dhcpv4.MessageTypeOffer,
			file: "ipxe.efi", class: "PXEClient", guid: true, dest: bcast68}},
		{"itanium-unknown-arch", mutate(t, "uefi-x64-pxe-discover.bin", setArch(2)), Inbound{PortDHCP, bc}, testPolicy,
			want{reason: ReasonUnknownArch}},
		{"http-class-with-pxe-arch", mutate(t, "uefi-x64-http-discover.bin", setArch(7)), Inbound{PortDHCP, bc}, testPolicy,
			want{reason: ReasonClassArch}},
		{"ipxe-arm64-without-binary", mutate(t, "ipxe-bios-discover.bin", setArch(11)), Inbound{PortDHCP, bc}, testPolicy, want{
			stage: StageIPXE, arch: "efi-arm64", msgType: dhcpv4.MessageTypeOffer,
			file: "http://203.0.113.2:8000/chain", opt67: "http://203.0.113.2:8000/chain", class: "PXEClient", guid: true, dest: bcast68}},
		{"ipxe-rfc3004-user-class", mutate(t, "ipxe-bios-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, []byte{3, 'f', 'o', 'o', 4, 'i', 'P', 'X', 'E'}))
		}), Inbound{PortDHCP, bc}, testPolicy, want{
			stage: StageIPXE, arch: "bios", msgType: dhcpv4.MessageTypeOffer,
			file: "http://203.0.113.2:8000/chain", opt67: "http://203.0.113.2:8000/chain", class: "PXEClient", guid: true, dest: bcast68}},
		// Mellanox FlexBoot: iPXE inside, no "iPXE" user class: served
		// as the firmware it says it is.
		{"flexboot-no-user-class", mutate(t, "ipxe-bios-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.Options.Del(dhcpv4.OptionUserClassInformation)
		}), Inbound{PortDHCP, bc}, testPolicy, want{
			stage: StageFirmware, arch: "bios", msgType: dhcpv4.MessageTypeOffer,
			file: "undionly.kpxe", class: "PXEClient", opt43: []byte{6, 1, 8, 255}, guid: true, dest: bcast68}},
		// Some Intel ROMs send no option 97: the reply has none either.
		{"bios-without-guid", mutate(t, "bios-pxe-rom-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.Options.Del(dhcpv4.OptionClientMachineIdentifier)
		}), Inbound{PortDHCP, bc}, testPolicy, want{
			stage: StageFirmware, arch: "bios", msgType: dhcpv4.MessageTypeOffer,
			file: "undionly.kpxe", class: "PXEClient", opt43: []byte{6, 1, 8, 255}, dest: bcast68}},
		// Old ROMs without option 93: the arch comes from option 60.
		{"arch-from-option-60", mutate(t, "uefi-x64-pxe-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.Options.Del(dhcpv4.OptionClientSystemArchitectureType)
		}), Inbound{PortDHCP, bc}, testPolicy, want{
			stage: StageFirmware, arch: "efi-x64", msgType: dhcpv4.MessageTypeOffer,
			file: "ipxe.efi", class: "PXEClient", guid: true, dest: bcast68}},
		{"no-arch-anywhere", mutate(t, "uefi-x64-pxe-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.Options.Del(dhcpv4.OptionClientSystemArchitectureType)
			p.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		}), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonUnknownArch}},
		{"relayed", mutate(t, "bios-pxe-rom-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.GatewayIPAddr = net.IPv4(198, 51, 100, 1)
			p.HopCount = 1
			p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 4, 'p', 'o', 'r', 't'}))
		}), Inbound{PortDHCP, &net.UDPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 67}}, testPolicy, want{
			stage: StageFirmware, arch: "bios", msgType: dhcpv4.MessageTypeOffer,
			file: "undionly.kpxe", class: "PXEClient", opt43: []byte{6, 1, 8, 255}, guid: true, dest: "198.51.100.1:67"}},
		{"pxe-inform", mutate(t, "uefi-x64-pxe-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeInform))
			p.ClientIPAddr = net.IPv4(203, 0, 113, 150)
		}), Inbound{PortDHCP, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 150), Port: 68}}, testPolicy, want{
			stage: StageFirmware, arch: "efi-x64", msgType: dhcpv4.MessageTypeAck,
			file: "ipxe.efi", class: "PXEClient", guid: true, dest: "203.0.113.150:68"}},
		{"4011-broadcast-without-address", mutate(t, "uefi-x64-pxe-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
		}), Inbound{PortBootServer, &net.UDPAddr{IP: net.IPv4zero, Port: 68}}, testPolicy, want{
			stage: StageFirmware, arch: "efi-x64", msgType: dhcpv4.MessageTypeAck,
			file: "ipxe.efi", class: "PXEClient", guid: true, dest: bcast68}},
		{"4011-for-another-server", mutate(t, "uefi-x64-pxe-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRequest))
			p.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(203, 0, 113, 9)))
		}), Inbound{PortBootServer, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 150), Port: 68}}, testPolicy, want{reason: ReasonNotForUs}},
		{"discover-on-4011", fixture(t, "uefi-x64-pxe-discover.bin"), Inbound{PortBootServer, bc}, testPolicy, want{reason: ReasonMessageType}},
		{"plain-inform", mutate(t, "nmap-plain-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeInform))
		}), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonNotPXE}},
		{"pxe-release", mutate(t, "bios-pxe-rom-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeRelease))
		}), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonMessageType}},
		{"pxe-decline", mutate(t, "bios-pxe-rom-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeDecline))
		}), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonMessageType}},
		{"pxe-bootp-no-type", mutate(t, "bios-pxe-rom-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.Options.Del(dhcpv4.OptionDHCPMessageType)
		}), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonMessageType}},
		{"own-packet", fixture(t, "bios-pxe-rom-discover.bin"), Inbound{PortDHCP, &net.UDPAddr{IP: testPolicy.ServerIP, Port: 68}}, testPolicy,
			want{reason: ReasonOwnPacket}},
		{"infiniband", mutate(t, "bios-pxe-rom-discover.bin", func(p *dhcpv4.DHCPv4) {
			p.HWType = iana.HWTypeInfiniband
			p.ClientHWAddr = nil
		}), Inbound{PortDHCP, bc}, testPolicy, want{reason: ReasonNotEthernet}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkReply(t, c.raw, Process(c.raw, c.in, c.policy), c.want)
		})
	}
}

// TestLongURL: a base URL that does not fit the 127-byte file field goes
// into option 67 alone (split per RFC 3396 when over 255 bytes).
func TestLongURL(t *testing.T) {
	p := testPolicy
	p.BaseURL = "http://pxe.example.test:8000/" + strings.Repeat("long-path/", 30)
	p.BaseURL = strings.TrimRight(p.BaseURL, "/")
	r := Process(fixture(t, "ipxe-bios-discover.bin"), Inbound{PortDHCP, nil}, p)
	if r.Reason != Answer {
		t.Fatalf("ignored: %s", r.Reason)
	}
	rep := parse(t, r.Reply)
	if rep.BootFileName != "" {
		t.Errorf("file field = %q, want empty for a name over 127 bytes", rep.BootFileName)
	}
	if got := string(rep.Options.Get(dhcpv4.OptionBootfileName)); got != p.BaseURL+"/chain" {
		t.Errorf("option 67 = %q, want %q", got, p.BaseURL+"/chain")
	}
}

func TestBadInput(t *testing.T) {
	good := fixture(t, "bios-pxe-rom-discover.bin")
	// Cut inside the options: option 60's length runs past the end.
	cut := append([]byte(nil), good[:len(good)-8]...)
	for len(cut) > 240 && cut[len(cut)-1] == 0 {
		cut = cut[:len(cut)-1]
	}
	noEnd := append([]byte(nil), good[:240]...)
	noEnd = append(noEnd, 53, 1, 1) // DISCOVER, then nothing: no End option
	// Option overload (52) pointing at file and sname that themselves
	// claim overload: a loop in parsers that follow 52. We do not
	// follow it; the packet parses and, being non-PXE, is ignored.
	loop := append([]byte(nil), good[:240]...)
	loop[108], loop[109], loop[110] = 52, 1, 3
	loop[44], loop[45], loop[46] = 52, 1, 3
	loop = append(loop, 52, 1, 3, 53, 1, 1, 255)
	wrongMagic := append([]byte(nil), good...)
	wrongMagic[236] = 0x42
	garbage := bytes.Repeat([]byte{0xff}, 400)
	cases := []struct {
		name   string
		raw    []byte
		reason Reason
		typ    string
	}{
		{"empty", nil, ReasonTruncated, "malformed"},
		{"short", good[:100], ReasonTruncated, "malformed"},
		{"header-only", good[:239], ReasonTruncated, "malformed"},
		{"oversized", append(append([]byte(nil), good...), make([]byte, 1500)...), ReasonOversized, "malformed"},
		{"wrong-magic", wrongMagic, ReasonBadMagic, "malformed"},
		{"garbage", garbage, ReasonBadMagic, "malformed"},
		{"option-past-end", cut, ReasonMalformed, "malformed"},
		{"no-end-option", noEnd, ReasonMalformed, "malformed"},
		{"overload-loop", loop, ReasonNotPXE, "discover"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Process(c.raw, Inbound{Port: PortDHCP}, testPolicy)
			if r.Reason != c.reason || r.Type != c.typ || r.Reply != nil {
				t.Fatalf("got reason %q type %q reply %v, want %q %q no reply", r.Reason, r.Type, r.Reply != nil, c.reason, c.typ)
			}
		})
	}
}

// TestLabelsBounded: every reason Process can return is in Reasons, and
// every type in PacketTypes, so metric labels stay a fixed set.
func TestLabelsBounded(t *testing.T) {
	known, types := labelSets()
	for mt := 0; mt < 256; mt++ {
		p := parse(t, fixture(t, "bios-pxe-rom-discover.bin"))
		p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionDHCPMessageType, []byte{byte(mt)}))
		r := Process(p.ToBytes(), Inbound{Port: PortDHCP}, testPolicy)
		if !types[r.Type] || !known[r.Reason] {
			t.Fatalf("message type %d: label type=%q reason=%q outside the fixed sets", mt, r.Type, r.Reason)
		}
	}
	labels := map[string]bool{}
	for _, l := range ArchLabels {
		labels[l] = true
	}
	for a := 0; a < 70000; a += 1 {
		if !labels[archLabel(iana.Arch(a))] {
			t.Fatalf("arch %d: label %q not in ArchLabels", a, archLabel(iana.Arch(a)))
		}
		if a > 300 {
			a += 997
		}
	}
}

// labelSets returns every reason Process may give (Answer included) and
// every packet type label, as sets.
func labelSets() (map[Reason]bool, map[string]bool) {
	known := map[Reason]bool{Answer: true}
	for _, r := range Reasons {
		known[r] = true
	}
	types := map[string]bool{}
	for _, ty := range PacketTypes {
		types[ty] = true
	}
	return known, types
}
