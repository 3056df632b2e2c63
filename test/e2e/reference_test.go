//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestLocalDiskTargets proves the boot targets themselves, with no network:
// SeaBIOS runs the MBR from the BIOS disk and OVMF runs BOOTX64.EFI from the
// FAT disk, each printing the local-disk marker. Without this, a scenario
// that "booted locally" could be a broken disk image mistaken for a hang.
func TestLocalDiskTargets(t *testing.T) {
	for _, fw := range []firmware{bios, uefi} {
		t.Run(string(fw), func(t *testing.T) {
			spec := vmSpec{name: "disk-only-" + string(fw), fw: fw, noNIC: true, timeout: timeoutFor(fw)}
			s.expectBoot(t, spec, markerLocalDisk)
		})
	}
}

// TestReference is the dnsmasq-only baseline: router dnsmasq for addresses,
// a second dnsmasq on the appliance's address doing ProxyDHCP + TFTP, and a
// static iPXE script from the test's HTTP server. It proves the harness
// (network, firmware, kernel, initrd, markers) independently of PXE Pilot
// and gives the reference boot time.
func TestReference(t *testing.T) {
	if err := s.setRouter(routerPlain); err != nil {
		t.Fatal(err)
	}
	tftp := filepath.Join(s.work, "reference-tftp")
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"undionly.kpxe", "ipxe.efi"} {
		if err := copyFile("/usr/lib/ipxe/"+f, filepath.Join(tftp, f)); err != nil {
			t.Fatal(err)
		}
	}
	proxy, err := startDnsmasq(s.net.app, "reference-proxy", s.artifacts, referenceProxyConf(tftp))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.stop(syscall.SIGTERM, 5*time.Second)
	s.files.requests()
	spec := vmSpec{name: "reference-bios-installer", fw: bios, mac: macFor(0x01, bios), timeout: timeoutFor(bios)}
	res := scenarioBoot(t, nil, nil, spec, markerInstaller, proxy)
	checkInstallerCmdline(t, res, spec.mac)
	t.Logf("file server saw: %v", s.files.requests())
}
