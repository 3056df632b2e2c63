//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type firmware string

const (
	bios firmware = "bios"
	uefi firmware = "uefi"
)

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// Microsoft's keys enrolled, Secure Boot enforced (Debian's ovmf).
	ovmfCodeSB = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	ovmfVarsSB = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// vmSpec is one power-on of a fresh VM.
type vmSpec struct {
	name    string // artefact prefix, unique per boot
	fw      firmware
	mac     string
	timeout time.Duration
	noNIC   bool // no network card at all: the disk target alone
	memMiB  int  // guest memory; 0 means 512
	// until, when set, is asked on every poll with the serial log so far;
	// a non-empty answer is the marker reached (e.g. a real installer's
	// call-back seen by the appliance) and ends the boot there.
	until func(serial string) string
	// secureBoot (UEFI only): OVMF with Microsoft's keys and Secure Boot
	// enforced, and a fresh copy of its variable store.
	secureBoot bool
	// stopOn: more strings that end the boot like a marker (the first
	// one seen becomes res.marker), for boots that can never reach a
	// marker, e.g. a loader refused by Secure Boot.
	stopOn []string
}

// vmResult is what the serial port showed.
type vmResult struct {
	marker  string        // markerInstaller, markerLocalDisk, or "" on timeout/exit
	elapsed time.Duration // power-on (QEMU start) to the marker on serial
	serial  string        // whole serial log
	cmdline string        // the installer's /proc/cmdline, when it booted
	exited  string        // non-empty when QEMU exited before a marker
}

// bootVM powers on a VM attached to a new tap on the LAN bridge and watches
// its serial log for a marker. The VM is killed by PID as soon as the
// marker (and, for the installer, its command line) is on the serial port,
// or at the timeout. QEMU always runs under TCG: /dev/kvm on the CI
// machines is nested and kills SeaBIOS+iPXE ("KVM internal error") and OVMF.
func (s *suite) bootVM(spec vmSpec) (vmResult, error) {
	var res vmResult
	dir := s.artifacts
	serialPath := filepath.Join(dir, spec.name+".serial.log")
	mem := 512
	if spec.memMiB > 0 {
		mem = spec.memMiB
	}
	argv := []string{
		"qemu-system-x86_64", "-accel", "tcg", "-m", strconv.Itoa(mem), "-smp", "1",
		"-display", "none", "-vga", "none", "-monitor", "none",
		"-serial", "file:" + serialPath,
		"-no-reboot",
	}
	nic := func(dev string) []string { return []string{"-device", dev} }
	if spec.noNIC {
		nic = func(string) []string { return []string{"-nic", "none"} }
	} else {
		tap, err := s.net.addTap()
		if err != nil {
			return res, err
		}
		defer s.net.delTap(tap)
		argv = append(argv, "-netdev", "tap,id=n0,ifname="+tap+",script=no,downscript=no")
	}
	switch spec.fw {
	case bios:
		// SeaBIOS copies its console, and so iPXE's, to COM1 only when
		// etc/sercon-port is a binary little-endian integer; a string is
		// silently ignored. The e1000's option ROM (ipxe-qemu) is iPXE.
		argv = append(argv,
			"-machine", "pc",
			"-fw_cfg", "name=etc/sercon-port,file="+s.serconFile,
		)
		argv = append(argv, nic("e1000,netdev=n0,mac="+spec.mac+",bootindex=1")...)
		argv = append(argv,
			"-drive", "file="+s.biosDisk+",format=raw,if=none,id=d0,snapshot=on",
			"-device", "ide-hd,drive=d0,bootindex=2",
		)
	case uefi:
		// A fresh copy of the variable store per VM: OVMF records boot
		// options there, and a stale one changes the boot order.
		vars := filepath.Join(dir, spec.name+".OVMF_VARS.fd")
		code, varsSrc, disk := ovmfCode, ovmfVars, s.uefiDisk
		if spec.secureBoot {
			code, varsSrc, disk = ovmfCodeSB, ovmfVarsSB, s.sbDisk
		}
		if err := copyFile(varsSrc, vars); err != nil {
			return res, err
		}
		defer os.Remove(vars)
		// romfile= (empty) keeps iPXE's EFI ROM off the virtio NIC, so the
		// firmware is EDK2's own PXE client that must fetch ipxe.efi over
		// TFTP. IPv6 PXE off, or DHCPv6 time-outs come first.
		argv = append(argv,
			"-machine", "q35",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no",
			"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no",
		)
		argv = append(argv, nic("virtio-net-pci,netdev=n0,romfile=,mac="+spec.mac+",bootindex=1")...)
		argv = append(argv,
			"-drive", "file=fat:ro:"+disk+",format=raw,if=none,id=d0,readonly=on",
			"-device", "virtio-blk-pci,drive=d0,bootindex=2",
		)
	default:
		return res, fmt.Errorf("unknown firmware %q", spec.fw)
	}

	q, err := startIn(s.net.lan, "qemu", filepath.Join(dir, spec.name+".qemu.log"), nil, argv...)
	if err != nil {
		return res, err
	}
	start := time.Now()
	defer q.stop(syscall.SIGKILL, 5*time.Second)

	deadline := start.Add(spec.timeout)
	for {
		b, _ := os.ReadFile(serialPath)
		serial := string(b)
		if res.marker == "" && spec.until != nil {
			if m := spec.until(serial); m != "" {
				res.marker, res.elapsed = m, time.Since(start)
			}
		}
		if res.marker == "" {
			switch {
			case strings.Contains(serial, markerInstaller):
				res.marker, res.elapsed = markerInstaller, time.Since(start)
			case strings.Contains(serial, markerLocalDisk):
				res.marker, res.elapsed = markerLocalDisk, time.Since(start)
			}
			for _, m := range spec.stopOn {
				if res.marker == "" && strings.Contains(cleanSerial(serial), m) {
					res.marker, res.elapsed = m, time.Since(start)
				}
			}
		}
		// The installer prints its command line and then powers off; wait
		// for the whole block (or the power-off) before judging.
		done := (res.marker != "" && res.marker != markerInstaller) || (res.marker != "" && spec.until != nil) ||
			(res.marker == markerInstaller && strings.Contains(serial, "END-OF-INSTALLER"))
		if done || q.exited() || time.Now().After(deadline) {
			if !done && res.marker == "" {
				if q.exited() {
					res.exited = fmt.Sprintf("QEMU exited (%v) after %s: %s", q.exitErr(), time.Since(start).Round(time.Millisecond), tail(q.log(), 5))
				} else {
					res.exited = fmt.Sprintf("no marker within %s", spec.timeout)
				}
			}
			q.stop(syscall.SIGKILL, 5*time.Second)
			b, _ = os.ReadFile(serialPath)
			res.serial = string(b)
			res.cmdline = installerCmdline(res.serial)
			return res, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// installerCmdline extracts the "CMDLINE: ..." line the fake installer
// printed.
func installerCmdline(serial string) string {
	for _, line := range strings.Split(serial, "\n") {
		if i := strings.Index(line, "CMDLINE: "); i >= 0 {
			return strings.TrimSpace(line[i+len("CMDLINE: "):])
		}
	}
	return ""
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
