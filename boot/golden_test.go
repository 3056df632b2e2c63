package boot

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const goldenToken = "0123456789abcdef0123456789abcdef"

// goldenNode is a node marked for reinstall with every fact a template can
// use, including ones a hostile firmware might send.
func goldenNode(profile string) store.Node {
	seen := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	return store.Node{
		MAC: "52:54:00:0a:00:01", State: store.StateReinstall, Reinstall: true, Profile: profile,
		LastSeen: &seen, LastIP: "203.0.113.50", Hostname: "web1",
		Labels: map[string]string{"rack": "r1"},
		Facts: store.Facts{Platform: "efi", BuildArch: "x86_64", UUID: "8f2c1f9e-0b7d-4c57-9d2a-0d6b1c1e2f33",
			Serial: "SN 42 ${evil} || shell", Manufacturer: "QEMU", Product: "Standard PC (Q35 + ICH9, 2009)"},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./boot -run Golden -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test ./boot -run Golden -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestGoldenProfiles renders every profile of profiles/testdata/example.yaml
// (one per preset and kind) for the same node: its iPXE script and each of
// its installer configs.
func TestGoldenProfiles(t *testing.T) {
	set, err := profiles.Load(filepath.Join("..", "profiles", "testdata", "example.yaml"), profiles.Seed{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{BaseURL: "http://198.51.100.1:8000", LocalBoot: LocalBootAuto}
	for _, name := range set.Names() {
		if name == profiles.DefaultName {
			continue
		}
		n := goldenNode(name)
		cl := Client{MAC: n.MAC, IP: n.LastIP, Platform: "efi", Loader: LoaderIPXE}
		plan := Decide(n, cl, set, cfg, goldenToken)
		script, err := IPXE(plan)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkGolden(t, name+".ipxe", script)
		if strings.Contains(string(script), "${evil}") {
			t.Errorf("%s: a fact reached the script unsanitised:\n%s", name, script)
		}
		p := set.Profiles[name]
		for _, f := range p.FileNames() {
			text, err := p.Files[f].Render(TemplateData(n, cl, p, cfg.BaseURL, goldenToken))
			if err != nil {
				t.Fatalf("%s/%s: %v", name, f, err)
			}
			checkGolden(t, name+"."+f, []byte(text))
		}
	}
}

// TestUbuntuUserDataKeepsStrings: the Ubuntu preset's cloud-init files
// carry the node's hostname and username as YAML strings, whatever the
// API accepted. Unquoted, a hostname "0777" was read as the number 511,
// "on" as true by cloud-init's YAML 1.1, and a username "@ops" made the
// whole user-data unreadable, failing the install.
func TestUbuntuUserDataKeepsStrings(t *testing.T) {
	set, err := profiles.Load(filepath.Join("..", "profiles", "testdata", "example.yaml"), profiles.Seed{})
	if err != nil {
		t.Fatal(err)
	}
	p := set.Profiles["ubuntu"]
	if p == nil {
		t.Fatal("example.yaml has no ubuntu profile")
	}
	cfg := Config{BaseURL: "http://198.51.100.1:8000", LocalBoot: LocalBootAuto}
	for _, c := range []struct{ hostname, username string }{{"0777", "@ops"}, {"on", "yes"}, {"web1", "1e3"}} {
		n := goldenNode("ubuntu")
		n.Hostname, n.Vars = c.hostname, map[string]string{"username": c.username}
		cl := Client{MAC: n.MAC, IP: n.LastIP, Platform: "efi", Loader: LoaderIPXE}
		data := TemplateData(n, cl, p, cfg.BaseURL, goldenToken)
		var user struct {
			Autoinstall struct {
				Identity struct{ Hostname, Username any }
			}
		}
		var meta map[string]any
		for f, v := range map[string]any{"user-data": &user, "meta-data": &meta} {
			text, err := p.Files[f].Render(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(text), v); err != nil {
				t.Fatalf("%+v: %s is not YAML: %v\n%s", c, f, err, text)
			}
		}
		id := user.Autoinstall.Identity
		if id.Hostname != c.hostname || id.Username != c.username || meta["local-hostname"] != c.hostname {
			t.Errorf("%+v: user-data has hostname %#v, username %#v; meta-data local-hostname %#v", c, id.Hostname, id.Username, meta["local-hostname"])
		}
	}
}
