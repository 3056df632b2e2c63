//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// Markers the boot targets write to the first serial port. The harness waits
// for them in the serial log; each scenario knows which one it expects.
const (
	markerInstaller = "PXE-PILOT-INSTALLER-BOOTED"
	markerLocalDisk = "LOCAL-DISK-BOOTED"
)

// mbrBootSector returns a 512-byte MBR whose code writes
// "\r\nLOCAL-DISK-BOOTED\r\n" to COM1 and halts. SeaBIOS (or iPXE's
// `sanboot --drive 0x80`) loads it at 0000:7C00 and jumps to it in real
// mode. The UART needs no set-up: QEMU's 16550 takes bytes written to THR
// whatever the divisor, and SeaBIOS has already initialised it for sercon.
// Hand-assembled (16-bit):
//
//	00 FA          cli
//	01 FC          cld
//	02 31 C0       xor  ax, ax
//	04 8E D8       mov  ds, ax
//	06 BE 17 7C    mov  si, 0x7C17        ; msg
//	09 BA F8 03    mov  dx, 0x3F8         ; COM1 THR
//	0C AC          lodsb                  ; next:
//	0D 84 C0       test al, al
//	0F 74 03       jz   done
//	11 EE          out  dx, al
//	12 EB F8       jmp  next
//	14 F4          hlt                    ; done:
//	15 EB FD       jmp  done
//	17 ...         msg, NUL-terminated
func mbrBootSector() []byte {
	code := []byte{
		0xFA, 0xFC, 0x31, 0xC0, 0x8E, 0xD8,
		0xBE, 0x17, 0x7C,
		0xBA, 0xF8, 0x03,
		0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8,
		0xF4, 0xEB, 0xFD,
	}
	sector := make([]byte, 512)
	copy(sector, code)
	copy(sector[len(code):], "\r\n"+markerLocalDisk+"\r\n\x00")
	sector[510], sector[511] = 0x55, 0xAA
	return sector
}

// writeBIOSDisk writes a 1 MiB raw disk whose MBR is mbrBootSector.
func writeBIOSDisk(path string) error {
	img := make([]byte, 1<<20)
	copy(img, mbrBootSector())
	return os.WriteFile(path, img, 0o644)
}

