package profiles

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// TestResolvePrecedence: the node's own setting beats every group, groups
// are tried in file order (first match wins), and the default takes the
// rest; each answer names the rule.
func TestResolvePrecedence(t *testing.T) {
	set, err := Load("testdata/example.yaml", Seed{})
	if err != nil {
		t.Fatal(err)
	}
	line := func(name string) string {
		for _, g := range set.Groups {
			if g.Name == name {
				return fmt.Sprintf("group %s (%s)", name, g.Source)
			}
		}
		t.Fatalf("no group %s", name)
		return ""
	}
	dell := store.Facts{Manufacturer: "Dell Inc.", Product: "PowerEdge R640", Platform: "efi"}
	for _, tc := range []struct {
		name          string
		node          store.Node
		profile, rule string
	}{
		{"unknown machine", store.Node{MAC: "aa:bb:cc:00:00:01"}, "ubuntu", RuleDefault},
		{"mac prefix", store.Node{MAC: "52:54:00:0a:12:34"}, "debian", line("lab-vms")},
		{"prefix is by whole bytes", store.Node{MAC: "52:54:00:0b:12:34"}, "ubuntu", RuleDefault},
		{"facts and labels", store.Node{MAC: "aa:bb:cc:00:00:02", Facts: dell, Labels: map[string]string{"role": "worker"}}, "fedora", line("dell-workers")},
		{"facts match case-insensitively", store.Node{MAC: "aa:bb:cc:00:00:03", Facts: store.Facts{Manufacturer: "DELL INC."}, Labels: map[string]string{"role": "worker"}}, "fedora", line("dell-workers")},
		{"all conditions must hold", store.Node{MAC: "aa:bb:cc:00:00:04", Facts: dell, Labels: map[string]string{"role": "db"}}, "ubuntu", RuleDefault},
		{"label wildcard", store.Node{MAC: "aa:bb:cc:00:00:05", Labels: map[string]string{"protected": "yes"}}, "keep", line("protected")},
		{"first match wins", store.Node{MAC: "52:54:00:0a:00:09", Labels: map[string]string{"protected": "yes"}}, "debian", line("lab-vms")},
		{"mac list, either spelling", store.Node{MAC: "52:54:00:0b:00:02"}, "rescue", line("rescue-list")},
		{"node setting beats groups", store.Node{MAC: "52:54:00:0a:00:01", Profile: "memtest"}, "memtest", RuleNode},
		{"node setting beats default", store.Node{MAC: "aa:bb:cc:00:00:06", Profile: "uki"}, "uki", RuleNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := set.Resolve(&tc.node)
			if r.Err != nil || r.Name != tc.profile || r.Profile == nil || r.Profile.Name != tc.profile || r.Rule != tc.rule {
				t.Fatalf("Resolve = %q by %q (err %v), want %q by %q", r.Name, r.Rule, r.Err, tc.profile, tc.rule)
			}
		})
	}
}

// TestResolveUndefined: a node set to a profile the file no longer defines
// gets an error that says so and what to do; nothing falls back silently.
func TestResolveUndefined(t *testing.T) {
	set, err := Load("testdata/example.yaml", Seed{})
	if err != nil {
		t.Fatal(err)
	}
	r := set.Resolve(&store.Node{MAC: "aa:bb:cc:00:00:07", Profile: "gone"})
	if r.Err == nil || r.Profile != nil || !strings.Contains(r.Err.Error(), `profile "gone"`) || !strings.Contains(r.Err.Error(), "testdata/example.yaml") {
		t.Fatalf("Resolve = %+v", r)
	}
}

// TestBigMACList: a group listing thousands of machines matches by set.
func TestBigMACList(t *testing.T) {
	var b strings.Builder
	b.WriteString("profiles:\n  a: {kind: local}\n  b: {kind: local}\ngroups:\n  - name: first\n    profile: a\n    match: {platform: efi}\n  - name: many\n    profile: b\n    match:\n      mac:\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "        - 02:00:00:00:%02x:%02x\n", i>>8, i&0xff)
	}
	set, err := Parse("t.yaml", []byte(b.String()), Seed{})
	if err != nil {
		t.Fatal(err)
	}
	if r := set.Resolve(&store.Node{MAC: "02:00:00:00:13:87"}); r.Name != "b" {
		t.Fatalf("listed MAC got %q by %q", r.Name, r.Rule)
	}
	if r := set.Resolve(&store.Node{MAC: "02:00:00:00:13:87", Facts: store.Facts{Platform: "efi"}}); r.Name != "a" {
		t.Fatalf("earlier group lost: %q by %q", r.Name, r.Rule)
	}
	if r := set.Resolve(&store.Node{MAC: "02:00:00:00:ff:ff"}); r.Name != DefaultName {
		t.Fatalf("unlisted MAC got %q", r.Name)
	}
}
