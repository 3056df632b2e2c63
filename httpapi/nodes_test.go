package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/store"
)

func TestListNodes(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do("GET", "/nodes", "")
	wantCode(t, w, http.StatusOK)
	// An empty list is [], not null: clients iterate without a nil check.
	if got := strings.Join(strings.Fields(w.Body.String()), ""); got != `{"nodes":[]}` {
		t.Errorf("empty /nodes = %s, want {\"nodes\": []}", got)
	}

	macs := []string{"52:54:00:00:00:30", "02:00:00:00:00:01", "aa:00:00:00:00:02", "52:54:00:00:00:03"}
	for _, m := range macs {
		wantScript(t, e.boot(m, "pcbios"), http.StatusOK)
	}
	wantCode(t, e.do("POST", "/nodes/0A:00:00:00:00:09/reinstall", ""), http.StatusOK)
	macs = append(macs, "0a:00:00:00:00:09")
	slices.Sort(macs)

	w = e.do("GET", "/nodes", "")
	wantCode(t, w, http.StatusOK)
	var raw struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range raw.Nodes {
		got = append(got, n["mac"].(string))
		for _, k := range []string{"created_at", "state_changed_at", "last_seen"} {
			v, ok := n[k]
			if k == "last_seen" && n["mac"] == "0a:00:00:00:00:09" {
				if v != nil {
					t.Errorf("a node that never booted has last_seen %v, want null", v)
				}
				continue
			}
			s, _ := v.(string)
			if !ok || !strings.HasSuffix(s, "Z") {
				t.Errorf("%s %s = %v, want an RFC 3339 UTC time", n["mac"], k, v)
				continue
			}
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				t.Errorf("%s %s = %q: %v", n["mac"], k, s, err)
			}
		}
	}
	if !slices.Equal(got, macs) {
		t.Errorf("/nodes order = %v, want sorted %v", got, macs)
	}
	for _, n := range jsonBody[map[string][]store.Node](t, w)["nodes"] {
		if n.MAC == "0a:00:00:00:00:09" {
			if n.State != store.StateReinstall || n.BootCount != 0 {
				t.Errorf("queued node = %+v", n)
			}
		} else if n.State != store.StateLocal || n.BootCount != 1 || n.Facts.Platform != "pcbios" || n.LastIP != "203.0.113.7" {
			t.Errorf("booted node = %+v", n)
		}
	}
}

func TestGetNodeMACSpellings(t *testing.T) {
	e := newEnv(t, nil)
	spellings := []string{"52:54:00:ab:cd:ef", "52-54-00-ab-cd-ef", "5254.00ab.cdef", "525400abcdef", "52:54:00:AB:CD:EF", "52-54-00-AB-CD-EF"}
	for _, s := range spellings {
		wantScript(t, e.boot(s, "efi"), http.StatusOK)
	}
	for _, s := range spellings {
		w := e.do("GET", "/nodes/"+s, "")
		wantCode(t, w, http.StatusOK)
		n := jsonBody[store.Node](t, w)
		if n.MAC != "52:54:00:ab:cd:ef" || n.BootCount != uint64(len(spellings)) {
			t.Errorf("GET /nodes/%s = %s %d boots, want one node 52:54:00:ab:cd:ef with %d", s, n.MAC, n.BootCount, len(spellings))
		}
	}
	if nodes, _ := e.st.List(); len(nodes) != 1 {
		t.Errorf("%d nodes for one machine", len(nodes))
	}
	wantJSONError(t, e.do("GET", "/nodes/52:54:00:ab:cd:00", ""), http.StatusNotFound, "52:54:00:ab:cd:00", "not known")
	for _, bad := range []string{"52:54:00:ab:cd", "zz", "52:54:00:ab:cd:ef:01:02", "52.54.00.ab.cd.ef"} {
		wantJSONError(t, e.do("GET", "/nodes/"+bad, ""), http.StatusBadRequest, bad, "not a MAC address")
	}
}

