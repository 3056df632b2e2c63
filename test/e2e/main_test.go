//go:build e2e

// Package e2e boots real firmware against PXE Pilot: SeaBIOS with QEMU's
// iPXE NIC ROM, and OVMF with EDK2's own PXE client, on a private bridge
// made of network namespaces, with dnsmasq as the LAN's router. Each
// scenario powers on a fresh VM and waits for one of two markers on its
// serial port: the fake installer's (kernel + initrd the appliance chose,
// with its command line) or the local disk's (an MBR boot sector for BIOS,
// a hand-made EFI application on a FAT disk for UEFI).
//
// Run as root: go test -tags e2e -v -timeout 15m ./test/e2e/
package e2e

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// suite is the shared machinery: one network, one set of boot targets, one
// file server, and the router, for every test in the package.
type suite struct {
	net        *network
	artifacts  string
	work       string
	biosDisk   string
	uefiDisk   string
	sbDisk     string // ESP of Debian's signed shim + GRUB (Secure Boot)
	serconFile string
	kernel     string
	initrd     string
	files      *fileServer

	router     *proc
	routerMode routerMode
	routerN    int

	mu      sync.Mutex
	timings []timing
}

type timing struct {
	scenario string
	fw       firmware
	result   string
	elapsed  time.Duration
}

var s *suite

// prerequisite is one thing the suite needs and the Debian package that
// brings it, so a missing one fails with a message naming what to install.
type prerequisite struct {
	what, pkg string
	ok        func() bool
}

func prerequisites() []string {
	onPath := func(bin string) func() bool {
		return func() bool { _, err := exec.LookPath(bin); return err == nil }
	}
	exists := func(p string) func() bool {
		return func() bool { _, err := os.Stat(p); return err == nil }
	}
	reqs := []prerequisite{
		{"qemu-system-x86_64", "qemu-system-x86", onPath("qemu-system-x86_64")},
		{"/usr/lib/ipxe/qemu/efi-e1000.rom (iPXE NIC ROM for QEMU)", "ipxe-qemu", exists("/usr/lib/ipxe/qemu/efi-e1000.rom")},
		{ovmfCode, "ovmf", exists(ovmfCode)},
		{ovmfVars, "ovmf", exists(ovmfVars)},
		{ovmfCodeSB + " (Secure Boot, Microsoft keys)", "ovmf", exists(ovmfCodeSB)},
		{ovmfVarsSB, "ovmf", exists(ovmfVarsSB)},
		{"/usr/lib/shim/shimx64.efi.signed", "shim-signed", exists("/usr/lib/shim/shimx64.efi.signed")},
		{"/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed", "grub-efi-amd64-signed", exists("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")},
		{"/usr/lib/ipxe/undionly.kpxe", "ipxe", exists("/usr/lib/ipxe/undionly.kpxe")},
		{"dnsmasq", "dnsmasq", onPath("dnsmasq")},
		{"tcpdump", "tcpdump", onPath("tcpdump")},
		{"ip", "iproute2", onPath("ip")},
		{"cpio", "cpio", onPath("cpio")},
		{"/bin/busybox (statically linked)", "busybox-static", staticBusybox},
		{"/boot/vmlinuz-* (an EFI-stub kernel)", "linux-image-amd64", func() bool { return findKernel() != "" }},
		{"the e1000 module of that kernel (the reporting fake installer's NIC)", "linux-image-amd64", func() bool { return e1000Module(findKernel()) != "" }},
		{debianInstallerDir + "/{linux,initrd.gz} (Debian's d-i netboot)", "debian-installer-12-netboot-amd64", func() bool {
			return exists(filepath.Join(debianInstallerDir, "linux"))() && exists(filepath.Join(debianInstallerDir, "initrd.gz"))()
		}},
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root privileges (network namespaces, taps, ports 67/69): run the suite as root")
	}
	for _, r := range reqs {
		if !r.ok() {
			missing = append(missing, fmt.Sprintf("%s: install the Debian package %q", r.what, r.pkg))
		}
	}
	return missing
}

