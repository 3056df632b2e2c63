package httpapi

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

const profilesYAML = `profiles:
  deb:
    preset: debian-preseed
    kernel: http://198.51.100.10/d/linux
    initrd: http://198.51.100.10/d/initrd.gz
    vars: {password_hash: "$6$x$y"}
  menu:
    kind: ipxe
    script: chain --autofree http://198.51.100.10/menu.ipxe
groups:
  - name: lab
    profile: deb
    match: {mac_prefix: ["52:54:00:0a"]}
`

func withProfiles(t testing.TB) func(*Config) {
	set, err := profiles.Parse("profiles.yaml", []byte(profilesYAML), fullBoot.Seed())
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Profiles = func() *profiles.Set { return set } }
}

var installURL = regexp.MustCompile(`url=(http://[^ ]+/install/([0-9a-f:]+)/([0-9a-f]{32})/)preseed\.cfg`)

// startInstall marks mac, boots it and returns the install URL and token
// the script carried.
func startInstall(t *testing.T, e *env, mac string) (base, token string) {
	t.Helper()
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	script := wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)
	m := installURL.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no install URL in the script:\n%s", script)
	}
	if !strings.Contains(script, "# profile deb, chosen by group lab (profiles.yaml:11)") {
		t.Errorf("script does not say which rule chose the profile:\n%s", script)
	}
	return strings.TrimPrefix(m[1], testBaseURL), m[3]
}

// TestInstallLifecycle: the served preseed carries this install's token;
// progress, then installed, move the node; events and metrics follow.
func TestInstallLifecycle(t *testing.T) {
	e := newEnv(t, withProfiles(t))
	const mac = "52:54:00:0a:00:01"
	base, token := startInstall(t, e, mac)
	n := e.node(mac)
	if n.State != store.StateInstalling || n.Install == nil || n.Install.Profile != "deb" || n.Install.Rule != "group lab (profiles.yaml:11)" || n.Install.Token != token {
		t.Fatalf("after the installer was served: %+v %+v", n, n.Install)
	}

	w := e.do("GET", base+"preseed.cfg", "")
	wantCode(t, w, http.StatusOK)
	cfg := w.Body.String()
	for _, want := range []string{"d-i passwd/user-password-crypted password $6$x$y", base + "installed", "d-i netcfg/get_hostname string pxe-525400" + "0a0001"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("preseed.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if n := e.node(mac); n.Install.Downloads != 1 || n.Install.LastWord == nil {
		t.Errorf("download not recorded: %+v", n.Install)
	}

	w = e.do("POST", base+"progress", "message=partitioning", "Content-Type", "application/x-www-form-urlencoded")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalling || n.Install.Progress != "partitioning" || n.Install.Token != "" {
		t.Fatalf("progress answered %+v (the token must never be shown)", n.Install)
	}
	w = e.do("POST", base+"installed", "reporter=d-i", "Content-Type", "application/x-www-form-urlencoded")
	wantCode(t, w, http.StatusOK)
	if n := e.node(mac); n.State != store.StateInstalled || n.Install.Outcome != "installed" || n.Install.Reporter != "d-i" {
		t.Fatalf("after installed: %+v %+v", n, n.Install)
	}
	// The install is over: its token opens nothing any more.
	wantJSONError(t, e.do("POST", base+"failed", ""), http.StatusConflict, "not installing")
	if got := testutil.ToFloat64(e.m.InstallTransitions.WithLabelValues("installed")); got != 1 {
		t.Errorf("install_transitions_total{state=installed} = %v", got)
	}
	ev, _ := e.st.Events(mustMAC(t, mac))
	var kinds []string
	for _, x := range ev {
		kinds = append(kinds, x.Type+x.Decision+"/"+x.Profile)
	}
	if got := strings.Join(kinds, " "); got != "installed/deb progress/deb reinstall/deb" {
		t.Errorf("events newest first: %s", got)
	}
	// The next boot is local.
	if s := wantScript(t, e.boot(mac, "pcbios"), http.StatusOK); !strings.Contains(s, "sanboot") {
		t.Errorf("boot after the install:\n%s", s)
	}
}

// TestInstallTokenRefusals: no token, a wrong one or a stale one gets 403
// and changes nothing; the admin key still works.
func TestInstallTokenRefusals(t *testing.T) {
	e := newEnv(t, func(c *Config) { withProfiles(t)(c); c.AdminKey = "s3cret" })
	const mac = "52:54:00:0a:00:02"
	admin := []string{"Authorization", "Bearer s3cret"}
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", "", admin...), http.StatusOK)

	// Before the install starts, nobody without the key can cancel it.
	wantJSONError(t, e.do("POST", "/installed?mac="+mac, ""), http.StatusForbidden, "token")
	wantJSONError(t, e.do("POST", "/install/"+mac+"/00000000000000000000000000000000/installed", ""), http.StatusForbidden, "token")
	if n := e.node(mac); n.State != store.StateReinstall {
		t.Fatalf("a refused call-back changed the node: %s", n.State)
	}
	script := wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	m := installURL.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no install URL:\n%s", script)
	}
	base, token := strings.TrimPrefix(m[1], testBaseURL), m[3]
	bad := strings.Replace(base, token, strings.Repeat("f", 32), 1)
	wantJSONError(t, e.do("GET", bad+"preseed.cfg", ""), http.StatusForbidden, "stale")
	wantJSONError(t, e.do("POST", bad+"failed", ""), http.StatusForbidden, "token")
	wantJSONError(t, e.do("GET", base+"user-data", ""), http.StatusNotFound, `profile "deb" has no file "user-data"`, "preseed.cfg")
	wantJSONError(t, e.do("POST", base+"rebooted", ""), http.StatusNotFound, "installed, failed or progress")
	if n := e.node(mac); n.State != store.StateInstalling {
		t.Fatalf("refusals changed the node: %s", n.State)
	}

	// A failure report with its reason.
	w := e.do("POST", base+"failed?reason=no+disk+found", "")
	wantCode(t, w, http.StatusOK)
	if n := e.node(mac); n.State != store.StateFailed || n.Install.Reason != "no disk found" {
		t.Fatalf("after failed: %+v", n.Install)
	}
	// A new install gets a new token: the old one is stale.
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", "", admin...), http.StatusOK)
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	wantJSONError(t, e.do("POST", "/installed?mac="+mac+"&token="+token, ""), http.StatusForbidden, "stale")
	// The admin key marks it installed.
	w = e.do("POST", "/installed?mac="+mac, "", admin...)
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalled || n.Install.Reporter != "admin" {
		t.Fatalf("admin installed: %+v", n.Install)
	}
	if got := testutil.ToFloat64(e.m.InstallReports.WithLabelValues("refused")); got != 4 {
		t.Errorf("install_reports_total{result=refused} = %v, want 4", got)
	}
	if got := testutil.ToFloat64(e.m.InstallFiles.WithLabelValues("refused")); got != 1 {
		t.Errorf("install_files_total{result=refused} = %v, want 1", got)
	}
}

