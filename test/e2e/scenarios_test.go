//go:build e2e

package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// observed is what the harness saw with its own eyes during one appliance
// run (serial logs and captures), to hold the appliance's /metrics against.
type observed struct {
	reinstallScripts int            // "reinstalls now" echoed by iPXE
	localScripts     int            // "boots from local disk" echoed by iPXE
	proxyReplies     int            // BOOTP replies from the appliance in the captures
	rrq              map[string]int // TFTP read requests to the appliance
}

func newObserved() *observed { return &observed{rrq: map[string]int{}} }

func (o *observed) addSerial(serial string) {
	clean := cleanSerial(serial)
	o.reinstallScripts += strings.Count(clean, "reinstalls now")
	o.localScripts += strings.Count(clean, "boots from local disk")
}

func (o *observed) addCapture(t *testing.T, pcap string) captureFacts {
	t.Helper()
	f, err := analyseCapture(pcap)
	if err != nil {
		t.Errorf("reading capture %s: %v", pcap, err)
		return f
	}
	o.proxyReplies += f.proxyReplies
	for k, v := range f.rrq {
		o.rrq[k] += v
	}
	return f
}

// scenario boots one VM with a capture running and returns the result.
func scenarioBoot(t *testing.T, a *appliance, obs *observed, spec vmSpec, want string, extraLogs ...*proc) vmResult {
	t.Helper()
	pcap := filepath.Join(s.artifacts, spec.name+".pcap")
	c, err := startCapture(s.net.lan, pcap, filepath.Join(s.artifacts, spec.name+".tcpdump.log"))
	if err != nil {
		t.Fatal(err)
	}
	var logs []*proc
	if a != nil {
		logs = append(logs, a.p)
	}
	logs = append(logs, extraLogs...)
	logs = append(logs, s.router)
	res, berr := s.bootVM(spec)
	stopCapture(c)
	if obs != nil {
		obs.addSerial(res.serial)
		obs.addCapture(t, pcap)
	}
	if berr != nil {
		t.Fatalf("%s: could not start the VM: %v", spec.name, berr)
	}
	s.record(spec.name, spec.fw, res)
	t.Logf("%s: capture %s", spec.name, pcap)
	s.judge(t, spec, res, want, logs...)
	return res
}

// checkInstallerCmdline: the autoinstall URL with the MAC substituted.
func checkInstallerCmdline(t *testing.T, res vmResult, mac string) {
	t.Helper()
	want := "ds=nocloud-net;s=http://" + filesIP + ":" + filesPort + "/autoinstall/" + mac + "/"
	if !strings.Contains(res.cmdline, want) {
		t.Errorf("installer command line %q lacks %q", res.cmdline, want)
	}
	if !strings.Contains(res.cmdline, "console=ttyS0") {
		t.Errorf("installer command line %q lacks PXE_KERNEL_ARGS (console=ttyS0)", res.cmdline)
	}
}

// wantLocalScript: the disk marker alone could come from firmware that
// never reached the appliance (no offer, "Nothing to boot", next device).
// The local-boot script's echo line (assets/scripts/local.ipxe.tmpl) proves
// the disk was reached because the appliance said so.
func wantLocalScript(t *testing.T, res vmResult, mac string) {
	t.Helper()
	if want := mac + " boots from local disk"; !strings.Contains(cleanSerial(res.serial), want) {
		t.Errorf("the disk booted, but not through the appliance: serial lacks %q (fall-through?)", want)
	}
}

func setReinstall(t *testing.T, a *appliance, mac string) {
	t.Helper()
	code, body, err := a.do("POST", "/nodes/"+mac+"/reinstall")
	if err != nil || code/100 != 2 {
		t.Fatalf("POST /nodes/%s/reinstall: %d %v %s", mac, code, err, body)
	}
}

// node fetches GET /nodes/<mac> as a generic JSON object.
func node(t *testing.T, a *appliance, mac string) map[string]any {
	t.Helper()
	code, body, err := a.do("GET", "/nodes/"+mac)
	if err != nil || code != 200 {
		t.Fatalf("GET /nodes/%s: %d %v %s", mac, code, err, body)
	}
	var n map[string]any
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatalf("GET /nodes/%s: not a JSON object: %v: %s", mac, err, body)
	}
	return n
}

func wantReinstallFlag(t *testing.T, a *appliance, mac string, want bool) {
	t.Helper()
	if got, ok := node(t, a, mac)["reinstall"].(bool); !ok || got != want {
		t.Errorf("GET /nodes/%s: reinstall = %v (present %v), want %v", mac, got, ok, want)
	}
}

