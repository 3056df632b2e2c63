package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// TestNodeAnswersHideInstallToken: the install token is the installer's
// secret for its call-backs; no admin answer carrying the node shows it
// (store.Node.Public), whichever endpoint answers.
func TestNodeAnswersHideInstallToken(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:aa:bb:41"
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)
	n := e.node(mac)
	if n.State != store.StateInstalling || n.Install == nil || n.Install.Token == "" {
		t.Fatalf("after the reinstall boot: %+v (install %+v), want installing with a token", n, n.Install)
	}
	token := n.Install.Token
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/nodes/" + mac, ""},
		{"GET", "/nodes", ""},
		{"DELETE", "/nodes/" + mac + "/reinstall", ""},
		{"PUT", "/nodes/" + mac + "/local-boot-config", `{"script": "exit 1"}`},
		{"DELETE", "/nodes/" + mac + "/local-boot-config", ""},
	} {
		w := e.do(c.method, c.path, c.body)
		wantCode(t, w, http.StatusOK)
		if strings.Contains(w.Body.String(), token) {
			t.Errorf("%s %s shows the install token:\n%s", c.method, c.path, w.Body.String())
		}
	}
}

const installAdminKey = "install-test-admin-key"

// installProfiles: a linux profile with two installer configs, given to
// every 52:54:00:aa:cc:* machine by a group.
const installProfiles = `profiles:
  lab:
    kind: linux
    kernel: http://198.51.100.10/lab/vmlinuz
    initrd: http://198.51.100.10/lab/initrd
    cmdline: console=ttyS0 ks={{.files_url}}ks.cfg
    files:
      ks.cfg: |
        # {{.mac}} {{.profile}}
        %post
        curl -X POST {{.installed_url}}
        %end
        %onerror
        curl -X POST {{.failed_url}}
        %end
      notes.txt: "progress {{.progress_url}}"
groups:
  - name: lab
    profile: lab
    match: {mac_prefix: "52:54:00:aa:cc"}
`

// newInstallEnv is an API with the lab profile and an admin key.
func newInstallEnv(t *testing.T) *env {
	t.Helper()
	set, err := profiles.Parse("install-test.yaml", []byte(installProfiles), fullBoot.Seed())
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(c *Config) {
		c.AdminKey = installAdminKey
		c.Profiles = func() *profiles.Set { return set }
	})
}

// admin is e.do with the admin key.
func (e *env) admin(method, target, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(method, target, body, "Authorization", "Bearer "+installAdminKey)
}

