package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// loadGRUBProfiles reads testdata/grub-profiles.yaml: one profile of each
// kind GRUB must handle, the ubuntu preset among them (its
// "ds=nocloud-net;s=…" has the ";" GRUB would otherwise read as a command
// separator), kernel arguments in double quotes and with a "$", and one
// with a single quote, which GRUB cannot pass unchanged.
func loadGRUBProfiles(t *testing.T) *profiles.Set {
	t.Helper()
	set, err := profiles.Load(filepath.Join("testdata", "grub-profiles.yaml"), profiles.Seed{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestGRUBGolden pins every GRUB script a machine can get, byte for byte,
// from the decision down (Decide with the GRUB loader, then GRUB).
// Refresh with: go test ./boot -run TestGRUBGolden -update
func TestGRUBGolden(t *testing.T) {
	const mac = store.MAC("52:54:00:12:34:56")
	set := loadGRUBProfiles(t)
	cfg := Config{BaseURL: "http://198.51.100.1:8000", LocalBoot: LocalBootAuto}
	cl := Client{MAC: mac, IP: "198.51.100.21", Platform: "efi", Loader: LoaderGRUB}
	reinstall := func(profile string) store.Node {
		return store.Node{MAC: mac, State: store.StateReinstall, Reinstall: true, Profile: profile}
	}
	for _, tc := range []struct {
		file     string
		node     store.Node
		decision string
		install  bool
		plan     *Plan // instead of Decide
		want     []string
	}{
		{file: "reinstall.grub", node: reinstall(""), decision: store.DecisionReinstall, install: true,
			want: []string{"linux '(http,198.51.100.10)/debian/linux' 'console=ttyS0'", `'preseed/late_command=in-target true' 'ds=nocloud;s=/x/' '$notavar'`,
				"initrd '(http,198.51.100.10)/debian/initrd.gz' '(http,198.51.100.10:8080)/extra.cpio?mac=52:54:00:12:34:56'"}},
		{file: "reinstall-ubuntu.grub", node: reinstall("ubuntu"), decision: store.DecisionReinstall, install: true,
			want: []string{"'ds=nocloud-net;s=http://198.51.100.1:8000/install/52:54:00:12:34:56/tok/'"}},
		{file: "reinstall-efi.grub", node: reinstall("shell"), decision: store.DecisionReinstall, install: true,
			want: []string{"chainloader '(http,198.51.100.10)/shell.efi' '-nostartup' 'fs0:'"}},
		{file: "local.grub", node: store.Node{MAC: mac, State: store.StateInstalled}, decision: store.DecisionLocal,
			want: []string{"boots from local disk"}},
		{file: "local-own-sanboot.grub", node: store.Node{MAC: mac, LocalBootScript: "sanboot --drive 0x81"}, decision: store.DecisionLocal,
			want: []string{"(sanboot --drive 0x81) is for iPXE"}},
		{file: "missing-profile.grub", node: reinstall("gone"), decision: store.DecisionError,
			want: []string{"gone", "The reinstall stays pending"}},
		{file: "ipxe-kind.grub", node: reinstall("script"), decision: store.DecisionError,
			want: []string{"iPXE script, which GRUB (the Secure Boot loader) cannot run"}},
		{file: "quote-refused.grub", node: reinstall("quote"), decision: store.DecisionError,
			want: []string{"GRUB puts a backslash before every", "The reinstall stays pending"}},
		{file: "ftp.grub", node: reinstall("ftp"), decision: store.DecisionError,
			want: []string{"GRUB can only boot http(s):// and tftp:// URLs"}},
		{file: "bad-mac.grub", decision: store.DecisionError, plan: &Plan{Decision: store.DecisionError, Lines: []string{
			"the GRUB request has no usable MAC address (\"52:54:00:12:34\" is not a MAC; it's bad)", "GRUB must call http://198.51.100.1:8000/grub?mac=$net_default_mac"}},
			want: []string{`it'\''s bad`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := Decide(tc.node, cl, set, cfg, "tok")
			if tc.plan != nil {
				p = *tc.plan
			}
			if p.Decision != tc.decision || p.Install != tc.install {
				t.Fatalf("plan %+v: want decision %s, install %t", p, tc.decision, tc.install)
			}
			b, err := GRUB(p)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("script lacks %q:\n%s", w, got)
				}
			}
			checkGRUBScript(t, got)
			golden(t, filepath.Join("testdata", "golden", tc.file), got)
		})
	}
}

// checkGRUBScript: what every script must be. It ends by leaving GRUB,
// and no "$" or ";" stands outside single quotes.
func checkGRUBScript(t *testing.T, s string) {
	t.Helper()
	if !strings.HasSuffix(s, grubLeave) {
		t.Errorf("script does not end by leaving GRUB:\n%s", s)
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, grubLeave), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		quoted := false
		for i := 0; i < len(l); i++ {
			switch c := l[i]; {
			case c == '\'':
				quoted = !quoted
			case !quoted && c == '\\':
				i++ // an escaped character
			case !quoted && strings.IndexByte("$;|&<>\"{}", c) >= 0:
				t.Errorf("line %q has %q outside single quotes", l, c)
			}
		}
		if quoted {
			t.Errorf("line %q leaves a quote open", l)
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (rerun with -update if intended)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestGRUBConfig(t *testing.T) {
	b, err := GRUBConfig("http://198.51.100.1:8000")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "golden", "grub.cfg"), string(b))
	for _, bad := range []string{"198.51.100.1", "http:///x", "http://x/a b", "http://x/$y", "http://x/'"} {
		if _, err := GRUBConfig(bad); err == nil {
			t.Errorf("GRUBConfig(%q) accepted", bad)
		}
	}
}

// FuzzGRUBWord: whatever the text, grubWord is one word GRUB reads back
// as the text (minus control characters).
func FuzzGRUBWord(f *testing.F) {
	for _, s := range []string{"", "ds=nocloud-net;s=http://x/", "it's", "$x ${y}", "a\nb", `\'"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w := grubWord(s)
		if !strings.HasPrefix(w, "'") || !strings.HasSuffix(w, "'") || strings.ContainsAny(w, "\n\r\x00") {
			t.Fatalf("grubWord(%q) = %q", s, w)
		}
		// Read it back the way GRUB's lexer does: '…' literal, \x escapes.
		var b strings.Builder
		quoted := false
		for i := 0; i < len(w); i++ {
			switch c := w[i]; {
			case c == '\'':
				quoted = !quoted
			case !quoted && c == '\\' && i+1 < len(w):
				i++
				b.WriteByte(w[i])
			case !quoted:
				t.Fatalf("grubWord(%q) = %q: %q outside quotes", s, w, c)
			default:
				b.WriteByte(c)
			}
		}
		want := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, s)
		if b.String() != want && strings.ToValidUTF8(s, "\uFFFD") == s {
			t.Fatalf("grubWord(%q) reads back as %q", s, b.String())
		}
	})
}

// TestGRUBCheckURLs: http:// and https:// URLs are both relayed by the
// appliance, credentials or not (http://user:pw@… used to be refused, the
// reinstall left pending, while https://user:pw@… passed); a URL GRUB
// cannot use is named without its password.
func TestGRUBCheckURLs(t *testing.T) {
	plan := func(kernel string) Plan {
		return Plan{Decision: store.DecisionReinstall, Profile: "p", Kind: profiles.KindLinux, Kernel: kernel}
	}
	for _, u := range []string{"https://user:pw@198.51.100.10/vmlinuz", "http://user:pw@198.51.100.10/vmlinuz", "tftp://198.51.100.10/vmlinuz"} {
		if err := GRUBCheck(plan(u)); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	err := GRUBCheck(plan("ftp://user:secret@198.51.100.10/vmlinuz"))
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "198.51.100.10") {
		t.Errorf("ftp:// with a password: %v; want an error naming the URL without its password", err)
	}
}

// TestGRUBLeaveArm64: an arm64 GRUB (ProxyDHCP offers arm64 machines
// shimaa64.efi) boots the disk's BOOTAA64.EFI, not BOOTX64.EFI, which an
// arm64 disk does not have.
func TestGRUBLeaveArm64(t *testing.T) {
	if !strings.Contains(grubLeave, `if [ "$grub_cpu" = arm64 ]`) || !strings.Contains(grubLeave, "set pxe_pilot_efi=/EFI/BOOT/BOOTAA64.EFI") ||
		!strings.Contains(grubLeave, "search --no-floppy --file --set=pxe_pilot_disk $pxe_pilot_efi") || !strings.Contains(grubLeave, "chainloader $pxe_pilot_efi") {
		t.Errorf("grubLeave does not choose the loader by $grub_cpu:\n%s", grubLeave)
	}
}

// TestGRUBRefusalsHidePasswords: a refusal quotes the command line it
// refuses, into the machine's console and the stored event; a URL's
// password in it is hidden (only a lone URL's was).
func TestGRUBRefusalsHidePasswords(t *testing.T) {
	for _, cmdline := range []string{
		"auto=true url=http://preseed:s3cretPW@203.0.113.5/d-i/${net0/mac}.cfg",
		`auto=true url=http://preseed:s3cretPW@203.0.113.5/d-i/x.cfg preseed/late_command="in-target sh -c 'echo hi'"`,
		`auto=true url=http://preseed:s3cretPW@203.0.113.5/d-i/x.cfg late="unbalanced`,
	} {
		err := GRUBCheck(Plan{Decision: store.DecisionReinstall, Profile: "p", Kind: profiles.KindLinux,
			Kernel: "http://203.0.113.5/vmlinuz", Cmdline: cmdline})
		if err == nil || strings.Contains(err.Error(), "s3cretPW") || !strings.Contains(err.Error(), "preseed:xxxxx@203.0.113.5") {
			t.Errorf("%q: %v; want a refusal naming the URL without its password", cmdline, err)
		}
	}
	if got := Redact("ftp://u:p@h/x and http://a:b@c/ and http://plain/ and http://user@host/"); got != "ftp://u:xxxxx@h/x and http://a:xxxxx@c/ and http://plain/ and http://user@host/" {
		t.Errorf("Redact = %q", got)
	}
}