// efiMarkerApp returns a minimal PE32+ EFI application (x86_64) that prints
// "\r\nLOCAL-DISK-BOOTED\r\n" through SystemTable->ConOut and then halts.
// OVMF mirrors ConOut onto the serial port, so the marker lands in the
// serial log like the BIOS one. No toolchain is needed: one .text section,
// position independent (RIP-relative), no relocations, subsystem 10.
//
//	48 83 EC 28           sub  rsp, 0x28             ; shadow space + align
//	48 8B 4A 40           mov  rcx, [rdx+0x40]       ; SystemTable->ConOut
//	48 8D 15 11 00 00 00  lea  rdx, [rip+0x11]       ; msg (offset 0x20)
//	FF 51 08              call [rcx+8]               ; ConOut->OutputString
//	F4                    hlt                        ; spin:
//	EB FD                 jmp  spin
func efiMarkerApp() []byte {
	const (
		fileAlign = 0x200
		sectAlign = 0x1000
		textRVA   = 0x1000
	)
	code := []byte{
		0x48, 0x83, 0xEC, 0x28,
		0x48, 0x8B, 0x4A, 0x40,
		0x48, 0x8D, 0x15, 0x11, 0x00, 0x00, 0x00,
		0xFF, 0x51, 0x08,
		0xF4, 0xEB, 0xFD,
	}
	text := make([]byte, fileAlign)
	copy(text, code)
	msg := utf16.Encode([]rune("\r\n" + markerLocalDisk + "\r\n\x00"))
	for i, c := range msg {
		binary.LittleEndian.PutUint16(text[0x20+2*i:], c)
	}

	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	// DOS header: only e_magic and e_lfanew matter.
	dos := make([]byte, 0x40)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3C:], 0x40)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	// COFF file header.
	le(uint16(0x8664)) // Machine: x86_64
	le(uint16(1))      // NumberOfSections
	le(uint32(0))      // TimeDateStamp
	le(uint32(0))      // PointerToSymbolTable
	le(uint32(0))      // NumberOfSymbols
	le(uint16(0xF0))   // SizeOfOptionalHeader (PE32+, 16 directories)
	le(uint16(0x0022)) // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE; relocs not stripped: load anywhere
	// Optional header, PE32+.
	le(uint16(0x20B))                     // Magic
	le([2]uint8{1, 0})                    // linker version
	le(uint32(fileAlign))                 // SizeOfCode
	le(uint32(0))                         // SizeOfInitializedData
	le(uint32(0))                         // SizeOfUninitializedData
	le(uint32(textRVA))                   // AddressOfEntryPoint
	le(uint32(textRVA))                   // BaseOfCode
	le(uint64(0x10000000))                // ImageBase
	le(uint32(sectAlign))                 // SectionAlignment
	le(uint32(fileAlign))                 // FileAlignment
	le([6]uint16{})                       // OS, image, subsystem versions
	le(uint32(0))                         // Win32VersionValue
	le(uint32(textRVA + sectAlign))       // SizeOfImage
	le(uint32(fileAlign))                 // SizeOfHeaders
	le(uint32(0))                         // CheckSum
	le(uint16(10))                        // Subsystem: EFI application
	le(uint16(0))                         // DllCharacteristics
	le([4]uint64{0x10000, 0x10000, 0, 0}) // stack/heap reserve/commit
	le(uint32(0))                         // LoaderFlags
	le(uint32(16))                        // NumberOfRvaAndSizes
	le([16][2]uint32{})                   // data directories: none
	// Section table.
	b.WriteString(".text\x00\x00\x00")
	le(uint32(fileAlign))  // VirtualSize
	le(uint32(textRVA))    // VirtualAddress
	le(uint32(fileAlign))  // SizeOfRawData
	le(uint32(fileAlign))  // PointerToRawData
	le(uint32(0))          // PointerToRelocations
	le(uint32(0))          // PointerToLinenumbers
	le(uint16(0))          // NumberOfRelocations
	le(uint16(0))          // NumberOfLinenumbers
	le(uint32(0x60000020)) // CODE | EXECUTE | READ
	hdr := make([]byte, fileAlign)
	copy(hdr, b.Bytes())
	return append(hdr, text...)
}

// writeUEFIDiskDir lays out an ESP tree (\EFI\BOOT\BOOTX64.EFI) that QEMU
// presents as a FAT disk through its vvfat driver (-drive file=fat:DIR).
// OVMF's boot manager finds the removable-media path on it, so no GPT, no
// mkfs and no mtools are needed.
func writeUEFIDiskDir(dir string) error {
	boot := filepath.Join(dir, "EFI", "BOOT")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(boot, "BOOTX64.EFI"), efiMarkerApp(), 0o644)
}

// installerInit is /init of the fake installer: it proves the kernel and
// initrd the appliance pointed at were booted, and shows the command line
// (autoinstall URL with the MAC substituted) on the serial port.
//
// With pxe_report=<url> on its command line (a profile's template, e.g.
// pxe_report={{.failed_url}}) it also acts as an installer that reports:
// it loads the e1000 driver (the BIOS VMs' NIC; Debian builds it as a
// module), brings eth0 up with udhcpc, POSTs to the URL with busybox wget
// and prints the outcome before END-OF-INSTALLER, so the harness kills the
// VM only after the call-back went out.
const installerInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /dev /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t sysfs sysfs /sys
# The firmware's SecureBoot variable (EFI global variable GUID): 4 bytes of
# attributes, then 1 = enforced. "none" on BIOS.
sb=none
if [ -d /sys/firmware/efi ]; then
  /bin/busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
  sb=$(/bin/busybox od -An -tu1 -j4 -N1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d0-aa4d-00e098032b8c 2>/dev/null | /bin/busybox tr -d ' ')
fi
{
  echo
  echo ` + markerInstaller + `
  echo "SECUREBOOT: ${sb:-unreadable}"
  echo "KERNEL-SAYS: $(/bin/busybox dmesg | /bin/busybox grep -i 'secure boot' | /bin/busybox tr '\n' ' ')"
  echo "CMDLINE: $(/bin/busybox cat /proc/cmdline)"
} > /dev/ttyS0
report=
for arg in $(/bin/busybox cat /proc/cmdline); do
  case "$arg" in pxe_report=*) report="${arg#pxe_report=}" ;; esac
