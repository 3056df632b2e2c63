package profiles

import (
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// FuzzParse: any file either loads, or is refused with an error naming it;
// a file that loads resolves and renders every profile for a node without
// error, and every rendered one-line field stays one line.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"profiles:\n  a: {kind: local}\n",
		"default: a\nprofiles:\n  a:\n    kind: linux\n    kernel: http://x/{{.mac}}\n    cmdline: \"ip={{.ip}} {{.labels.rack}}\"\ngroups:\n  - {name: g, profile: a, match: {mac_prefix: [\"52:54\"]}}\n",
		"profiles:\n  m:\n    kind: ipxe\n    script: \"chain {{.files_url}}x\"\n    files: {x: \"{{json .hostname}}\"}\n",
		"profiles:\n  u:\n    preset: ubuntu-autoinstall\n    kernel: k\n    iso: i\n    vars: {password_hash: h}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data, Seed{})
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		n := store.Node{MAC: "52:54:00:12:34:56", Labels: map[string]string{"rack": "r1"}, Facts: store.Facts{Serial: "a b\nc"}}
		d := Data{"mac": string(n.MAC), "mac_hyphen": n.MAC.Hyphen(), "ip": "203.0.113.5", "uuid": "", "serial": "a_b_c",
			"manufacturer": "", "product": "", "platform": "efi", "buildarch": "x86_64", "hostname": "h", "labels": n.Labels,
			"vars": map[string]string{}, "base_url": "http://b", "profile": "p", "token": "t", "files_url": "http://b/f/",
			"installed_url": "http://b/f/installed", "failed_url": "http://b/f/failed", "progress_url": "http://b/f/progress"}
		for _, name := range set.Names() {
			n.Profile = name
			if r := set.Resolve(&n); r.Err != nil || r.Name != name {
				t.Fatalf("Resolve(%s) = %+v", name, r)
			}
			p := set.Profiles[name]
			for _, tm := range append([]*Template{p.Kernel, p.Cmdline, p.Script, p.EFI, p.Args}, p.Initrds...) {
				if _, err := tm.Render(d); err != nil && !strings.Contains(err.Error(), "error calling") {
					t.Fatalf("profile %s did not render: %v", name, err)
				}
			}
		}
	})
}

// FuzzTemplate: a template that parses names only known variables, and
// renders without panicking.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{.mac}}", "{{.labels.rack}}", "{{range .vars}}{{.}}{{end}}", "{{if .ip}}{{.ip}}{{else}}{{.nope}}{{end}}", "{{template \"x\"}}", "{{define \"x\"}}{{.bad}}{{end}}", "{{$.mac}}", "{{with .vars.x}}{{.}}{{else}}{{$.hostname}}{{end}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tm, err := ParseTemplate("f", src)
		if err != nil {
			return
		}
		if _, err := tm.Render(sample); err != nil {
			t.Fatalf("%q parsed but does not render: %v", src, err)
		}
	})
}
