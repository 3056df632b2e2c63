package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/console"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// act posts a node action with the page's token; confirm adds the
// confirmation the action's own page asks for.
func (b *browser) act(mac, action string, confirm bool, form url.Values) (int, string, string) {
	b.t.Helper()
	f := url.Values{"csrf": {b.csrf("/ui/nodes/" + mac)}}
	for k, v := range form {
		f[k] = v
	}
	if confirm {
		f.Set("confirm", "yes")
	}
	code, h, body := b.post("/ui/nodes/"+mac+"/"+action, f)
	if code == http.StatusSeeOther { // read the flash where it sends us
		_, _, body = b.get(h.Get("Location"))
	}
	return code, h.Get("Location"), body
}

func TestNodeActions(t *testing.T) {
	a := newApp(t, testKey, nil)
	a.boot(mac1)
	b := a.browser()
	b.signIn(testKey)
	node := func() (state, profile, script string) {
		n, err := a.st.Get(mustMAC(t, mac1))
		if err != nil {
			t.Fatalf("store.Get: %v", err)
		}
		return string(n.State), n.Profile, n.LocalBootScript
	}

	// Unconfirmed: a confirmation page, nothing changed.
	code, _, body := b.act(mac1, "reinstall", false, nil)
	if code != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) {
		t.Fatalf("unconfirmed reinstall: %d, want the confirmation page", code)
	}
	if s, _, _ := node(); s != "local" {
		t.Fatalf("an unconfirmed reinstall changed the state to %s", s)
	}

	// Cancel with nothing pending says so.
	if _, _, body := b.act(mac1, "cancel", true, nil); !strings.Contains(body, "Nothing to cancel") {
		t.Errorf("cancel of a local node: page does not say there is nothing to cancel")
	}

	// Profile: an undefined one is refused with the defined names.
	if _, _, body := b.act(mac1, "profile", true, url.Values{"profile": {"nope"}}); !strings.Contains(body, `Profile “nope” is not defined (defined: default)`) {
		t.Errorf("undefined profile: the page does not name it and the defined ones")
	}
	if _, _, body := b.act(mac1, "profile", true, url.Values{"profile": {"default"}}); !strings.Contains(body, "set to default") {
		t.Errorf("assign profile: no result shown")
	}
	if _, p, _ := node(); p != "default" {
		t.Errorf("profile = %q after assigning default", p)
	}
	if _, _, body := b.act(mac1, "profile", true, url.Values{"profile": {""}}); !strings.Contains(body, "cleared") {
		t.Errorf("clear profile: no result shown")
	}

	// Local-boot command: the API's rules.
	if _, _, body := b.act(mac1, "local-boot", true, url.Values{"script": {"chain http://evil/"}}); !strings.Contains(body, "not allowed") || !strings.Contains(body, "nothing was changed") {
		t.Errorf("a forbidden local-boot command: the page does not say why it was refused")
	}
	if _, _, sc := node(); sc != "" {
		t.Fatalf("a refused command was stored: %q", sc)
	}
	if _, _, body := b.act(mac1, "local-boot", true, url.Values{"script": {"  sanboot   --drive 0x81 "}}); !strings.Contains(body, "sanboot --drive 0x81") {
		t.Errorf("set local-boot: the page does not show the normalised command")
	}
	if _, _, sc := node(); sc != "sanboot --drive 0x81" {
		t.Errorf("local-boot = %q", sc)
	}
	if _, _, body := b.act(mac1, "local-boot", true, url.Values{"script": {"exit"}, "clear": {"1"}}); !strings.Contains(body, "cleared") {
		t.Errorf("clear local-boot: no result shown")
	}

	// Forget: back to the fleet, which says so; the node page is a 404.
	code, loc, body := b.act(mac1, "forget", true, nil)
	if code != http.StatusSeeOther || loc != "/ui/" || !strings.Contains(body, "is forgotten") {
		t.Errorf("forget: %d → %q", code, loc)
	}
	if code, _, _ := b.get("/ui/nodes/" + mac1); code != http.StatusNotFound {
		t.Errorf("node page after forget: %d, want 404", code)
	}
	if code, _, body := b.get("/ui/nodes/not-a-mac"); code != http.StatusBadRequest || !strings.Contains(body, "not a MAC") {
		t.Errorf("node page for a bad MAC: %d", code)
	}
}

