package dhcpproxy

import (
	"net"
	"testing"
)

// TestLoaderChoice: which file a UEFI machine is offered, by arch, by the
// global PXE_UEFI_LOADER and by the node's own loader (its profile's
// "loader"). BIOS and iPXE itself never change; a missing shim falls back
// to iPXE.
func TestLoaderChoice(t *testing.T) {
	bc := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	own := map[string]string{"52:54:00:aa:00:01": LoaderIPXE, "52:54:00:aa:00:02": LoaderShim}
	lookup := func(hw net.HardwareAddr) string { return own[hw.String()] }
	withMAC := func(raw []byte, mac string) []byte {
		out := append([]byte(nil), raw...)
		hw, _ := net.ParseMAC(mac)
		copy(out[28:34], hw)
		return out
	}
	pxe := fixture(t, "uefi-x64-pxe-discover.bin")
	http := fixture(t, "uefi-x64-http-discover.bin")
	bios := fixture(t, "bios-pxe-rom-discover.bin")
	ipxe := fixture(t, "ipxe-bios-discover.bin")
	const other, nodeIPXE, nodeShim = "52:54:00:aa:00:09", "52:54:00:aa:00:01", "52:54:00:aa:00:02"
	for _, tc := range []struct {
		name             string
		raw              []byte
		global, shim     string
		wantFile, loader string
	}{
		{"pxe/global ipxe", withMAC(pxe, other), LoaderIPXE, "shimx64.efi", "ipxe.efi", LoaderIPXE},
		{"pxe/global shim", withMAC(pxe, other), LoaderShim, "shimx64.efi", "shimx64.efi", LoaderShim},
		{"pxe/global shim, node ipxe", withMAC(pxe, nodeIPXE), LoaderShim, "shimx64.efi", "ipxe.efi", LoaderIPXE},
		{"pxe/global ipxe, node shim", withMAC(pxe, nodeShim), LoaderIPXE, "shimx64.efi", "shimx64.efi", LoaderShim},
		{"pxe/shim missing", withMAC(pxe, nodeShim), LoaderShim, "", "ipxe.efi", LoaderIPXE},
		{"http/global shim: HTTP Boot keeps iPXE", withMAC(http, other), LoaderShim, "shimx64.efi", "http://203.0.113.2:8000/ipxe/ipxe.efi", LoaderIPXE},
		{"http/node ipxe", withMAC(http, nodeIPXE), LoaderShim, "shimx64.efi", "http://203.0.113.2:8000/ipxe/ipxe.efi", LoaderIPXE},
		{"bios unchanged", withMAC(bios, nodeShim), LoaderShim, "shimx64.efi", "undionly.kpxe", LoaderIPXE},
		{"ipxe itself unchanged", withMAC(ipxe, nodeShim), LoaderShim, "shimx64.efi", "http://203.0.113.2:8000/chain", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy
			p.UEFILoader, p.ShimX64, p.LoaderFor = tc.global, tc.shim, lookup
			r := Process(tc.raw, Inbound{Port: PortDHCP, Src: bc}, p)
			if r.Reason != Answer {
				t.Fatalf("not answered: %s", r.Reason)
			}
			if r.Boot.File != tc.wantFile || r.Boot.Loader != tc.loader {
				t.Errorf("file %q loader %q, want %q %q", r.Boot.File, r.Boot.Loader, tc.wantFile, tc.loader)
			}
			if rep := parse(t, r.Reply); tc.wantFile != "" && len(tc.wantFile) < 128 && rep.BootFileName != tc.wantFile {
				t.Errorf("reply file field %q, want %q", rep.BootFileName, tc.wantFile)
			}
		})
	}
}