func TestDeleteNode(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:00:00:40"
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	w := e.do("DELETE", "/nodes/52-54-00-00-00-40", "")
	wantCode(t, w, http.StatusOK)
	if v := jsonBody[map[string]string](t, w); v["deleted"] != mac {
		t.Errorf("DELETE answered %v", v)
	}
	wantJSONError(t, e.do("GET", "/nodes/"+mac, ""), http.StatusNotFound, mac)
	wantJSONError(t, e.do("GET", "/nodes/"+mac+"/events", ""), http.StatusNotFound, mac)
	wantJSONError(t, e.do("DELETE", "/nodes/"+mac, ""), http.StatusNotFound, mac)
	wantJSONError(t, e.do("DELETE", "/nodes/bogus", ""), http.StatusBadRequest, "bogus")
	// The machine comes back as a new node on its next boot.
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	if n := e.node(mac); n.BootCount != 1 {
		t.Errorf("re-learnt node = %+v", n)
	}
}

func TestNodeEvents(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:00:00:50"
	wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)
	wantScript(t, e.boot(mac, "pcbios"), http.StatusOK)

	w := e.do("GET", "/nodes/525400000050/events", "")
	wantCode(t, w, http.StatusOK)
	v := jsonBody[struct {
		MAC    string        `json:"mac"`
		Events []store.Event `json:"events"`
	}](t, w)
	if v.MAC != mac || len(v.Events) != 3 {
		t.Fatalf("events answer = %+v", v)
	}
	var decisions []string
	for i, x := range v.Events {
		decisions = append(decisions, x.Decision)
		if x.IP != "203.0.113.7" || x.Time.Location() != time.UTC || (i > 0 && !x.Time.Before(v.Events[i-1].Time)) {
			t.Errorf("event %d = %+v", i, x)
		}
	}
	if want := []string{"local", "reinstall", "local"}; !slices.Equal(decisions, want) {
		t.Errorf("decisions newest first = %v, want %v", decisions, want)
	}
	wantJSONError(t, e.do("GET", "/nodes/52:54:00:00:00:51/events", ""), http.StatusNotFound, "52:54:00:00:00:51")
	wantJSONError(t, e.do("GET", "/nodes/xx/events", ""), http.StatusBadRequest, "xx")
}

func TestReinstallAPI(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:00:00:60"
	// POST creates a node the appliance has never seen: an admin can
	// queue a reinstall before the machine is racked.
	w := e.do("POST", "/nodes/52-54-00-00-00-60/reinstall", "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.MAC != mac || !n.Reinstall || n.State != store.StateReinstall || n.LastSeen != nil {
		t.Errorf("POST reinstall answered %+v", n)
	}
	w = e.do("DELETE", "/nodes/"+mac+"/reinstall", "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.Reinstall || n.State != store.StateLocal {
		t.Errorf("DELETE reinstall answered %+v", n)
	}
	wantJSONError(t, e.do("DELETE", "/nodes/52:54:00:00:00:61/reinstall", ""), http.StatusNotFound, "52:54:00:00:00:61")
	wantJSONError(t, e.do("POST", "/nodes/52:54:00:00:00/reinstall", ""), http.StatusBadRequest, "52:54:00:00:00")
	if s, c := testutil.ToFloat64(e.m.ReinstallChanges.WithLabelValues("set")),
		testutil.ToFloat64(e.m.ReinstallChanges.WithLabelValues("clear")); s != 1 || c != 1 {
		t.Errorf("reinstall_changes_total set=%v clear=%v, want 1 and 1", s, c)
	}

	// Durable: a requested reinstall survives a restart of the appliance.
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, e.dir)
	cfg := e.cfg
	cfg.Store = st
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h, e.st = h, st
	w = e.do("GET", "/nodes/"+mac, "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); !n.Reinstall || n.State != store.StateReinstall {
		t.Fatalf("after reopening the store: %+v, want the reinstall flag kept", n)
	}
	if body := wantScript(t, e.boot(mac, "pcbios"), http.StatusOK); !strings.Contains(body, "\nkernel ") {
		t.Errorf("reopened store did not serve the installer:\n%s", body)
	}
}