// checkMetrics holds /metrics against what the harness observed.
func checkMetrics(t *testing.T, a *appliance, obs *observed) {
	t.Helper()
	m, err := a.metrics()
	if err != nil {
		t.Fatalf("%s /metrics: %v", a.name, err)
	}
	eq := func(what string, got float64, want int) {
		if int(got) != want {
			t.Errorf("%s: %s = %g, but the harness observed %d", a.name, what, got, want)
		}
	}
	eq(`pxe_pilot_boot_requests_total{decision="reinstall"}`, m.sum("pxe_pilot_boot_requests_total", `decision="reinstall"`), obs.reinstallScripts)
	eq(`pxe_pilot_boot_requests_total{decision="local"}`, m.sum("pxe_pilot_boot_requests_total", `decision="local"`), obs.localScripts)
	eq(`pxe_pilot_boot_requests_total{decision="error"}`, m.sum("pxe_pilot_boot_requests_total", `decision="error"`), 0)
	eq("sum(pxe_pilot_dhcp_offers_total)", m.sum("pxe_pilot_dhcp_offers_total"), obs.proxyReplies)
	// The file label names what was served (the loop breaker serves
	// boot.ipxe in place of the iPXE binary asked for), the capture shows
	// what was asked for: compare the totals.
	rrqs := 0
	for _, n := range obs.rrq {
		rrqs += n
	}
	// Refused read requests (the Secure Boot chain asks for optional
	// files: shim's revocations_*.efi, GRUB's x86_64-efi/*.lst) count as
	// rejected, not started.
	eq(`sum(pxe_pilot_tftp_transfers_total{result="started"}) + sum(pxe_pilot_tftp_rejected_total)`,
		m.sum("pxe_pilot_tftp_transfers_total", `result="started"`)+m.sum("pxe_pilot_tftp_rejected_total"), rrqs)
	if t.Failed() {
		t.Logf("%s metrics:\n%s", a.name, m.dump("pxe_pilot_"))
	}
}

