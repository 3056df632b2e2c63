//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProfiles is issue 9's acceptance through the real binary: a profiles
// file (PXE_PROFILES_FILE) with a debian-preseed profile, a plain linux
// profile and two groups, and the seed's variables as the default. One
// appliance run serves three kinds of machine:
//
//   - an unknown machine gets the default profile (the suite's fake
//     installer, which never reports);
//   - a lab machine gets the busybox profile through its group's
//     mac_prefix, and reports its own failure with the token the appliance
//     put into its command line;
//   - Debian's real d-i netboot, by SeaBIOS and by OVMF, gets the debian
//     profile through its group's MAC list, fetches the preseed the
//     appliance renders for it, and its own call-back (busybox wget in d-i,
//     the install's token in the URL) makes the node installed. Before the
//     BIOS boot, call-backs without the token are refused and the reinstall
//     stays pending (the boot then proves it).
//
// Then the appliance restarts on the same database with
// PXE_INSTALL_TIMEOUT=20s: the unknown machine's install, silent since its
// boot, becomes failed "stalled"; the others keep their outcome; and an
// install started after the restart (by a /boot the test asks itself)
// becomes failed "stalled" no sooner than 20 s later. (d-i needs
// longer than 20 s from its boot to its first word, the preseed download,
// so the first run keeps the default timeout.)
func TestProfiles(t *testing.T) {
	if _, err := applianceBinary(s.work); err != nil {
		t.Fatal(err)
	}
	if err := s.setRouter(routerPlain); err != nil {
		t.Fatal(err)
	}
	s.files.serveFile("/debian/linux", filepath.Join(debianInstallerDir, "linux"))
	s.files.serveFile("/debian/initrd.gz", filepath.Join(debianInstallerDir, "initrd.gz"))
	file := writeProfilesFile(t)
	dbDir, err := os.MkdirTemp(s.work, "profiles-") // fresh per run (-count=2)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dbDir, "db")

	a, err := s.startAppliance("appliance-profiles-1", applianceOpts{db: db, proxy: true, env: []string{"PXE_PROFILES_FILE=" + file}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			a.stop()
		}
	}()
	booted := map[string]bool{}
	refused := 0 // call-backs the test sent without token or key

	t.Run("unknown-machine-gets-default", func(t *testing.T) {
		setReinstall(t, a, macUnknown)
		res := scenarioBoot(t, a, nil, vmSpec{name: "p1-bios-unknown-default", fw: bios, mac: macUnknown, timeout: timeoutFor(bios)}, markerInstaller)
		checkInstallerCmdline(t, res, macUnknown) // the seed's command line: the default profile
		if strings.Contains(res.cmdline, "pxe_report=") {
			t.Errorf("the unknown machine got the busybox profile's command line: %q", res.cmdline)
		}
		wantBootEvent(t, a, macUnknown, "default", "default")
		if n := mustNode(t, a, macUnknown); n.State != "installing" {
			t.Errorf("after the installer booted: state %q, want installing (PXE_INSTALL_TIMEOUT is 2h here)", n.State)
		}
		booted[macUnknown] = true
	})

	t.Run("group-rule-installer-reports-failure", func(t *testing.T) {
		setReinstall(t, a, macLab)
		res := scenarioBoot(t, a, nil, vmSpec{name: "p2-bios-lab-reports-failure", fw: bios, mac: macLab, timeout: timeoutFor(bios)}, markerInstaller)
		want := "pxe_report=http://" + applianceIP + ":" + appPort + "/install/" + macLab + "/"
		if !strings.Contains(res.cmdline, want) || !strings.Contains(res.cmdline, "/failed") {
			t.Errorf("installer command line %q lacks the busybox profile's %s<token>/failed", res.cmdline, want)
		}
		if strings.Contains(res.cmdline, "autoinstall") {
			t.Errorf("the lab machine got the default profile's command line: %q", res.cmdline)
		}
		if !strings.Contains(res.serial, "PXE-REPORT-SENT") {
			t.Errorf("the installer's call-back did not go out; serial tail:\n%s", tail(cleanSerial(res.serial), 15))
		}
		wantBootEvent(t, a, macLab, "busybox", "group busybox-lab (")
		n := mustNode(t, a, macLab)
		if n.State != "failed" || n.Install == nil || n.Install.Reason != reportedReason || n.Install.Reporter != "e2e-busybox" {
			t.Errorf("after the failure call-back: %+v (install %+v), want failed, reason %q, reporter e2e-busybox", n, n.Install, reportedReason)
		}
		if n.Install != nil && n.Install.Token != "" {
			t.Errorf("GET /nodes/%s shows the install token", macLab)
		}
		e := findEvent(t, events(t, a, macLab), "failed", "")
		if e.Reason != reportedReason || e.Profile != "busybox" || e.State != "failed" || !strings.HasPrefix(e.IP, "203.0.113.1") {
			t.Errorf("failed event %+v: want reason %q, profile busybox, state failed, from the VM's lease (203.0.113.1xx)", e, reportedReason)
		}
		booted[macLab] = true
	})

	for _, c := range []struct {
		name    string
		fw      firmware
		mac     string
		timeout time.Duration
	}{
		// Measured: power-on to installed ~84 s (BIOS), ~102 s (UEFI) on
		// a quiet machine; 235 s (BIOS) with a load average of 17-20 on
		// the 2 cores.
		{"debian-installer-bios", bios, macDebianB, 8 * time.Minute},
		{"debian-installer-uefi", uefi, macDebianU, 10 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			setReinstall(t, a, c.mac)
			if c.fw == bios {
				// Any host on the LAN can reach the call-backs: without
				// the install's token (or the admin key) they change
				// nothing. The boot below proves the reinstall stayed.
				code, body, err := postAnonymous(a, "/installed?mac="+c.mac)
				if err != nil || code != 403 {
					t.Errorf("POST /installed?mac=%s without token or key: %d %v %s, want 403", c.mac, code, err, body)
				}
				code, body, err = postAnonymous(a, "/install/"+c.mac+"/"+strings.Repeat("0", 32)+"/installed")
				if err != nil || code != 403 {
					t.Errorf("POST /install/%s/<wrong token>/installed: %d %v %s, want 403", c.mac, code, err, body)
				}
				refused += 2
				if n := mustNode(t, a, c.mac); n.State != "reinstall" || !n.Reinstall {
					t.Errorf("after refused call-backs: state %q, reinstall %v; want the reinstall pending", n.State, n.Reinstall)
				}
			}
			before, err := a.metrics()
			if err != nil {
				t.Fatal(err)
			}
			spec := vmSpec{name: "p3-" + string(c.fw) + "-debian-installer", fw: c.fw, mac: c.mac, timeout: c.timeout,
				memMiB: diMemoryMiB, until: untilState(a, c.mac, "installed")}
			scenarioBoot(t, a, nil, spec, "node installed")
			booted[c.mac] = true
			wantBootEvent(t, a, c.mac, "debian", "group debian-lab (")
			n := mustNode(t, a, c.mac)
			if n.Install == nil || n.Install.Reporter != "d-i" || n.Install.Progress != "preseed-loaded" || n.Install.Downloads < 1 {
				t.Errorf("install record %+v: want reporter d-i, progress preseed-loaded, downloads >= 1", n.Install)
			}
			evs := events(t, a, c.mac)
			inst := findEvent(t, evs, "installed", "")
			if inst.Profile != "debian" || !strings.HasPrefix(inst.IP, "203.0.113.1") {
				t.Errorf("installed event %+v: want profile debian, from the VM's lease (203.0.113.1xx)", inst)
			}
			findEvent(t, evs, "progress", "")
			after, err := a.metrics()
			if err != nil {
				t.Fatal(err)
			}
			served := after.sum("pxe_pilot_install_files_total", `result="served"`) - before.sum("pxe_pilot_install_files_total", `result="served"`)
			if served < 1 {
				t.Errorf(`pxe_pilot_install_files_total{result="served"} rose by %g during the boot, want >= 1 (preseed.cfg)`, served)
			}
			logLine := fmt.Sprintf("mac=%s profile=debian file=preseed.cfg", c.mac)
			if !strings.Contains(a.p.log(), logLine) {
				t.Errorf("appliance log lacks the served preseed (%q)", logLine)
			}
		})
	}

	t.Run("metrics", func(t *testing.T) {
		m, err := a.metrics()
		if err != nil {
			t.Fatal(err)
		}
		// Held against the nodes' states, so a boot that failed above
		// does not fail this too.
		installing, installed, failed := 0, 0, 0
		for _, mac := range []string{macUnknown, macLab, macDebianB, macDebianU} {
			n, err := getNode(a, mac)
			if err != nil {
				continue // never set up
			}
			switch n.State {
			case "installing":
				installing++
			case "installed":
				installing++
				installed++
			case "failed":
				installing++
				failed++
			}
		}
		for _, c := range []struct {
			series string
			got    float64
			want   int
		}{
			{`pxe_pilot_install_transitions_total{state="installing"}`, m.sum("pxe_pilot_install_transitions_total", `state="installing"`), installing},
			{`pxe_pilot_install_transitions_total{state="installed"}`, m.sum("pxe_pilot_install_transitions_total", `state="installed"`), installed},
			{`pxe_pilot_install_transitions_total{state="failed"}`, m.sum("pxe_pilot_install_transitions_total", `state="failed"`), failed},
			{`pxe_pilot_install_reports_total{result="failed"}`, m.sum("pxe_pilot_install_reports_total", `result="failed"`), failed},
			{`pxe_pilot_install_reports_total{result="refused"}`, m.sum("pxe_pilot_install_reports_total", `result="refused"`), refused},
			{`pxe_pilot_install_stalls_total`, m.sum("pxe_pilot_install_stalls_total"), 0},
		} {
			if int(c.got) != c.want {
				t.Errorf("%s = %g, want %d", c.series, c.got, c.want)
			}
		}
		if t.Failed() {
			t.Logf("metrics:\n%s", m.dump("pxe_pilot_install"))
		}
	})

	t.Run("silent-installer-stalls-after-restart", func(t *testing.T) {
		stopped = true
		if err := a.stop(); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		const timeout = 20 * time.Second
		b, err := s.startAppliance("appliance-profiles-2", applianceOpts{db: db, proxy: true,
			env: []string{"PXE_PROFILES_FILE=" + file, "PXE_INSTALL_TIMEOUT=" + timeout.String()}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.stop()
		// The sweep also runs while the appliance does: an install started
		// now (the test asks /boot as iPXE would; no VM needed) fails once
		// it has been silent for the timeout, by the appliance's own clock.
		setReinstall(t, b, macSilent)
		code, script, err := b.do("GET", "/boot?mac="+macSilent+"&platform=pcbios")
		if err != nil || code != 200 || !strings.Contains(string(script), "reinstalls now") {
			t.Fatalf("GET /boot?mac=%s: %d %v\n%s", macSilent, code, err, script)
		}
		n, waited := waitState(t, b, macSilent, "failed", 4*timeout)
		evs := events(t, b, macSilent)
		start, end := findEvent(t, evs, "", "reinstall"), findEvent(t, evs, "failed", "")
		t.Logf("%s: install started by /boot, failed \"stalled\" %.1f s later by the appliance's events (%.1f s waited; PXE_INSTALL_TIMEOUT=%s)",
			macSilent, end.Time.Sub(start.Time).Seconds(), waited.Seconds(), timeout)
		if n.Install == nil || n.Install.Reason != "stalled" || !strings.HasPrefix(end.Reason, "stalled") || end.Profile != "busybox" {
			t.Errorf("silent install: %+v, event %+v; want reason stalled, profile busybox", n.Install, end)
		}
		if end.Time.Sub(start.Time) < timeout {
			t.Errorf("the install failed %s after it started, before PXE_INSTALL_TIMEOUT=%s", end.Time.Sub(start.Time), timeout)
		}

		// The sweeper counts a stall just after storing it: wait (bounded)
		// for the counter to catch up with the state read above.
		var got float64
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			m, err := b.metrics()
			if err != nil {
				t.Fatal(err)
			}
			if got = m.sum("pxe_pilot_install_stalls_total"); got >= 1 || time.Now().After(deadline) {
				break
			}
		}
		if got != 1 {
			t.Errorf("pxe_pilot_install_stalls_total = %g, want 1", got)
		}
		// The unknown machine's install (the seed's default profile) has
		// been silent far longer than the timeout, yet stays installing:
		// its installer, on the user's own server, was never told a
		// token, so only the admin can report it, as before profiles.
		if booted[macUnknown] {
			if n := mustNode(t, b, macUnknown); n.State != "installing" || n.Install == nil || !n.Install.NoCallbacks {
				t.Errorf("seed-profile install after the sweep: state %q (install %+v), want installing, no call-backs", n.State, n.Install)
			}
		}
		// The sweep fails only silent installs: reported outcomes stay.
		for mac, want := range map[string]string{macLab: "failed", macDebianB: "installed", macDebianU: "installed"} {
			if !booted[mac] {
				continue
			}
			if n := mustNode(t, b, mac); n.State != want || (n.Install != nil && n.Install.Reason == "stalled") {
				t.Errorf("%s after the sweep: state %q (install %+v), want %s, not stalled", mac, n.State, n.Install, want)
			}
		}
		if err := b.stop(); err != nil {
			t.Error(err)
		}
	})
}