// startInstall sets the reinstall flag and boots mac once; it returns the
// install's token and its files URL path.
func (e *env) startInstall(mac string) (token, dir string) {
	e.t.Helper()
	wantCode(e.t, e.admin("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantScript(e.t, e.boot(mac, "pcbios"), http.StatusOK)
	n := e.node(mac)
	if n.State != store.StateInstalling || n.Install == nil || n.Install.Token == "" {
		e.t.Fatalf("after the reinstall boot of %s: state %s, install %+v", mac, n.State, n.Install)
	}
	return n.Install.Token, "/install/" + mac + "/" + n.Install.Token + "/"
}

func TestInstallFileServedWithToken(t *testing.T) {
	e := newInstallEnv(t)
	const mac = "52:54:00:aa:cc:01"
	token, dir := e.startInstall(mac)
	w := e.do("GET", dir+"ks.cfg", "")
	wantCode(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	want := "# " + mac + " lab\n%post\ncurl -X POST " + testBaseURL + "/install/" + mac + "/" + token + "/installed\n%end\n" +
		"%onerror\ncurl -X POST " + testBaseURL + "/install/" + mac + "/" + token + "/failed\n%end\n"
	if got := w.Body.String(); got != want {
		t.Errorf("ks.cfg rendered\n%s\nwant\n%s", got, want)
	}
	// The MAC may be written any way ParseMAC takes.
	wantCode(t, e.do("GET", "/install/52-54-00-AA-CC-01/"+token+"/notes.txt", ""), http.StatusOK)
	if got := testutil.ToFloat64(e.m.InstallFiles.WithLabelValues("served")); got != 2 {
		t.Errorf(`install_files_total{result="served"} = %v, want 2`, got)
	}
	n := e.node(mac)
	if n.Install.Downloads != 2 || n.Install.LastWord == nil {
		t.Errorf("install record after two downloads: %+v", n.Install)
	}
}

func TestInstallFileRefusedWithoutToken(t *testing.T) {
	e := newInstallEnv(t)
	const mac = "52:54:00:aa:cc:02"
	// No install yet: no token is valid.
	wantJSONError(t, e.do("GET", "/install/"+mac+"/0123456789abcdef0123456789abcdef/ks.cfg", ""), http.StatusForbidden, "wrong or stale token")
	old, _ := e.startInstall(mac)
	for _, tok := range []string{"0123456789abcdef0123456789abcdef", old[:len(old)-1], old + "0"} {
		wantJSONError(t, e.do("GET", "/install/"+mac+"/"+tok+"/ks.cfg", ""), http.StatusForbidden, "wrong or stale token")
	}
	// The admin key is no token for installer configs.
	wantJSONError(t, e.admin("GET", "/install/"+mac+"/x/ks.cfg", ""), http.StatusForbidden)
	// Another install: the first one's token is stale.
	wantCode(t, e.admin("POST", "/installed?mac="+mac, ""), http.StatusOK)
	_, dir := e.startInstall(mac)
	wantJSONError(t, e.do("GET", "/install/"+mac+"/"+old+"/ks.cfg", ""), http.StatusForbidden, "wrong or stale token")
	wantCode(t, e.do("GET", dir+"ks.cfg", ""), http.StatusOK)
	if got := testutil.ToFloat64(e.m.InstallFiles.WithLabelValues("refused")); got != 6 {
		t.Errorf(`install_files_total{result="refused"} = %v, want 6`, got)
	}
}

func TestInstallFileUnknownNamesKnownFiles(t *testing.T) {
	e := newInstallEnv(t)
	_, dir := e.startInstall("52:54:00:aa:cc:03")
	wantJSONError(t, e.do("GET", dir+"preseed.cfg", ""), http.StatusNotFound, `profile "lab" has no file "preseed.cfg"`, "ks.cfg, notes.txt")
	if got := testutil.ToFloat64(e.m.InstallFiles.WithLabelValues("missing")); got != 1 {
		t.Errorf(`install_files_total{result="missing"} = %v, want 1`, got)
	}
	// The default profile (the seed's variables) has no files at all.
	const other = "52:54:00:aa:dd:03"
	_, dir = e.startInstall(other)
	wantJSONError(t, e.do("GET", dir+"user-data", ""), http.StatusNotFound, `profile "default" has no file "user-data" (it has: none)`)
}

func TestInstallCallbacks(t *testing.T) {
	e := newInstallEnv(t)
	const mac = "52:54:00:aa:cc:04"
	_, dir := e.startInstall(mac)

	w := e.do("POST", dir+"progress", "reporter=anaconda&message=partitioning", "Content-Type", "application/x-www-form-urlencoded")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalling || n.Install == nil || n.Install.Progress != "partitioning" || n.Install.Token != "" {
		t.Errorf("after progress: %+v (install %+v)", n, n.Install)
	}
	w = e.do("POST", dir+"installed", "reporter=anaconda", "Content-Type", "application/x-www-form-urlencoded")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalled || n.Install.Outcome != "installed" || n.Install.Reporter != "anaconda" {
		t.Errorf("after installed: %+v (install %+v)", n, n.Install)
	}
	// The install is over: its token takes no more call-backs.
	wantJSONError(t, e.do("POST", dir+"failed", ""), http.StatusConflict, "not installing")
	wantJSONError(t, e.do("POST", dir+"finished", ""), http.StatusNotFound, "installed, failed or progress")
	wantScript(t, e.boot(mac, "pcbios"), http.StatusOK) // boots local now
	if n := e.node(mac); n.State != store.StateInstalled {
		t.Errorf("boot after installed: state %s", n.State)
	}

	// A second install fails, with the installer's reason (query or form).
	_, dir2 := e.startInstall(mac)
	wantJSONError(t, e.do("POST", dir+"installed", ""), http.StatusForbidden, "stale") // the first token
	w = e.do("POST", dir2+"failed?reason=no+disk+found", "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateFailed || n.Install.Reason != "no disk found" || n.Install.Reporter != "installer" {
		t.Errorf("after failed: %+v (install %+v)", n, n.Install)
	}

	var types []string
	evs, err := e.st.Events(mustMAC(t, mac))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type != "" {
			types = append(types, ev.Type+":"+string(ev.State)+":"+ev.Reason)
			if ev.Profile != "lab" || ev.IP != "203.0.113.7" {
				t.Errorf("event %+v: want profile lab, IP of the caller", ev)
			}
		}
	}
	// Newest first.
	want := []string{"failed:failed:no disk found", "installed:installed:", "progress:installing:partitioning"}
	if strings.Join(types, " | ") != strings.Join(want, " | ") {
		t.Errorf("call-back events (type:state:reason) %q, want %q", types, want)
	}
	for kind, n := range map[string]float64{"progress": 1, "installed": 1, "failed": 1, "refused": 2} {
		if got := testutil.ToFloat64(e.m.InstallReports.WithLabelValues(kind)); got != n {
			t.Errorf(`install_reports_total{result=%q} = %v, want %v`, kind, got, n)
		}
	}
}

func TestInstalledNeedsTokenOrAdminKey(t *testing.T) {
	e := newInstallEnv(t)
	const mac = "52:54:00:aa:cc:05"
	// A pending reinstall: anyone on the LAN posting /installed must not
	// cancel it.
	wantCode(t, e.admin("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	for _, target := range []string{"/installed?mac=" + mac, "/installed?mac=" + mac + "&token=guess"} {
		wantJSONError(t, e.do("POST", target, ""), http.StatusForbidden, "token")
		if n := e.node(mac); n.State != store.StateReinstall || !n.Reinstall {
			t.Fatalf("POST %s without the key changed the node: %s", target, n.State)
		}
	}
	wantJSONError(t, e.do("POST", "/installed?mac=52:54:00:aa:cc:99", ""), http.StatusForbidden) // unknown node: no hint
	// The older form with the install's token.
	token, _ := e.startInstall(mac)
	w := e.do("POST", "/installed?mac="+mac+"&token="+token, "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalled {
		t.Errorf("POST /installed with the token: state %s", n.State)
	}
	// The admin key marks an installing node, and a pending reinstall
	// (installed from elsewhere), without a token.
	e.startInstall(mac)
	w = e.admin("POST", "/installed?mac="+mac, "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.State != store.StateInstalled || n.Install.Reporter != "admin" {
		t.Errorf("POST /installed with the admin key: %+v (install %+v)", n, n.Install)
	}
	wantCode(t, e.admin("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantCode(t, e.admin("POST", "/installed?mac="+mac, ""), http.StatusOK)
	if n := e.node(mac); n.State != store.StateInstalled {
		t.Errorf("admin /installed on a pending reinstall: state %s", n.State)
	}
	evs, _ := e.st.Events(mustMAC(t, mac))
	last := evs[0] // newest first
	if last.Type != store.EventInstalled || last.State != store.StateInstalled {
		t.Errorf("last event %+v, want an installed event", last)
	}
}

// TestInstallCallbackBodyCapped: the call-backs are open to the LAN and
// read their body before the token is checked, so they read at most
// 64 KiB of it (a bigger form is not parsed; the call-back still counts).
func TestInstallCallbackBodyCapped(t *testing.T) {
	e := newInstallEnv(t)
	_, dir := e.startInstall("52:54:00:aa:cc:06")
	body := "reporter=big&reason=from-a-huge-form&pad=" + strings.Repeat("a", 100<<10)
	w := e.do("POST", dir+"failed", body, "Content-Type", "application/x-www-form-urlencoded")
	wantCode(t, w, http.StatusOK)
	n := jsonBody[store.Node](t, w)
	if n.State != store.StateFailed || n.Install == nil {
		t.Fatalf("after the failed call-back: %+v", n)
	}
	if n.Install.Reporter == "big" || n.Install.Reason == "from-a-huge-form" {
		t.Errorf("a %d-byte form was parsed (reporter %q, reason %q); call-back bodies are capped at 64 KiB", len(body), n.Install.Reporter, n.Install.Reason)
	}
}
