//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// debianInstallerDir holds Debian's d-i netboot kernel and initrd (package
// debian-installer-12-netboot-amd64). They are served as they are, by the
// test's file server, never committed.
const debianInstallerDir = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"

// MACs of the profile scenarios. The lab group matches the prefix
// 52:54:00:e2:1a (whole bytes, as mac_prefix wants); the Debian group an
// exact MAC list; the unknown machine matches no group.
const (
	macLab      = "52:54:00:e2:1a:01"
	labPrefix   = "52:54:00:e2:1a"
	macUnknown  = "52:54:00:e2:b1:91"
	macDebianB  = "52:54:00:e2:b1:92"
	macDebianU  = "52:54:00:e2:ef:93"
	macSilent   = "52:54:00:e2:b1:94" // no VM: the test asks /boot as iPXE would
	diMemoryMiB = 1536                // below ~1.5 GiB d-i stops at its low-memory note
)

// profilesYAML is the appliance's PXE_PROFILES_FILE for the profile
// scenarios. The default profile is the seed's (PXE_UBUNTU_* from
// startAppliance), so the unknown machine gets the suite's fake installer
// with the seed's autoinstall command line.
func profilesYAML() string {
	files := "http://" + filesIP + ":" + filesPort
	return `# PXE Pilot e2e: written by test/e2e/profiles_test.go
profiles:
  debian:
    preset: debian-preseed
    kernel: ` + files + `/debian/linux
    initrd: ` + files + `/debian/initrd.gz
    # The test LAN's router hands out no DNS server: without an empty
    # nameserver answer d-i stops to ask for one. hostname= and domain=
    # come from the preset.
    args: console=ttyS0 quiet netcfg/get_nameservers=
    files:
      # The preset's own preseed.cfg reports "installed" in late_command,
      # after a whole install from a Debian mirror; the test LAN has no
      # mirror, so this one makes the same call-backs (busybox wget in d-i,
      # the install's token in the URL) from early_command, which d-i runs
      # as soon as it has loaded this file.
      preseed.cfg: |
        # PXE Pilot e2e preseed for {{.mac}} ({{.hostname}}), profile {{.profile}}
        d-i preseed/early_command string wget -q -O /dev/null --post-data 'reporter=d-i&message=preseed-loaded' '{{.progress_url}}'; wget -q -O /dev/null --post-data 'reporter=d-i' '{{.installed_url}}'
        d-i debian-installer/locale string en_US.UTF-8
        d-i keyboard-configuration/xkb-keymap select us
        d-i netcfg/choose_interface select auto
  busybox:
    kind: linux
    kernel: ` + files + `/ubuntu/vmlinuz
    initrd: ` + files + `/ubuntu/initrd
    # The fake installer POSTs to pxe_report= (test/e2e/images.go).
    cmdline: console=ttyS0 quiet pxe_report={{.failed_url}}
groups:
  - name: debian-lab
    profile: debian
    match: {mac: ["` + macDebianB + `", "` + macDebianU + `"]}
  - name: busybox-lab
    profile: busybox
    match: {mac_prefix: "` + labPrefix + `"}
  # The silent install of the stall check: a profile whose installer is
  # told its token (the seed's default profile never is, so its installs
  # are left to the admin, as before profiles existed).
  - name: silent
    profile: busybox
    match: {mac: ["` + macSilent + `"]}
`
}

// writeProfilesFile writes the profiles file into the work directory and a
// copy among the artefacts.
func writeProfilesFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(s.work, "profiles.yaml")
	y := profilesYAML()
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(s.artifacts, "profiles.yaml"), []byte(y), 0o644)
	return p
}