// TestStallSweep: an install with no word for the timeout ends failed,
// "stalled"; one that reported in time does not.
func TestStallSweep(t *testing.T) {
	e := newEnv(t, withProfiles(t))
	const silent, chatty = "52:54:00:0a:00:03", "52:54:00:0a:00:04"
	startInstall(t, e, silent)
	base, _ := startInstall(t, e, chatty)
	now := e.clock.Now()
	sw := &boot.Sweeper{Store: e.st, Timeout: time.Hour, Log: quiet, Now: func() time.Time { return now }}
	if n, err := sw.Sweep(); err != nil || n != 0 {
		t.Fatalf("early sweep failed %d installs (%v)", n, err)
	}
	now = now.Add(50 * time.Minute)
	e.clock.t = now
	wantCode(t, e.do("POST", base+"progress", ""), http.StatusOK)
	now = now.Add(20 * time.Minute)
	if n, err := sw.Sweep(); err != nil || n != 1 {
		t.Fatalf("sweep failed %d installs (%v), want 1", n, err)
	}
	if n := e.node(silent); n.State != store.StateFailed || n.Install.Reason != store.StallReason {
		t.Fatalf("silent install: %s %+v", n.State, n.Install)
	}
	if n := e.node(chatty); n.State != store.StateInstalling {
		t.Fatalf("install that reported in time: %s", n.State)
	}
	ev, _ := e.st.Events(mustMAC(t, silent))
	if ev[0].Type != store.EventFailed || !strings.Contains(ev[0].Reason, "stalled") {
		t.Fatalf("newest event %+v", ev[0])
	}
}

