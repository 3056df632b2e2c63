package boot

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// seedConfig is the seed's configuration: the default profile's
// variables and PXE_LOCAL_BOOT.
type seedConfig struct {
	profiles.Seed
	LocalBoot LocalBoot
}

func (c seedConfig) set() *profiles.Set {
	set, err := profiles.Load("", c.Seed)
	if err != nil {
		panic(err)
	}
	return set
}

func (c seedConfig) Missing() []string { return profiles.SeedProfile(c.Seed).Missing }

// fullBoot is a complete seed configuration whose URLs carry every
// placeholder Substitute knows, plus one (${uuid}) it must leave for iPXE.
var fullBoot = seedConfig{Seed: profiles.Seed{
	KernelURL:      "http://198.51.100.10/ubuntu/${mac}/vmlinuz",
	InitrdURL:      "http://198.51.100.10/ubuntu/initrd?ip=${ip}",
	AutoinstallURL: "http://198.51.100.10/autoinstall/${mac_hyphen}/${uuid}/",
	KernelArgs:     "console=ttyS0,115200n8",
}, LocalBoot: LocalBootAuto}

func TestSeedMissing(t *testing.T) {
	for _, tc := range []struct {
		c    profiles.Seed
		want []string
	}{
		{fullBoot.Seed, nil},
		{profiles.Seed{}, []string{"PXE_UBUNTU_KERNEL_URL", "PXE_UBUNTU_INITRD_URL", "PXE_AUTOINSTALL_URL"}},
		{profiles.Seed{KernelURL: "k"}, []string{"PXE_UBUNTU_INITRD_URL", "PXE_AUTOINSTALL_URL"}},
		{profiles.Seed{KernelURL: "k", InitrdURL: "i"}, []string{"PXE_AUTOINSTALL_URL"}},
		{profiles.Seed{InitrdURL: "i", AutoinstallURL: "a", KernelArgs: "quiet"}, []string{"PXE_UBUNTU_KERNEL_URL"}},
	} {
		if got := profiles.SeedProfile(tc.c).Missing; !slices.Equal(got, tc.want) {
			t.Errorf("%+v.Missing = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func sub(raw string, cl Client) string {
	return profiles.Substitute(raw, string(cl.MAC), cl.MAC.Hyphen(), cl.IP)
}

// TestDecide walks every node state × configuration × platform × local-boot
// mode × per-node script. The rules, as the appliance promises them:
//   - only a node in state reinstall gets the installer, and only when all
//     three installer URLs are set; then Install is true (the flag is
//     consumed);
//   - reinstall with URLs unset is an error script naming what is missing,
//     and Install is false (the flag is kept);
//   - everything else boots local: the node's own script if it has one,
//     else PXE_LOCAL_BOOT (sanboot / exit 1), else by platform: "exit 1" on
//     UEFI, sanboot on BIOS or unknown.
func TestDecide(t *testing.T) {
	const mac = store.MAC("52:54:00:12:34:56")
	cl := func(platform string) Client { return Client{MAC: mac, IP: "198.51.100.21", Platform: platform} }
	configs := map[string]seedConfig{
		"complete":        fullBoot,
		"no args":         {Seed: profiles.Seed{KernelURL: fullBoot.KernelURL, InitrdURL: fullBoot.InitrdURL, AutoinstallURL: fullBoot.AutoinstallURL}},
		"kernel unset":    {Seed: profiles.Seed{InitrdURL: "http://x/i", AutoinstallURL: "http://x/a/"}},
		"all unset":       {},
		"only kernelargs": {Seed: profiles.Seed{KernelArgs: "quiet"}},
	}
	n := 0
	for _, state := range store.States {
		for cname, base := range configs {
			for _, platform := range []string{"pcbios", "efi", ""} {
				for _, mode := range []LocalBoot{"", LocalBootAuto, LocalBootSanboot, LocalBootExit} {
					for _, own := range []string{"", "sanboot --no-describe --drive 0x81"} {
						c := base
						c.LocalBoot = mode
						node := store.Node{MAC: mac, State: state, Reinstall: state == store.StateReinstall, LocalBootScript: own}
						name := fmt.Sprintf("%s/%s/%q/%q/own=%t", state, cname, platform, mode, own != "")
						checkDecision(t, name, Decide(node, cl(platform), c.set(), Config{BaseURL: "http://198.51.100.1:8000", LocalBoot: c.LocalBoot}, "tok"), node, cl(platform), c)
						n++
					}
				}
			}
		}
	}
	if n != len(store.States)*5*3*4*2 {
		t.Fatalf("walked %d cases", n)
	}
}

func checkDecision(t *testing.T, name string, p Plan, n store.Node, cl Client, c seedConfig) {
	t.Helper()
	switch {
	case n.State == store.StateReinstall && len(c.Missing()) == 0:
		if p.Decision != store.DecisionReinstall || !p.Install || !p.Seed || p.Token != "tok" || p.Profile != "default" || p.Rule != "default" {
			t.Fatalf("%s: plan %+v, want the installer", name, p)
		}
		wantCmd := "autoinstall ds=nocloud-net;s=" + sub(c.AutoinstallURL, cl)
		if c.KernelArgs != "" {
			wantCmd += " " + c.KernelArgs
		}
		if p.MAC != cl.MAC || p.Kernel != sub(c.KernelURL, cl) || len(p.Initrds) != 1 ||
			p.Initrds[0] != (Initrd{"initrd", sub(c.InitrdURL, cl)}) || p.Cmdline != wantCmd {
			t.Errorf("%s: plan %+v", name, p)
		}
	case n.State == store.StateReinstall:
		if p.Decision != store.DecisionError || p.Install {
			t.Fatalf("%s: plan %+v, want an error that keeps the flag", name, p)
		}
		text := strings.Join(p.Lines, "\n")
		for _, m := range c.Missing() {
			if !strings.Contains(text, m) || !strings.Contains(p.Reason, m) {
				t.Errorf("%s: error %q / reason %q does not name %s", name, text, p.Reason, m)
			}
		}
		if !strings.Contains(text, string(cl.MAC)) {
			t.Errorf("%s: error does not name the machine: %q", name, text)
		}
	default:
		want := "sanboot --no-describe --drive 0x80"
		switch {
		case n.LocalBootScript != "":
			want = n.LocalBootScript
		case c.LocalBoot == LocalBootExit:
			want = "exit 1"
		case c.LocalBoot == LocalBootSanboot:
		case cl.Platform == "efi":
			want = "exit 1"
		}
		if p.Decision != store.DecisionLocal || p.Install || p.LocalCommand != want || p.MAC != cl.MAC || p.Reason == "" {
			t.Errorf("%s: plan %+v, want local with %q", name, p, want)
		}
	}
	// Whatever the plan, its script must render.
	if _, err := IPXE(p); err != nil {
		t.Errorf("%s: rendering: %v", name, err)
	}
}

func TestSubstitute(t *testing.T) {
	mac := store.MAC("52:54:00:ab:cd:ef")
	for _, tc := range []struct {
		raw, ip, want string
	}{
		{"http://x/vmlinuz", "198.51.100.2", "http://x/vmlinuz"},
		{"http://x/${mac}/", "198.51.100.2", "http://x/52:54:00:ab:cd:ef/"},
		{"http://x/${mac_hyphen}/", "198.51.100.2", "http://x/52-54-00-ab-cd-ef/"},
		{"http://x/?ip=${ip}", "198.51.100.2", "http://x/?ip=198.51.100.2"},
		{"http://x/?ip=${ip}", "2001:db8::1", "http://x/?ip=2001:db8::1"},
		{"http://x/?ip=${ip}", "", "http://x/?ip="},
		{"${mac}${mac_hyphen}${ip}${mac}", "198.51.100.2", "52:54:00:ab:cd:ef52-54-00-ab-cd-ef198.51.100.252:54:00:ab:cd:ef"},
		// Other settings are iPXE's to expand on the machine.
		{"http://x/${uuid}/${serial}/${mac:hexhyp}/${net0/mac}", "198.51.100.2", "http://x/${uuid}/${serial}/${mac:hexhyp}/${net0/mac}"},
		{"http://x/${MAC}/${ mac}/${mac", "198.51.100.2", "http://x/${MAC}/${ mac}/${mac"},
		{"$mac {mac} ${}", "198.51.100.2", "$mac {mac} ${}"},
		// An unknown IP is empty, and must not glue the text around it
		// into a placeholder of its own.
		{"${${ip}mac}", "", "52:54:00:ab:cd:ef"},
		{"${${ip}mac_hyphen}/${${ip}ip}", "", "52-54-00-ab-cd-ef/"},
		{"${${ip}uuid}", "", "${uuid}"},
		// A zone (only a server-side interface name can get here) is
		// escaped, "$" included, so it cannot start a placeholder either.
		{"${ip}{mac}", "fe80::1%x$", "fe80::1%25x%24{mac}"},
	} {
		got := sub(tc.raw, Client{MAC: mac, IP: tc.ip})
		if got != tc.want {
			t.Errorf("Substitute(%q, ip %q) = %q, want %q", tc.raw, tc.ip, got, tc.want)
		}
	}
}

// otherSetting is a ${…} that Substitute must leave to iPXE.
var otherSetting = regexp.MustCompile(`\$\{[A-Za-z0-9_:/.-]+\}`)

func countSpace(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			n++
		}
	}
	return n
}

// FuzzSubstitute: whatever an admin writes in an installer URL and whatever
// address the machine reports, the output never contains a placeholder the
// appliance owns, keeps every other ${…} for iPXE, and gains no white space
// (a space on the iPXE kernel line would split the URL into two arguments).
func FuzzSubstitute(f *testing.F) {
	f.Add("http://198.51.100.10/${mac}/${mac_hyphen}/${ip}/${uuid}", "52:54:00:12:34:56", "198.51.100.21")
	f.Add("${${ip}mac}", "52:54:00:12:34:56", "")
	f.Add("x", "525400123456", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, raw, macIn, ipIn string) {
		mac, err := store.ParseMAC(macIn)
		if err != nil {
			mac = "52:54:00:12:34:56"
		}
		ip := ""
		if a, err := netip.ParseAddr(ipIn); err == nil {
			ip = a.String() // what clientIP or the ip= parameter can yield
		}
		out := sub(raw, Client{MAC: mac, IP: ip})
		for _, p := range []string{"${mac}", "${mac_hyphen}", "${ip}"} {
			if strings.Contains(out, p) {
				t.Fatalf("Substitute(%q, %s, %q) = %q still holds %s", raw, mac, ip, out, p)
			}
		}
		if !strings.Contains(raw, "${mac}") && !strings.Contains(raw, "${mac_hyphen}") && !strings.Contains(raw, "${ip}") && out != raw {
			t.Fatalf("Substitute(%q) = %q changed a URL without placeholders", raw, out)
		}
		for _, s := range otherSetting.FindAllString(raw, -1) {
			if s == "${mac}" || s == "${mac_hyphen}" || s == "${ip}" {
				continue
			}
			if strings.Count(out, s) < strings.Count(raw, s) {
				t.Fatalf("Substitute(%q) = %q lost %s", raw, out, s)
			}
		}
		if countSpace(out) != countSpace(raw) {
			t.Fatalf("Substitute(%q, ip %q) = %q changed the white space", raw, ip, out)
		}
	})
}
