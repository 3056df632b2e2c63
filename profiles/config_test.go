package profiles

import (
	"os"
	"strings"
	"testing"
)

func TestExampleLoads(t *testing.T) {
	set, err := Load("testdata/example.yaml", Seed{})
	if err != nil {
		t.Fatal(err)
	}
	if set.Default != "ubuntu" || len(set.Groups) != 4 {
		t.Fatalf("default %q, %d groups", set.Default, len(set.Groups))
	}
	want := []string{"debian", "default", "fcos", "fedora", "flatcar", "keep", "memtest", "menu", "rescue", "ubuntu", "uki"}
	if got := strings.Join(set.Names(), " "); got != strings.Join(want, " ") {
		t.Fatalf("profiles %s", got)
	}
	if p := set.Profiles["debian"]; p.Kind != KindLinux || p.Preset != "debian-preseed" || p.Source != "testdata/example.yaml:13" || p.Files["preseed.cfg"] == nil {
		t.Fatalf("debian = %+v", p)
	}
	if g := set.Groups[3]; g.Source != "testdata/example.yaml:76" || len(g.Match.MACs) != 2 || g.Match.MACs[1] != "52:54:00:0b:00:02" {
		t.Fatalf("group rescue-list = %+v", g)
	}
}

// TestConfigErrors: each bad file is refused with the file and line of the
// profile or group at fault, and words that say what to change.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"not yaml", "profiles: [", []string{"t.yaml:", "did not find expected"}},
		{"unknown key", "profiles:\n  a:\n    kind: local\n    kernle: x\n", []string{"line 4", "kernle", "not found"}},
		{"unknown top key", "profile:\n  a: {kind: local}\n", []string{"line 1", "profile"}},
		{"second document", "profiles:\n  a: {kind: local}\n---\nprofiles:\n  b: {kind: local}\n", []string{"t.yaml:3", "second YAML document", "one document"}},
		{"second document, bad", "profiles:\n  a: {kind: local}\n---\nprofiles: [\n", []string{"t.yaml:", "second YAML document", "one document"}},
		{"label key any value", "profiles:\n  a: {kind: local}\ngroups:\n  - name: g\n    profile: a\n    match: {labels: {\"role name\": \"*\"}}\n", []string{"match.labels", "role name"}},
		{"no kind", "profiles:\n  a:\n    kernel: http://x/k\n", []string{"t.yaml:2", "profile a", "give a preset"}},
		{"bad kind", "profiles:\n  a:\n    kind: pxe\n", []string{"t.yaml:2", `kind "pxe" is not known`, "linux, ipxe, efi or local"}},
		{"bad preset", "profiles:\n  a:\n    preset: ubuntu\n", []string{"t.yaml:2", `preset "ubuntu" is not known`, "ubuntu-autoinstall"}},
		{"linux no kernel", "profiles:\n  a:\n    kind: linux\n", []string{"t.yaml:2", "kernel is required"}},
		{"ipxe no script", "profiles:\n\n  b:\n    kind: ipxe\n", []string{"t.yaml:3", "script is required"}},
		{"efi no binary", "profiles:\n  a:\n    kind: efi\n", []string{"efi is required"}},
		{"ubuntu no iso", "profiles:\n  u:\n    preset: ubuntu-autoinstall\n    kernel: http://x/k\n    vars: {password_hash: x}\n", []string{"t.yaml:2", "iso is required", "casper"}},
		{"no password", "profiles:\n  d:\n    preset: debian-preseed\n    kernel: http://x/k\n", []string{"vars.password_hash", "openssl passwd -6", "preseed.cfg"}},
		{"fedora no repo", "profiles:\n  f:\n    preset: fedora-kickstart\n    kernel: http://x/k\n", []string{"repo is required"}},
		{"fcos no rootfs", "profiles:\n  f:\n    preset: fedora-coreos\n    kernel: http://x/k\n", []string{"rootfs is required"}},
		{"bad mirror", "profiles:\n  d:\n    preset: debian-preseed\n    kernel: http://x/k\n    mirror: deb.debian.org\n    vars: {password_hash: x}\n", []string{"mirror", "http://deb.debian.org/debian"}},
		{"preset and cmdline", "profiles:\n  m:\n    preset: linux\n    kernel: http://x/k\n    cmdline: quiet\n", []string{"cmdline is set by preset", "args"}},
		{"unknown variable", "profiles:\n  a:\n    kind: linux\n    kernel: http://x/{{.macaddr}}\n", []string{"t.yaml:2", "field kernel", "unknown template variable .macaddr", "mac_hyphen"}},
		{"template syntax", "profiles:\n  a:\n    kind: linux\n    kernel: http://x/k\n    cmdline: \"{{.mac\"\n", []string{"field cmdline", "does not parse"}},
		{"unknown var in file", "profiles:\n  a:\n    kind: local\n    files:\n      user-data: \"{{.password}}\"\n", []string{"files.user-data", ".password"}},
		{"bad file name", "profiles:\n  a:\n    kind: local\n    files:\n      ../etc: x\n", []string{`name "../etc"`}},
		{"bad profile name", "profiles:\n  Web Servers:\n    kind: local\n", []string{`profile name "Web Servers"`, "lowercase"}},
		{"name default", "profiles:\n  default:\n    kind: local\n", []string{"taken by the profile the PXE_UBUNTU_* variables define"}},
		{"bad loader", "profiles:\n  a:\n    kind: local\n    loader: grub\n", []string{`loader "grub"`, "shim"}},
		{"bad var", "profiles:\n  a:\n    kind: local\n    vars: {disk: \"/dev/sda; rm\"}\n", []string{"vars", "no spaces"}},
		{"undefined default", "default: nope\nprofiles:\n  a: {kind: local}\n", []string{"t.yaml:1", `default: profile "nope" is not defined`, "a, default"}},
		{"group unknown profile", "profiles:\n  a: {kind: local}\ngroups:\n  - name: g\n    profile: b\n    match: {platform: efi}\n", []string{"t.yaml:4", "group 1 (g)", `profile "b" is not defined`}},
		{"group empty match", "profiles:\n  a: {kind: local}\ngroups:\n  - name: g\n    profile: a\n", []string{"t.yaml:4", "match is empty", "default:"}},
		{"group bad mac", "profiles:\n  a: {kind: local}\ngroups:\n  - name: g\n    profile: a\n    match: {mac: [52:54:00]}\n", []string{"match.mac", "52:54:00"}},
		{"group bad prefix", "profiles:\n  a: {kind: local}\ngroups:\n  - name: g\n    profile: a\n    match: {mac_prefix: [5254]}\n", []string{"mac_prefix", "whole bytes"}},
		{"group bad pattern", "profiles:\n  a: {kind: local}\ngroups:\n  - name: g\n    profile: a\n    match: {product: \"[R6\"}\n", []string{"pattern", "malformed"}},
		{"group twice", "profiles:\n  a: {kind: local}\ngroups:\n  - {name: g, profile: a, match: {platform: efi}}\n  - {name: g, profile: a, match: {platform: pcbios}}\n", []string{"t.yaml:5", "used twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml), Seed{})
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestAllErrorsAtOnce: a file with several mistakes names each of them, so
// one edit fixes them all.
func TestAllErrorsAtOnce(t *testing.T) {
	_, err := Parse("t.yaml", []byte("profiles:\n  a: {kind: pxe}\n  b: {kind: linux}\n"), Seed{})
	if err == nil || !strings.Contains(err.Error(), "t.yaml:2: profile a") || !strings.Contains(err.Error(), "t.yaml:3: profile b") {
		t.Fatalf("error = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope.yaml", Seed{})
	if err == nil || !strings.Contains(err.Error(), "PXE_PROFILES_FILE") || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("error = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestEmptyFileIsTheSeed(t *testing.T) {
	set, err := Parse("t.yaml", []byte("# nothing yet\n"), Seed{KernelURL: "http://x/k", InitrdURL: "http://x/i", AutoinstallURL: "http://x/a/"})
	if err != nil {
		t.Fatal(err)
	}
	if set.Default != DefaultName || len(set.Profiles) != 1 || len(set.Profiles[DefaultName].Missing) != 0 {
		t.Fatalf("set = %+v", set)
	}
}

// TestPresetFilesOverride: a user file replaces the preset's, and with all
// of them given no password_hash is needed.
func TestPresetFilesOverride(t *testing.T) {
	set, err := Parse("t.yaml", []byte("profiles:\n  d:\n    preset: debian-preseed\n    kernel: http://x/k\n    files:\n      preseed.cfg: \"d-i preseed/early_command string true {{.installed_url}}\"\n      extra.sh: echo {{.hostname}}\n"), Seed{})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Profiles["d"]
	if got := p.Files["preseed.cfg"].Source; !strings.HasPrefix(got, "d-i preseed/early_command string true") {
		t.Fatalf("preseed.cfg = %q", got)
	}
	if strings.Join(p.FileNames(), ",") != "extra.sh,preseed.cfg" {
		t.Fatalf("files %v", p.FileNames())
	}
}

// TestTemplateVariablesChecked: every name a template takes from the data
// is checked when the file loads, wherever it stands. "$.x", the {{else}}
// of a range or with, and "$" inside their bodies used to go unchecked, so
// a typo loaded and rendered Go's "<no value>" into a boot script or an
// installer config.
func TestTemplateVariablesChecked(t *testing.T) {
	for _, src := range []string{
		"{{$.hostnme}}",
		"{{with .vars.disk}}{{.}}{{else}}{{.hostnme}}{{end}}",
		"{{range .labels}}{{.}}{{else}}{{.nope}}{{end}}",
		"{{with .vars.disk}}{{$.nope}}{{end}}",
		"{{range $k, $v := .labels}}{{$.nope}}{{end}}",
		"{{if .ip}}{{with .vars.x}}{{.}}{{else}}{{$.nope2}}{{end}}{{end}}",
	} {
		if _, err := ParseTemplate("t", src); err == nil || !strings.Contains(err.Error(), "unknown template variable") {
			t.Errorf("%q: %v, want an unknown template variable", src, err)
		}
	}
	for _, src := range []string{
		"{{$.mac}}",
		"{{with .vars.disk}}{{.}}{{end}}",
		"{{with .vars.disk}}{{$.hostname}}{{else}}{{.hostname}}{{end}}",
		"{{range $k, $v := .labels}}{{$k}}={{$v}} {{$.mac}}{{end}}",
		"{{with $d := .vars.disk}}{{$d}}{{end}}",
	} {
		if _, err := ParseTemplate("t", src); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

// TestURLFieldsChecked: a URL field that cannot be fetched whatever the
// node is refused when the file loads, naming the field; it used to load,
// and a reinstall consumed the flag on a script that could not load its
// kernel, then waited out the install timeout.
func TestURLFieldsChecked(t *testing.T) {
	for _, tc := range []struct{ field, yaml string }{
		{"kernel", "kernel: http://mirror lan/vmlinuz"},
		{"initrd[1]", "kernel: http://m/k\n    initrd: [http://m/i, mirror.lan/initrd.img]"},
		{"kernel", "kernel: //m/k"},
		{"kernel", "kernel: vmlinuz"},
	} {
		_, err := Parse("t.yaml", []byte("profiles:\n  a:\n    kind: linux\n    "+tc.yaml+"\n"), Seed{})
		if err == nil || !strings.Contains(err.Error(), "field "+tc.field) || !strings.Contains(err.Error(), "not a URL that can be fetched") {
			t.Errorf("%s: %v", tc.yaml, err)
		}
	}
	for _, y := range []string{
		"efi: http://m/uki{{.mac_hyphen}}.efi",
		"efi: '{{.vars.efi_url}}'", // left to the node's values
		"efi: TFTP://{{.ip}}/x.efi",
	} {
		if _, err := Parse("t.yaml", []byte("profiles:\n  a:\n    kind: efi\n    "+y+"\n"), Seed{}); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
}

// TestUnusedFieldsRefused: a field the profile's kind or preset does not
// read is refused, naming it; it used to load and be ignored (a kind efi
// profile's console arguments in cmdline were lost without a word).
func TestUnusedFieldsRefused(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"kind: efi\n    efi: http://m/u.efi\n    cmdline: console=ttyS0", "kind efi does not read cmdline"},
		{"kind: efi\n    efi: http://m/u.efi\n    kernel: http://m/k\n    initrd: http://m/i", "kind efi does not read kernel, initrd"},
		{"kind: local\n    script: exit", "kind local does not read script"},
		{"kind: ipxe\n    script: exit\n    args: quiet", "kind ipxe does not read args"},
		{"kind: ipxe\n    script: exit\n    loader: shim", "loader shim does not go with kind ipxe"},
		{"preset: debian-preseed\n    kernel: http://m/k\n    iso: http://m/x.iso\n    vars: {password_hash: x}", "preset debian-preseed does not read iso"},
		{"kind: linux\n    kernel: http://m/k\n    repo: http://m/os/", "kind linux does not read repo"},
	} {
		_, err := Parse("t.yaml", []byte("profiles:\n  a:\n    "+tc.yaml+"\n"), Seed{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t.yaml:2") {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