// TestProfileAssignment: PUT/DELETE /nodes/<mac>/profile and PATCH
// /nodes/<mac> validate against the loaded profiles, and the next install
// follows the assignment.
func TestProfileAssignment(t *testing.T) {
	e := newEnv(t, withProfiles(t))
	const mac = "52:54:00:0b:00:01" // no group matches: the default
	wantJSONError(t, e.do("PUT", "/nodes/"+mac+"/profile", `{"profile":"nope"}`), http.StatusBadRequest, `profile "nope" is not defined`, "deb, default, menu")
	wantJSONError(t, e.do("PATCH", "/nodes/"+mac, `{"labels":{"rack":"r 1"}}`), http.StatusBadRequest, "no spaces")
	wantJSONError(t, e.do("PATCH", "/nodes/"+mac, `{"hostname":"-bad"}`), http.StatusBadRequest, "RFC 1123")
	w := e.do("PATCH", "/nodes/"+mac, `{"hostname":"web1","labels":{"rack":"r1"},"vars":{"disk":"/dev/vda"}}`)
	wantCode(t, w, http.StatusOK)
	wantCode(t, e.do("PUT", "/nodes/"+mac+"/profile", `{"profile":"menu"}`), http.StatusOK)
	w = e.do("GET", "/nodes/"+mac+"/decision", "")
	if d := jsonBody[map[string]any](t, w); d["decision"] != "local" {
		t.Fatalf("decision before reinstall: %v", d)
	}
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	w = e.do("GET", "/nodes/"+mac+"/decision", "")
	if d := jsonBody[map[string]any](t, w); d["profile"] != "menu" || d["rule"] != "node setting" || !strings.Contains(d["ipxe"].(string), "menu.ipxe") {
		t.Fatalf("decision: %v", d)
	}
	if n := e.node(mac); n.State != store.StateReinstall {
		t.Fatalf("GET decision consumed the flag: %s", n.State)
	}
	s := wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	if !strings.Contains(s, "chain --autofree http://198.51.100.10/menu.ipxe") || !strings.Contains(s, "chosen by node setting") {
		t.Fatalf("script:\n%s", s)
	}
	wantCode(t, e.do("DELETE", "/nodes/"+mac+"/profile", ""), http.StatusOK)
	if n := e.node(mac); n.Profile != "" || n.Hostname != "web1" || n.Labels["rack"] != "r1" {
		t.Fatalf("after DELETE profile: %+v", n)
	}
	w = e.do("GET", "/profiles", "")
	if p := jsonBody[map[string]any](t, w); p["default"] != "default" || len(p["groups"].([]any)) != 1 {
		t.Fatalf("GET /profiles: %v", p)
	}
}

// TestMissingProfileKeepsFlag: a node set to a profile that no longer
// exists is told why on its console and keeps its reinstall pending.
func TestMissingProfileKeepsFlag(t *testing.T) {
	e := newEnv(t, withProfiles(t))
	const mac = "52:54:00:0b:00:02"
	_, err := e.st.Update(mustMAC(t, mac), true, t0, func(n *store.Node) (*store.Event, error) {
		n.Profile = "removed"
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	s := wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	if !strings.Contains(s, `profile _removed_`) || !strings.Contains(s, "exit 1") {
		t.Fatalf("script:\n%s", s)
	}
	if n := e.node(mac); n.State != store.StateReinstall {
		t.Fatalf("flag consumed without an installer: %s", n.State)
	}
}

// TestSeedInstallNeverStalls: an install of the seed's default profile
// cannot report (its installer never learns the token), so the stall rule
// leaves it installing, as before profiles existed.
func TestSeedInstallNeverStalls(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:0c:00:01"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	now := e.clock.Now().Add(100 * time.Hour)
	sw := &boot.Sweeper{Store: e.st, Timeout: time.Hour, Log: quiet, Now: func() time.Time { return now }}
	if n, err := sw.Sweep(); err != nil || n != 0 {
		t.Fatalf("sweep failed %d seed installs (%v)", n, err)
	}
	if n := e.node(mac); n.State != store.StateInstalling || !n.Install.NoCallbacks {
		t.Fatalf("seed install: %s %+v", n.State, n.Install)
	}
}