// nodeView is the part of GET /nodes/<mac> the profile scenarios read.
type nodeView struct {
	State     string `json:"state"`
	Reinstall bool   `json:"reinstall"`
	Install   *struct {
		Profile     string `json:"profile"`
		Rule        string `json:"rule"`
		Token       string `json:"token"`
		Outcome     string `json:"outcome"`
		Reason      string `json:"reason"`
		Reporter    string `json:"reporter"`
		Progress    string `json:"progress"`
		Downloads   int    `json:"downloads"`
		NoCallbacks bool   `json:"no_callbacks"`
	} `json:"install"`
}

func getNode(a *appliance, mac string) (nodeView, error) {
	var n nodeView
	code, body, err := a.do("GET", "/nodes/"+mac)
	if err != nil {
		return n, err
	}
	if code != 200 {
		return n, fmt.Errorf("GET /nodes/%s: %d %s", mac, code, body)
	}
	return n, json.Unmarshal(body, &n)
}

func mustNode(t *testing.T, a *appliance, mac string) nodeView {
	t.Helper()
	n, err := getNode(a, mac)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitState polls the admin API until the node is in state want, for at
// most limit; it returns the node and how long it waited.
func waitState(t *testing.T, a *appliance, mac, want string, limit time.Duration) (nodeView, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		n, err := getNode(a, mac)
		if err == nil && n.State == want {
			return n, time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("node %s: state %q (err %v), want %q within %s\n--- %s log tail ---\n%s", mac, n.State, err, want, limit, a.name, tail(a.p.log(), 30))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// untilState is a vmSpec.until that asks the appliance (at most once a
// second) for the node's state: reaching want ends the boot with marker
// "node <want>"; any other end state ends it at once, as a failure.
func untilState(a *appliance, mac, want string) func(string) string {
	var last time.Time
	return func(string) string {
		if time.Since(last) < time.Second {
			return ""
		}
		last = time.Now()
		n, err := getNode(a, mac)
		if err != nil {
			return ""
		}
		switch n.State {
		case want:
			return "node " + want
		case "failed", "installed", "local":
			return "node " + n.State + " (wanted " + want + ")"
		}
		return ""
	}
}

// event is one entry of GET /nodes/<mac>/events.
type event struct {
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	IP       string    `json:"ip"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason"`
	Profile  string    `json:"profile"`
	Rule     string    `json:"rule"`
	State    string    `json:"state"`
}

func events(t *testing.T, a *appliance, mac string) []event {
	t.Helper()
	code, body, err := a.do("GET", "/nodes/"+mac+"/events")
	if err != nil || code != 200 {
		t.Fatalf("GET /nodes/%s/events: %d %v %s", mac, code, err, body)
	}
	var out struct {
		Events []event `json:"events"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET /nodes/%s/events: %v: %s", mac, err, body)
	}
	return out.Events
}

// findEvent returns the first event of the type (boot events have type "")
// matching decision (when given), or fails.
func findEvent(t *testing.T, evs []event, typ, decision string) event {
	t.Helper()
	for _, e := range evs {
		if e.Type == typ && (decision == "" || e.Decision == decision) {
			return e
		}
	}
	t.Fatalf("no event of type %q (decision %q) among %+v", typ, decision, evs)
	return event{}
}

// wantBootEvent: the reinstall boot event names the profile and the rule.
func wantBootEvent(t *testing.T, a *appliance, mac, profile, rulePrefix string) {
	t.Helper()
	e := findEvent(t, events(t, a, mac), "", "reinstall")
	if e.Profile != profile || !strings.HasPrefix(e.Rule, rulePrefix) {
		t.Errorf("%s boot event: profile %q, rule %q; want profile %q, rule %q…", mac, e.Profile, e.Rule, profile, rulePrefix)
	} else {
		t.Logf("%s boot event: profile %q, rule %q", mac, e.Profile, e.Rule)
	}
}

// postAnonymous is a call-back from any host on the LAN: no admin key.
func postAnonymous(a *appliance, path string) (int, string, error) {
	req, err := http.NewRequest("POST", a.base+path, strings.NewReader("reporter=intruder"))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}