done
if [ -n "$report" ]; then
  exec > /dev/ttyS0 2>&1
  /bin/busybox mount -t sysfs sysfs /sys
  /bin/busybox insmod /lib/modules/e1000.ko
  /bin/busybox ip link set lo up
  /bin/busybox ip link set eth0 up
  /bin/busybox udhcpc -i eth0 -n -q -t 20 -T 1 -s /bin/udhcpc.script
  if /bin/busybox wget -q -O - --post-data 'reporter=e2e-busybox&reason=` + reportedReason + `' "$report"; then
    echo
    echo PXE-REPORT-SENT
  else
    echo PXE-REPORT-FAILED
  fi
fi
echo END-OF-INSTALLER > /dev/ttyS0
/bin/busybox poweroff -f
`

// reportedReason is the failure reason the reporting fake installer sends.
const reportedReason = "e2e-installer-says-disk-missing"

// udhcpcScript configures the lease udhcpc got (busybox ships none).
const udhcpcScript = `#!/bin/busybox sh
case "$1" in
deconfig) /bin/busybox ip link set "$interface" up ;;
bound|renew) /bin/busybox ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up ;;
esac
`

// e1000Module is the BIOS VMs' NIC driver for the running kernel's version
// (the one findKernel picked), or "" when the kernel has none.
func e1000Module(kernel string) string {
	ver := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	m := filepath.Join("/lib/modules", ver, "kernel/drivers/net/ethernet/intel/e1000/e1000.ko")
	if _, err := os.Stat(m); err != nil {
		return ""
	}
	return m
}

// buildInstallerInitrd writes a newc cpio (via busybox-static and cpio, the
// Debian tools) holding /init, /bin/busybox, the udhcpc script and, when
// the kernel has it, the e1000 driver.
func buildInstallerInitrd(workDir, kernel, out string) error {
	root := filepath.Join(workDir, "initrd-root")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "lib", "modules"), 0o755); err != nil {
		return err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("reading /bin/busybox (package busybox-static): %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(installerInit), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "udhcpc.script"), []byte(udhcpcScript), 0o755); err != nil {
		return err
	}
	list := "init\nbin\nbin/busybox\nbin/udhcpc.script\nlib\nlib/modules\n"
	if m := e1000Module(kernel); m != "" {
		if err := copyFile(m, filepath.Join(root, "lib", "modules", "e1000.ko")); err != nil {
			return err
		}
		list += "lib/modules/e1000.ko\n"
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = root
	cmd.Stdin = bytes.NewBufferString(list)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio (package cpio): %w: %s", err, stderr.String())
	}
	return f.Close()
}

// writeSecureBootDiskDir lays out an ESP that boots under Secure Boot, made
// only of Debian's signed files: \EFI\BOOT\BOOTX64.EFI is the
// Microsoft-signed shim, grubx64.efi next to it Debian's signed disk GRUB,
// and its grub.cfg (a configuration needs no signature) prints the disk
// marker. The unsigned marker application of writeUEFIDiskDir is refused
// under Secure Boot ("Access Denied").
func writeSecureBootDiskDir(dir string) error {
	boot := filepath.Join(dir, "EFI", "BOOT")
	deb := filepath.Join(dir, "EFI", "debian")
	for _, d := range []string{boot, deb} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for src, dst := range map[string]string{
		"/usr/lib/shim/shimx64.efi.signed":                   filepath.Join(boot, "BOOTX64.EFI"),
		"/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": filepath.Join(boot, "grubx64.efi"),
	} {
		if err := copyFile(src, dst); err != nil {
			return err
		}
	}
	cfg := []byte("echo " + markerLocalDisk + "\nsleep 60\n")
	for _, d := range []string{boot, deb} {
		if err := os.WriteFile(filepath.Join(d, "grub.cfg"), cfg, 0o644); err != nil {
			return err
		}
	}
	return nil
}