// TestAppliance runs the real pxe-pilot binary against real firmware. The
// scenarios share appliance runs the way a site would: one ProxyDHCP
// appliance for scenarios 1-3, a restart for 6, a router-only appliance for
// 4 and 5, and none for 7.
func TestAppliance(t *testing.T) {
	if _, err := applianceBinary(s.work); err != nil {
		t.Fatal(err)
	}

	t.Run("proxy", func(t *testing.T) {
		if err := s.setRouter(routerPlain); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(s.work, "proxy.db")
		a, err := s.startAppliance("appliance-proxy-1", applianceOpts{db: db, proxy: true})
		if err != nil {
			t.Fatal(err)
		}
		stopped := false
		defer func() {
			if !stopped {
				a.stop()
			}
		}()
		obs := newObserved()

		t.Run("1-bios-unknown-mac-boots-local", func(t *testing.T) {
			mac := macFor(0x01, bios)
			res := scenarioBoot(t, a, obs, vmSpec{name: "s1-bios-unknown", fw: bios, mac: mac, timeout: timeoutFor(bios)}, markerLocalDisk)
			wantLocalScript(t, res, mac)
			code, body, err := a.do("GET", "/nodes")
			if err != nil || code != 200 || !strings.Contains(string(body), mac) {
				t.Errorf("GET /nodes after the boot: %d %v; %s not in %.500s", code, err, mac, body)
			}
			wantReinstallFlag(t, a, mac, false)
		})

		t.Run("2-bios-reinstall-once-then-local", func(t *testing.T) {
			mac := macFor(0x02, bios)
			setReinstall(t, a, mac)
			wantReinstallFlag(t, a, mac, true)
			res := scenarioBoot(t, a, obs, vmSpec{name: "s2-bios-reinstall", fw: bios, mac: mac, timeout: timeoutFor(bios)}, markerInstaller)
			checkInstallerCmdline(t, res, mac)
			wantReinstallFlag(t, a, mac, false)
			res = scenarioBoot(t, a, obs, vmSpec{name: "s2-bios-next-boot", fw: bios, mac: mac, timeout: timeoutFor(bios)}, markerLocalDisk)
			wantLocalScript(t, res, mac)
		})

		t.Run("3-uefi-reinstall-then-local", func(t *testing.T) {
			mac := macFor(0x03, uefi)
			setReinstall(t, a, mac)
			res := scenarioBoot(t, a, obs, vmSpec{name: "s3-uefi-reinstall", fw: uefi, mac: mac, timeout: timeoutFor(uefi)}, markerInstaller)
			checkInstallerCmdline(t, res, mac)
			// iPXE answers "exit 1" for a UEFI local boot; the firmware
			// must move on to the disk, not stop in iPXE or its menu.
			res = scenarioBoot(t, a, obs, vmSpec{name: "s3-uefi-next-boot", fw: uefi, mac: mac, timeout: timeoutFor(uefi)}, markerLocalDisk)
			wantLocalScript(t, res, mac)
		})

		t.Run("metrics-match-observed", func(t *testing.T) {
			checkMetrics(t, a, obs)
		})

		t.Run("6-reinstall-survives-restart", func(t *testing.T) {
			mac := macFor(0x06, bios)
			setReinstall(t, a, mac)
			stopped = true
			if err := a.stop(); err != nil {
				// Not fatal: the database may still be closed cleanly;
				// the restart below tells.
				t.Errorf("SIGTERM: %v", err)
			}
			b, err := s.startAppliance("appliance-proxy-2", applianceOpts{db: db, proxy: true})
			if err != nil {
				t.Fatal(err)
			}
			defer b.stop()
			wantReinstallFlag(t, b, mac, true) // read back from disk after the restart
			obs2 := newObserved()
			res := scenarioBoot(t, b, obs2, vmSpec{name: "s6-bios-after-restart", fw: bios, mac: mac, timeout: timeoutFor(bios)}, markerInstaller)
			checkInstallerCmdline(t, res, mac)
			wantReinstallFlag(t, b, mac, false)
			checkMetrics(t, b, obs2)
			if err := b.stop(); err != nil {
				t.Error(err)
			}
		})
	})

	t.Run("router-only", func(t *testing.T) {
		db := filepath.Join(s.work, "router.db")
		a, err := s.startAppliance("appliance-router-only", applianceOpts{db: db, proxy: false})
		if err != nil {
			t.Fatal(err)
		}
		defer a.stop()
		obs := newObserved()

		t.Run("4-bios-router-tftp-no-loop", func(t *testing.T) {
			if err := s.setRouter(routerTFTP); err != nil {
				t.Fatal(err)
			}
			mac := macFor(0x04, bios)
			setReinstall(t, a, mac)
			before := obs.rrq["undionly.kpxe"]
			res := scenarioBoot(t, a, obs, vmSpec{name: "s4-bios-router-tftp", fw: bios, mac: mac, timeout: timeoutFor(bios)}, markerInstaller)
			checkInstallerCmdline(t, res, mac)
			n := obs.rrq["undionly.kpxe"] - before
			starts := strings.Count(cleanSerial(res.serial), "iPXE initialising devices")
			t.Logf("router-only TFTP: %d read requests for undionly.kpxe, %d iPXE starts", n, starts)
			if n < 1 || n > 2 {
				t.Errorf("TFTP read requests for undionly.kpxe = %d, want 1..2 (more is the chainload loop)", n)
			}
			// The ROM's iPXE plus one chainloaded undionly.kpxe; a third
			// start is the loop going round.
			if starts > 2 {
				t.Errorf("iPXE started %d times on one power-on, want <= 2 (chainload loop)", starts)
			}
		})

		t.Run("5-bios-router-http-chain-url", func(t *testing.T) {
			if err := s.setRouter(routerHTTP); err != nil {
				t.Fatal(err)
			}
			mac := macFor(0x05, bios)
			setReinstall(t, a, mac)
			res := scenarioBoot(t, a, obs, vmSpec{name: "s5-bios-router-http", fw: bios, mac: mac, timeout: timeoutFor(bios)}, markerInstaller)
			checkInstallerCmdline(t, res, mac)
		})

		t.Run("metrics-match-observed", func(t *testing.T) {
			checkMetrics(t, a, obs)
			m, err := a.metrics()
			if err != nil {
				t.Fatal(err)
			}
			if lb := m.sum("pxe_pilot_tftp_loop_breaks_total"); lb < 1 {
				t.Errorf("pxe_pilot_tftp_loop_breaks_total = %g after a router-only TFTP boot, want >= 1", lb)
			}
		})
	})

	t.Run("7-appliance-down-falls-through-to-disk", func(t *testing.T) {
		if err := s.setRouter(routerPlain); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := scenarioBoot(t, nil, nil, vmSpec{name: "s7-bios-appliance-down", fw: bios, mac: macFor(0x07, bios), timeout: timeoutFor(bios)}, markerLocalDisk)
		if strings.Contains(res.serial, "PXE Pilot") {
			t.Errorf("serial shows PXE Pilot output although no appliance runs")
		}
		t.Logf("fell through in %s", time.Since(start).Round(time.Second))
	})
}