// staticBusybox: the initrd has no libc, so a dynamic busybox would leave
// the installer VM with "Kernel panic - not syncing: No working init".
func staticBusybox() bool {
	f, err := elf.Open("/bin/busybox")
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

func findKernel() string {
	m, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(m)
	for i := len(m) - 1; i >= 0; i-- {
		if f, err := os.Open(m[i]); err == nil {
			f.Close()
			return m[i]
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	flag.Parse()
	// Fuzzing the capture reader needs no VMs, root or network: skip the
	// suite set-up in the fuzz coordinator and its workers.
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	if missing := prerequisites(); len(missing) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: the e2e suite cannot run on this machine; missing:")
		for _, p := range missing {
			fmt.Fprintln(os.Stderr, "  - "+p)
		}
		fmt.Fprintln(os.Stderr, "CI installs: apt-get install -y qemu-system-x86 ipxe-qemu ipxe ovmf dnsmasq tcpdump iproute2 cpio busybox-static linux-image-amd64 debian-installer-12-netboot-amd64 shim-signed grub-efi-amd64-signed")
		os.Exit(1)
	}
	var err error
	s, err = setupSuite()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: setting up the e2e network:", err)
		if s != nil {
			s.close()
		}
		os.Exit(1)
	}
	code := m.Run()
	s.close()
	s.printTimings()
	fmt.Println("e2e artefacts (serial logs, appliance logs, pcaps):", s.artifacts)
	os.Exit(code)
}

func setupSuite() (*suite, error) {
	const base = "ppe2e"
	removeStaleNamespaces(base)
	st := &suite{kernel: findKernel()}
	art := os.Getenv("E2E_ARTIFACTS")
	if art == "" {
		art = filepath.Join("artifacts", time.Now().UTC().Format("20060102-150405"))
	}
	art, _ = filepath.Abs(art)
	if err := os.MkdirAll(art, 0o755); err != nil {
		return nil, err
	}
	st.artifacts = art
	work, err := os.MkdirTemp("", "pxe-pilot-e2e-")
	if err != nil {
		return nil, err
	}
	st.work = work
	st.biosDisk = filepath.Join(work, "bios-disk.img")
	st.uefiDisk = filepath.Join(work, "esp")
	st.serconFile = filepath.Join(work, "sercon-port.bin")
	st.initrd = filepath.Join(work, "installer-initrd.cpio")
	if err := writeBIOSDisk(st.biosDisk); err != nil {
		return st, err
	}
	if err := writeUEFIDiskDir(st.uefiDisk); err != nil {
		return st, err
	}
	st.sbDisk = filepath.Join(work, "esp-secureboot")
	if err := writeSecureBootDiskDir(st.sbDisk); err != nil {
		return st, err
	}
	if err := os.WriteFile(st.serconFile, []byte{0xf8, 0x03}, 0o644); err != nil {
		return st, err
	}
	if err := buildInstallerInitrd(work, st.kernel, st.initrd); err != nil {
		return st, err
	}
	n, err := newNetwork(fmt.Sprintf("%s-%d", base, os.Getpid()))
	if err != nil {
		return st, err
	}
	st.net = n
	st.files, err = newFileServer(n.files, st.kernel, st.initrd)
	if err != nil {
		return st, err
	}
	st.routerMode = -1
	return st, nil
}

func (st *suite) close() {
	if st.router != nil {
		st.router.stop(syscall.SIGTERM, 5*time.Second)
		st.router = nil
	}
	if st.files != nil {
		st.files.close()
	}
	if st.net != nil {
		st.net.close()
	}
	if st.work != "" {
		os.RemoveAll(st.work)
	}
}

// setRouter (re)starts the router dnsmasq in the given mode.
func (st *suite) setRouter(mode routerMode) error {
	if st.router != nil && st.routerMode == mode && !st.router.exited() {
		return nil
	}
	if st.router != nil {
		st.router.stop(syscall.SIGTERM, 5*time.Second)
	}
	st.routerN++
	p, err := startDnsmasq(st.net.rtr, fmt.Sprintf("router-%d-%s", st.routerN, mode), st.artifacts, routerConf(st.work, mode))
	if err != nil {
		return err
	}
	st.router, st.routerMode = p, mode
	return nil
}

func (st *suite) record(scenario string, fw firmware, res vmResult) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := res.marker
	if r == "" {
		r = "FAILED: " + res.exited
	}
	st.timings = append(st.timings, timing{scenario, fw, r, res.elapsed})
}

func (st *suite) printTimings() {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-52s %-5s %-28s %s\n", "scenario boot", "fw", "result", "power-on to marker")
	for _, t := range st.timings {
		el := "-"
		if t.elapsed > 0 {
			el = fmt.Sprintf("%.1f s", t.elapsed.Seconds())
		}
		fmt.Fprintf(&b, "%-52s %-5s %-28s %s\n", t.scenario, t.fw, t.result, el)
	}
	fmt.Print(b.String())
	_ = os.WriteFile(filepath.Join(st.artifacts, "timings.txt"), []byte(b.String()), 0o644)
}

// expectBoot boots one VM and fails the test unless the wanted marker
// shows; on failure it prints the serial tail and the given processes' logs.
func (st *suite) expectBoot(t *testing.T, spec vmSpec, want string, logs ...*proc) vmResult {
	t.Helper()
	res, err := st.bootVM(spec)
	if err != nil {
		t.Fatalf("%s: could not start the VM: %v", spec.name, err)
	}
	st.record(spec.name, spec.fw, res)
	st.judge(t, spec, res, want, logs...)
	return res
}

// judge fails the test with the evidence when the marker is not the wanted
// one: serial log tail, then each process's log tail, then file paths.
func (st *suite) judge(t *testing.T, spec vmSpec, res vmResult, want string, logs ...*proc) {
	t.Helper()
	if res.marker == want {
		t.Logf("%s: %s after %.1f s (power-on to marker)", spec.name, res.marker, res.elapsed.Seconds())
		return
	}
	got := res.marker
	if got == "" {
		got = res.exited
	}
	msg := fmt.Sprintf("%s (%s, MAC %s): want %s, got %s\n--- serial log tail (%s) ---\n%s",
		spec.name, spec.fw, spec.mac, want, got, filepath.Join(st.artifacts, spec.name+".serial.log"), tail(cleanSerial(res.serial), 40))
	for _, p := range logs {
		if p != nil {
			msg += fmt.Sprintf("\n--- %s log tail (%s) ---\n%s", p.name, p.logPath, tail(p.log(), 30))
		}
	}
	t.Fatal(msg)
}

// cleanSerial drops the ANSI escapes SeaBIOS/iPXE/OVMF paint the console
// with, so failure output is readable.
func cleanSerial(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x1b {
			j := i + 1
			if j < len(s) && s[j] == '[' {
				j++
				for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
					j++
				}
			}
			i = j
			continue
		}
		if c == '\r' {
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// elapsedOf is the power-on-to-marker time of a scenario boot recorded in
// this run (0 if it did not run or failed).
func (st *suite) elapsedOf(scenario string) time.Duration {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, t := range st.timings {
		if t.scenario == scenario && !strings.HasPrefix(t.result, "FAILED") {
			return t.elapsed
		}
	}
	return 0
}