func TestFleetFiltersAndPages(t *testing.T) {
	a := newApp(t, "", func(c *console.Config) { c.PageSize = 2 })
	a.seedFleet() // node1…node5: 01 local, 02 installing, 03 installed, 04 failed, 05 reinstall
	b := a.browser()
	rows := func(query string) []string {
		t.Helper()
		code, _, body := b.get("/ui/" + query)
		if code != http.StatusOK {
			t.Fatalf("GET /ui/%s: %d\n%s", query, code, body)
		}
		var macs []string
		for _, part := range strings.Split(body, `data-mac="`)[1:] {
			macs = append(macs, part[:17])
		}
		return macs
	}
	want := func(query string, macs ...string) {
		t.Helper()
		if got := rows(query); fmt.Sprint(got) != fmt.Sprint(macs) {
			t.Errorf("GET /ui/%s: rows %v, want %v", query, got, macs)
		}
	}
	want("", "52:54:00:00:00:01", "52:54:00:00:00:02")
	want("?after=52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04")
	want("?state=failed", "52:54:00:00:00:04")
	want("?label=rack=r2", "52:54:00:00:00:02", "52:54:00:00:00:04")
	want("?q=node5", "52:54:00:00:00:05")
	want("?q=nobody")
	want("?q=00:00:05", "52:54:00:00:00:05")
	want("?profile=-&since=1h", "52:54:00:00:00:01", "52:54:00:00:00:02")
	want("?profile=default")

	_, _, body := b.get("/ui/")
	mustContain(t, "the first page", body, `href="/ui/?after=52%3A54%3A00%3A00%3A00%3A02" rel="next"`,
		`id="count-total">5<`, `id="count-failed">1<`)
	for query, msg := range map[string]string{
		"?state=broken": `state &#34;broken&#34; is not a lifecycle state`,
		"?since=soon":   `seen since &#34;soon&#34; is not a duration`,
		"?label=a%20b":  `label filter &#34;a b&#34;`,
		"?after=zz":     `page cursor &#34;zz&#34;`,
	} {
		code, _, body := b.get("/ui/" + query)
		if code != http.StatusBadRequest || !strings.Contains(body, msg) {
			t.Errorf("GET /ui/%s: %d; want 400 saying %s", query, code, msg)
		}
	}
}

// A store failure names the node it was for (reinstall and cancel used to
// name the empty node the failed call returned: "marking  for
// reinstall"), and a refused local-boot command is quoted as it was typed
// (it used to be quoted after validation had emptied it: "“” refused").
func TestActionProblemsNameTheirInput(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetReinstall(mustMAC(t, mac1), true, time.Now()); err != nil { // so cancel is offered
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// The same node, on a store whose disk reserve refuses every write.
	full, err := store.Open(dir, store.Options{Logger: quiet, MinFree: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	a := newApp(t, testKey, func(c *console.Config) { c.Store = full })
	b := a.browser()
	b.signIn(testKey)
	for action, what := range map[string]string{"reinstall": "marking " + mac1 + " for reinstall", "cancel": "cancelling the reinstall of " + mac1} {
		if _, _, body := b.act(mac1, action, true, url.Values{}); !strings.Contains(body, "The node store failed while "+what+": ") || !strings.Contains(body, "free") {
			t.Errorf("%s on a full disk: the page does not say %q and why:\n%s", action, what, body)
		}
	}
	const typed = "sanboot --drive 0x80 --evil"
	if _, _, body := b.act(mac1, "local-boot", true, url.Values{"script": {typed}}); !strings.Contains(body, "Local-boot command “"+typed+"” refused") {
		t.Errorf("a refused local-boot command is not quoted as typed:\n%s", body)
	}
}
