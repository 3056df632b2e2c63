package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeOneJSON(t *testing.T) {
	const limit = 4 << 10
	for _, tc := range []struct {
		name, body string
		status     int // 0: accepted
		msg        string
	}{
		{"one object", `{"script":"exit 1"}`, 0, ""},
		{"trailing white space", "{\"script\":\"exit 1\"}\r\n\t ", 0, ""},
		{"second object after 5,000 spaces", `{"script":"exit 1"}` + strings.Repeat(" ", 5000) + `{"script":"chain http://evil/"}`, 413, "larger than 4096"},
		{"second object after 4,000 spaces", `{"script":"exit 1"}` + strings.Repeat(" ", 4000) + `{"script":"x"}`, 400, "more follows it at byte 4019"},
		{"second object", `{"script":"exit 1"}{"script":"x"}`, 400, "exactly one JSON object"},
		{"stray brace", `{"script":"exit 1"}}`, 400, "exactly one JSON object"},
		{"stray bracket", `{"script":"exit 1"}]`, 400, "exactly one JSON object"},
		{"trailing garbage", `{"script":"exit 1"} x`, 400, "at byte 20"},
		{"NUL after", "{\"script\":\"exit 1\"}\x00", 400, "exactly one JSON object"},
		{"empty", "", 400, "empty"},
		{"only spaces", "   ", 400, "empty"},
		{"unknown field", `{"script":"exit 1","x":1}`, 400, "unknown field"},
		{"wrong type", `{"script":1}`, 400, `field "script"`},
		{"broken", `{"script":`, 400, ""},
		{"exactly the limit", `{"script":"exit 1"}` + strings.Repeat(" ", limit-19), 0, ""},
		{"one byte over", `{"script":"exit 1"}` + strings.Repeat(" ", limit-18), 413, "at most 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("PUT", "/x", strings.NewReader(tc.body))
			var v localBootBody
			err := decodeOneJSON(r, limit, &v)
			if tc.status == 0 {
				if err != nil || v.Script == nil || *v.Script != "exit 1" {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %.80q", tc.body)
			}
			if bodyStatus(err) != tc.status || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("status %d %q, want %d containing %q", bodyStatus(err), err, tc.status, tc.msg)
			}
		})
	}
}

// TestLocalBootSecondObjectAfterSpaces is issue 12's case through the
// handler: the second object hidden behind 5,000 spaces is refused and
// the first is not stored either.
func TestLocalBootSecondObjectAfterSpaces(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:00:00:81"
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	body := `{"script":"exit 1"}` + strings.Repeat(" ", 5000) + `{"script":"sanboot --drive 0x81"}`
	wantJSONError(t, e.do("PUT", "/nodes/"+mac+"/local-boot-config", body), http.StatusRequestEntityTooLarge, "4096 bytes")
	body = `{"script":"exit 1"}` + strings.Repeat(" ", 3000) + `{"script":"sanboot --drive 0x81"}`
	wantJSONError(t, e.do("PUT", "/nodes/"+mac+"/local-boot-config", body), http.StatusBadRequest, "exactly one JSON object", "byte 3019")
	if n := e.node(mac); n.LocalBootScript != "" {
		t.Fatalf("a refused body set the script: %q", n.LocalBootScript)
	}
	wantCode(t, e.do("PUT", "/nodes/"+mac+"/local-boot-config", `{"script":"exit 1"}`+"\n"), http.StatusOK)
}

// The node settings and the profile assignment read their bodies the same
// way: a second object after the first, hidden behind white space or not,
// is refused and changes nothing, and a body over the limit is a 413 that
// names it (they used to decode the first object and answer 200).
func TestSettingsSecondObject(t *testing.T) {
	e := newEnv(t, nil)
	const mac = "52:54:00:00:00:82"
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	for _, c := range []struct {
		method, path, first, second string
		limit                       int
	}{
		{"PATCH", "/nodes/" + mac, `{"hostname":"web1"}`, `{"hostname":"web2"}`, 64 << 10},
		{"PUT", "/nodes/" + mac + "/profile", `{"profile":"default"}`, `{"profile":"nope"}`, 4 << 10},
	} {
		wantJSONError(t, e.do(c.method, c.path, c.first+c.second), http.StatusBadRequest, "exactly one JSON object")
		wantJSONError(t, e.do(c.method, c.path, c.first+strings.Repeat(" ", c.limit/2)+c.second), http.StatusBadRequest, "exactly one JSON object")
		wantJSONError(t, e.do(c.method, c.path, c.first+strings.Repeat(" ", c.limit)+c.second), http.StatusRequestEntityTooLarge, fmt.Sprintf("%d bytes", c.limit))
		if n := e.node(mac); n.Hostname != "" || n.Profile != "" {
			t.Fatalf("%s %s: a refused body changed the node: hostname %q, profile %q", c.method, c.path, n.Hostname, n.Profile)
		}
	}
	wantCode(t, e.do("PATCH", "/nodes/"+mac, `{"hostname":"web1"}`+"\n"), http.StatusOK)
	wantCode(t, e.do("PUT", "/nodes/"+mac+"/profile", `{"profile":"default"} `), http.StatusOK)
	if n := e.node(mac); n.Hostname != "web1" || n.Profile != "default" {
		t.Fatalf("the accepted bodies did not apply: hostname %q, profile %q", n.Hostname, n.Profile)
	}
}

// FuzzDecodeOneJSON: decodeOneJSON accepts a body exactly when it fits the
// limit and json.Unmarshal (which refuses trailing data) accepts it.
func FuzzDecodeOneJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1} `, `{"a":1}{}`, `{"a":1}}`, ``, `  `, `null`, `[1]`, `{"a":"` + strings.Repeat("x", 300) + `"}`} {
		f.Add(s)
	}
	const limit = 256
	f.Fuzz(func(t *testing.T, body string) {
		var got map[string]any
		err := decodeOneJSON(httptest.NewRequest("PUT", "/x", strings.NewReader(body)), limit, &got)
		var want map[string]any
		uerr := json.Unmarshal([]byte(body), &want)
		switch {
		case len(body) > limit:
			if err == nil || bodyStatus(err) != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d bytes over a %d limit: %v", len(body), limit, err)
			}
		case (err == nil) != (uerr == nil):
			t.Fatalf("decodeOneJSON %v, json.Unmarshal %v for %q", err, uerr, body)
		case err != nil && bodyStatus(err) != http.StatusBadRequest:
			t.Fatalf("status %d for %q", bodyStatus(err), body)
		}
	})
}
