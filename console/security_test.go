package console_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/console"
	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
)

const mac1 = "52:54:00:12:34:56"

func TestWrongKeyIsRefused(t *testing.T) {
	a := newApp(t, testKey, nil)
	b := a.browser()
	code, h, _ := b.get("/ui/")
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/ui/login") {
		t.Fatalf("GET /ui/ signed out: status %d, Location %q; want 303 to the sign-in page", code, h.Get("Location"))
	}
	tok := b.csrf("/ui/login")
	code, _, body := b.post("/ui/login", url.Values{"csrf": {tok}, "key": {"not-the-key"}})
	if code != http.StatusUnauthorized {
		t.Fatalf("sign-in with a wrong key: status %d, want 401", code)
	}
	mustContain(t, "the refusal", body, "Wrong admin key")
	if code, _, _ := b.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("after a wrong key GET /ui/ is %d, want 303 (still signed out)", code)
	}
	if code, _, _ := b.get("/ui/events"); code != http.StatusUnauthorized {
		t.Errorf("live stream signed out: %d, want 401", code)
	}
	// A sign-in without the form's token is refused too.
	if code, _, _ := b.post("/ui/login", url.Values{"key": {testKey}}); code != http.StatusForbidden {
		t.Errorf("sign-in without the csrf field: %d, want 403", code)
	}
	b.signIn(testKey)
	if code, _, body := b.get("/ui/"); code != http.StatusOK || !strings.Contains(body, "Sign out") {
		t.Fatalf("signed in, GET /ui/: %d", code)
	}
	// Sign out ends the session server-side.
	tok = b.csrf("/ui/")
	if code, _, _ := b.post("/ui/logout", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	if code, _, _ := b.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("after sign-out GET /ui/ is %d, want 303", code)
	}
}

// TestWrongKeysAreLimited: after its tries, an address gets 429 on the
// sign-in form, even with the right key, until a try comes back; the
// refusal is counted.
func TestWrongKeysAreLimited(t *testing.T) {
	a := newApp(t, testKey, func(c *console.Config) { c.KeyGuard = keyguard.New(2, time.Hour) })
	b := a.browser()
	for i := 0; i < 2; i++ {
		tok := b.csrf("/ui/login")
		if code, _, _ := b.post("/ui/login", url.Values{"csrf": {tok}, "key": {"guess"}}); code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: status %d, want 401", i+1, code)
		}
	}
	tok := b.csrf("/ui/login")
	code, h, body := b.post("/ui/login", url.Values{"csrf": {tok}, "key": {testKey}})
	if code != http.StatusTooManyRequests || h.Get("Retry-After") != "3600" {
		t.Fatalf("right key after the tries ran out: status %d, Retry-After %q; want 429, 3600", code, h.Get("Retry-After"))
	}
	mustContain(t, "the refusal", body, "Too many wrong admin keys from 127.0.0.1: try again in 3600 s (each address gets 2 tries, then one every 1h0m0s).")
	if code, _, _ := b.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("after the refusal GET /ui/ is %d, want 303 (still signed out)", code)
	}
	mustContain(t, "/metrics", a.scrape(),
		`pxe_pilot_console_logins_total{result="wrong_key"} 2`,
		`pxe_pilot_console_logins_total{result="limited"} 1`,
		`pxe_pilot_console_logins_total{result="ok"} 0`)
}