func TestLocalBootConfig(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:00:00:70"
	for _, tc := range []struct{ script, stored string }{
		{"exit", "exit"},
		{"exit 1", "exit 1"},
		{"  exit\t0 ", "exit 0"},
		{"sanboot --no-describe --drive 0x80", "sanboot --no-describe --drive 0x80"},
		{"sanboot --drive=0x81", "sanboot --drive=0x81"},
		{"sanboot --no-describe --drive 0x80 --filename \\EFI\\debian\\shimx64.efi", "sanboot --no-describe --drive 0x80 --filename \\EFI\\debian\\shimx64.efi"},
	} {
		w := e.do("PUT", "/nodes/"+mac+"/local-boot-config", `{"script": `+jsonString(tc.script)+`}`)
		wantCode(t, w, http.StatusOK)
		if n := jsonBody[store.Node](t, w); n.LocalBootScript != tc.stored || n.MAC != mac {
			t.Errorf("PUT %q stored %q, want %q", tc.script, n.LocalBootScript, tc.stored)
		}
		if n := e.node(mac); n.LocalBootScript != tc.stored {
			t.Errorf("store holds %q, want %q", n.LocalBootScript, tc.stored)
		}
	}

	for _, tc := range []struct {
		name, body string
		mention    []string
	}{
		{"chain after sanboot", `{"script": "sanboot --drive 0x80 || chain http://evil"}`, []string{"rejected", `"||"`}},
		{"chain", `{"script": "chain http://x"}`, []string{"rejected", `"chain"`}},
		{"setting expansion", `{"script": "sanboot --filename ${x}"}`, []string{"rejected", "${x}"}},
		{"newline", `{"script": "exit 1\nchain http://x"}`, []string{"rejected", "one line"}},
		{"semicolon", `{"script": "exit 1; chain http://x"}`, []string{"rejected"}},
		{"comment", `{"script": "exit #1"}`, []string{"rejected", "#1"}},
		{"empty script", `{"script": "   "}`, []string{"rejected", "empty", "DELETE"}},
		{"bad json", `{"script": "exit"`, []string{"JSON"}},
		{"not json", `exit 1`, []string{"invalid JSON"}},
		{"unknown field", `{"script": "exit", "command": "chain http://x"}`, []string{`unknown field "command"`}},
		{"wrong type", `{"script": 1}`, []string{`"script"`, "string"}},
		{"empty body", ``, []string{"body is empty"}},
		{"missing script", `{}`, []string{`no "script" field`}},
		{"null script", `{"script": null}`, []string{`no "script" field`}},
		{"two objects", `{"script": "exit"} {"script": "chain http://x"}`, []string{"exactly one JSON object"}},
		{"trailing brace", `{"script": "exit"}}`, []string{"exactly one JSON object"}},
		{"trailing bracket", `{"script": "exit"}]`, []string{"exactly one JSON object"}},
		{"trailing garbage", `{"script": "exit"} chain`, []string{"exactly one JSON object"}},
		{"too long", `{"script": "sanboot` + strings.Repeat(" --keep", 80) + `"}`, []string{"at most 512"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantJSONError(t, e.do("PUT", "/nodes/"+mac+"/local-boot-config", tc.body), http.StatusBadRequest, tc.mention...)
			if n := e.node(mac); n.LocalBootScript != "sanboot --no-describe --drive 0x80 --filename \\EFI\\debian\\shimx64.efi" {
				t.Errorf("a rejected PUT changed the stored script to %q", n.LocalBootScript)
			}
		})
	}
	wantJSONError(t, e.do("PUT", "/nodes/nomac/local-boot-config", `{"script": "exit"}`), http.StatusBadRequest, "nomac")
	// Trailing white space after the object is fine.
	wantCode(t, e.do("PUT", "/nodes/52:54:00:00:00:73/local-boot-config", "{\"script\": \"exit\"}\n\t "), http.StatusOK)

	w := e.do("DELETE", "/nodes/"+strings.ToUpper(mac)+"/local-boot-config", "")
	wantCode(t, w, http.StatusOK)
	if n := jsonBody[store.Node](t, w); n.LocalBootScript != "" {
		t.Errorf("DELETE left %q", n.LocalBootScript)
	}
	wantJSONError(t, e.do("DELETE", "/nodes/52:54:00:00:00:71/local-boot-config", ""), http.StatusNotFound, "52:54:00:00:00:71")
	if _, err := e.st.Get("52:54:00:00:00:71"); err == nil {
		t.Errorf("DELETE local-boot-config created an unknown node")
	}
	wantJSONError(t, e.do("DELETE", "/nodes/nomac/local-boot-config", ""), http.StatusBadRequest, "nomac")

	// PUT on an unknown node creates it (like POST reinstall).
	wantCode(t, e.do("PUT", "/nodes/52:54:00:00:00:72/local-boot-config", `{"script":"exit 1"}`), http.StatusOK)
	if n := e.node("52:54:00:00:00:72"); n.LocalBootScript != "exit 1" || n.State != store.StateLocal {
		t.Errorf("PUT on an unknown node: %+v", n)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestAdminAPIKey(t *testing.T) {
	const key = "correct horse battery staple"
	bins := loadDebianBinaries(t)
	e := newEnv(t, func(c *Config) { c.AdminKey = key; c.Binaries = bins })
	const mac = "52:54:00:00:00:80"
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)

	admin := []struct {
		method, path, body string
		ok                 int
	}{
		{"GET", "/nodes", "", 200},
		{"GET", "/nodes/" + mac, "", 200},
		{"GET", "/nodes/" + mac + "/events", "", 200},
		{"POST", "/nodes/" + mac + "/reinstall", "", 200},
		{"DELETE", "/nodes/" + mac + "/reinstall", "", 200},
		{"PUT", "/nodes/" + mac + "/local-boot-config", `{"script":"exit 1"}`, 200},
		{"DELETE", "/nodes/" + mac + "/local-boot-config", "", 200},
		{"DELETE", "/nodes/" + mac, "", 200},
	}
	for _, r := range admin {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + key + "x", "Bearer ", "Basic " + key, key} {
			var hdr []string
			if auth != "" {
				hdr = []string{"Authorization", auth}
			}
			w := e.do(r.method, r.path, r.body, hdr...)
			wantJSONError(t, w, http.StatusUnauthorized)
			if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("%s %s with %q: WWW-Authenticate %q, want Bearer", r.method, r.path, auth, h)
			}
		}
		// Nothing was changed by the refused requests.
		if n := e.node(mac); n.Reinstall || n.LocalBootScript != "" {
			t.Fatalf("refused %s %s changed the node: %+v", r.method, r.path, n)
		}
	}
	for _, r := range admin {
		w := e.do(r.method, r.path, r.body, "Authorization", "Bearer "+key)
		wantCode(t, w, r.ok)
	}
	if _, err := e.st.Get(mustMAC(t, mac)); err == nil {
		t.Errorf("authorised DELETE did not delete")
	}

	// The machine-facing endpoints stay open: firmware cannot send a key.
	// The install call-back is not: it needs the install's token or the
	// key (an open one let any LAN host cancel a pending reinstall).
	for _, r := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/chain", 200},
		{"GET", "/boot?mac=" + mac + "&platform=efi", 200},
		{"POST", "/installed?mac=" + mac, 403},
		{"GET", "/health", 200},
		{"GET", "/metrics", 200},
		{"GET", "/ipxe/ipxe.efi", 200},
		{"GET", "/ipxe/undionly.kpxe", 200},
	} {
		if w := e.do(r.method, r.path, ""); w.Code != r.code {
			t.Errorf("%s %s without a key: %d, want %d", r.method, r.path, w.Code, r.code)
		}
	}
}
