package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// TestAdminBearerScheme: RFC 7235 makes the auth scheme case-insensitive
// and allows more than one space before the token.
func TestAdminBearerScheme(t *testing.T) {
	const key = "s3cret-Key"
	e := newEnv(t, func(c *Config) { c.AdminKey = key })
	for _, auth := range []string{
		"Bearer " + key,
		"bearer " + key,
		"BEARER " + key,
		"bEaReR " + key,
		"Bearer    " + key,
		"  Bearer " + key + "  ",
	} {
		wantCode(t, e.do("GET", "/nodes", "", "Authorization", auth), http.StatusOK)
	}
	for _, tc := range []struct{ auth, msg string }{
		{"Bearer" + key, "missing Authorization"},
		{"Bearer", "missing Authorization"},
		{"Basic " + key, "missing Authorization"},
		{"Bearers " + key, "missing Authorization"},
		{"bearer " + key + "x", "wrong API key"},
		{"BEARER s3cret-key", "wrong API key"}, // the key itself is case-sensitive
		{"Bearer " + key + " " + key, "wrong API key"},
	} {
		w := e.do("GET", "/nodes", "", "Authorization", tc.auth)
		wantJSONError(t, w, http.StatusUnauthorized, tc.msg)
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no WWW-Authenticate", tc.auth)
		}
	}
}

// TestCrossSiteChangesRefused: an admin change a browser sends for a page
// of another site is refused, with the key set or not (without one the API
// is open, and any web page a LAN user visits could reinstall a machine);
// tools, which send no Sec-Fetch-Site or Origin, and same-origin pages
// pass, and so do reads.
func TestCrossSiteChangesRefused(t *testing.T) {
	const mac = "52:54:00:00:00:91"
	for _, key := range []string{"", "s3cret-Key"} {
		e := newEnv(t, func(c *Config) { c.AdminKey = key })
		wantScript(t, e.boot(mac, "efi"), http.StatusOK)
		var auth []string
		if key != "" {
			auth = []string{"Authorization", "Bearer " + key}
		}
		do := func(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
			return e.do(method, path, body, append(hdr, auth...)...)
		}
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/nodes/" + mac + "/reinstall", ""},
			{"PUT", "/nodes/" + mac + "/local-boot-config", `{"script":"exit 1"}`},
			{"PATCH", "/nodes/" + mac, `{"hostname":"web1"}`},
			{"DELETE", "/nodes/" + mac, ""},
		} {
			for _, hdr := range [][]string{
				{"Sec-Fetch-Site", "cross-site"},
				{"Sec-Fetch-Site", "same-site"},
				{"Origin", "https://evil.example"}, // an older browser: no Sec-Fetch-Site
			} {
				wantJSONError(t, do(c.method, c.path, c.body, hdr...), http.StatusForbidden, "another site", "nothing was changed")
			}
		}
		if n := e.node(mac); n.State != store.StateLocal || n.LocalBootScript != "" || n.Hostname != "" {
			t.Fatalf("key %q: refused cross-site changes changed the node: %+v", key, n)
		}
		wantCode(t, do("GET", "/nodes", "", "Sec-Fetch-Site", "cross-site"), http.StatusOK)
		wantCode(t, do("POST", "/nodes/"+mac+"/reinstall", "", "Sec-Fetch-Site", "same-origin"), http.StatusOK)
		wantCode(t, do("DELETE", "/nodes/"+mac+"/reinstall", "", "Origin", "http://example.com"), http.StatusOK) // httptest's Host
		wantCode(t, do("POST", "/nodes/"+mac+"/reinstall", ""), http.StatusOK)                                   // curl, the CLI
		if n := e.node(mac); n.State != store.StateReinstall {
			t.Fatalf("key %q: the allowed changes did not apply: %s", key, n.State)
		}
	}
}