func TestStateChangeWithoutCSRFIsRefused(t *testing.T) {
	a := newApp(t, testKey, nil)
	a.boot(mac1)
	b := a.browser()
	b.signIn(testKey)
	for _, form := range []url.Values{
		{"confirm": {"yes"}},
		{"confirm": {"yes"}, "csrf": {"forged"}},
	} {
		for _, action := range []string{"reinstall", "forget", "profile", "local-boot"} {
			f := url.Values{"script": {"exit 1"}, "profile": {"default"}}
			for k, v := range form {
				f[k] = v
			}
			code, _, body := b.post("/ui/nodes/"+mac1+"/"+action, f)
			if code != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: status %d, want 403", action, form.Get("csrf"), code)
			}
			mustContain(t, "the 403 page", body, "nothing was changed")
		}
	}
	n, err := a.st.Get(mustMAC(t, mac1))
	if err != nil {
		t.Fatalf("the node is gone after refused requests: %v", err)
	}
	if n.State != "local" || n.Profile != "" || n.LocalBootScript != "" {
		t.Errorf("refused requests changed the node: state %s, profile %q, local-boot %q", n.State, n.Profile, n.LocalBootScript)
	}
	if got := a.apiState(mac1, testKey); got != "local" {
		t.Errorf("JSON API says %s, want local", got)
	}
	// The same request with the session's token works.
	tok := b.csrf("/ui/nodes/" + mac1)
	code, h, _ := b.post("/ui/nodes/"+mac1+"/reinstall", url.Values{"csrf": {tok}, "confirm": {"yes"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/nodes/"+mac1 {
		t.Fatalf("reinstall with the token: %d → %q", code, h.Get("Location"))
	}
	if got := a.apiState(mac1, testKey); got != "reinstall" {
		t.Errorf("JSON API says %s after the reinstall, want reinstall", got)
	}
	// Another browser's token is not this one's.
	other := a.browser()
	other.signIn(testKey)
	if code, _, _ := other.post("/ui/nodes/"+mac1+"/cancel", url.Values{"csrf": {tok}, "confirm": {"yes"}}); code != http.StatusForbidden {
		t.Errorf("a token from another session: %d, want 403", code)
	}
}

func TestHeadersAndCookie(t *testing.T) {
	a := newApp(t, testKey, nil)
	b := a.browser()
	for _, path := range []string{"/ui/login", "/ui/static/console.css", "/ui/nowhere"} {
		_, h, _ := b.get(path)
		want := map[string]string{
			"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("GET %s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
	}
	resp, err := a.browser().c.Get(a.srv.URL + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure {
		t.Errorf("session cookie over plain HTTP: %+v; want HttpOnly, SameSite=Strict, not Secure", ck)
	}
}

func TestOpenConsoleSaysSo(t *testing.T) {
	a := newApp(t, "", nil)
	a.boot(mac1)
	b := a.browser()
	for _, path := range []string{"/ui/", "/ui/nodes/" + mac1, "/ui/appliance"} {
		code, _, body := b.get(path)
		if code != http.StatusOK {
			t.Fatalf("GET %s open: %d", path, code)
		}
		mustContain(t, path, body, "ADMIN_API_KEY is not set")
	}
	// Still no state change without the token.
	if code, _, _ := b.post("/ui/nodes/"+mac1+"/forget", url.Values{"confirm": {"yes"}}); code != http.StatusForbidden {
		t.Errorf("open console, forget without the csrf field: %d, want 403", code)
	}
	if _, err := a.st.Get(mustMAC(t, mac1)); err != nil {
		t.Errorf("the node was forgotten: %v", err)
	}
}

func TestConsoleMetrics(t *testing.T) {
	a := newApp(t, testKey, nil)
	b := a.browser()
	tok := b.csrf("/ui/login")
	b.post("/ui/login", url.Values{"csrf": {tok}, "key": {"wrong"}})
	b.signIn(testKey)
	a.boot(mac1)
	b.post("/ui/nodes/"+mac1+"/reinstall", url.Values{"confirm": {"yes"}})
	mustContain(t, "/metrics", a.scrape(),
		`pxe_pilot_console_logins_total{result="ok"} 1`,
		`pxe_pilot_console_logins_total{result="wrong_key"} 1`,
		`pxe_pilot_console_logins_total{result="limited"} 0`,
		`pxe_pilot_console_csrf_refusals_total 1`,
		`pxe_pilot_console_actions_total{action="reinstall"} 0`,
		`pxe_pilot_console_live_streams 0`)
}

// TestFactsAreEscaped: what a machine says about itself is text on every
// page, never markup.
func TestFactsAreEscaped(t *testing.T) {
	a := newApp(t, "", nil)
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	resp, err := http.Get(a.srv.URL + "/boot?" + url.Values{"mac": {mac1}, "product": {evil}, "manufacturer": {`"><b>x`}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b := a.browser()
	for _, path := range []string{"/ui/", "/ui/nodes/" + mac1} {
		_, _, body := b.get(path)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || strings.Contains(body, `"><b>x`) {
			t.Errorf("GET %s renders a machine's facts as markup", path)
		}
		mustContain(t, path, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	}
}

// scrape is the appliance's /metrics.
func (a *app) scrape() string {
	a.t.Helper()
	resp, err := http.Get(a.srv.URL + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
