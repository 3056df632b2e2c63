package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium; the test fails (never skips) without it.
const chromiumPath = "/usr/bin/chromium"

// artifacts is where the screenshots go (git-ignored).
const artifacts = "testdata/artifacts"

// newChromium starts headless Chromium with no network beyond loopback and
// a fresh profile; it ends with the test.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): the console tests drive headless Chromium; install it with: apt-get install -y chromium (.ci/deps.sh does)", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// step runs browser actions with a deadline, failing the test with what
// was being done.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.TextContent(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("browser: reading %s: %v", css, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// screenshots saves the page at desktop and phone width.
func screenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		tag  string
		w, h int64
		opts []chromedp.EmulateViewportOption
	}{{"desktop", 1280, 800, nil}, {"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile, chromedp.EmulateScale(2)}}} {
		step(t, ctx, "viewport "+v.tag, chromedp.EmulateViewport(v.w, v.h, v.opts...), chromedp.Sleep(150*time.Millisecond))
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s %s: %v", name, v.tag, err)
		}
		p := filepath.Join(artifacts, fmt.Sprintf("%s-%s.png", name, v.tag))
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step(t, ctx, "viewport reset", chromedp.EmulateViewport(1280, 800))
}

// watchRow makes the page note (Date.now) when a row for mac is added to
// the fleet table; seenAfter reads how long after start that was.
func watchRow(t *testing.T, ctx context.Context, mac string) {
	t.Helper()
	js := `window.__seen = 0; new MutationObserver(function () {
		if (!window.__seen && document.querySelector('tr[data-mac="` + mac + `"]')) { window.__seen = Date.now(); }
	}).observe(document.getElementById("rows"), {childList: true}); true`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatalf("installing the row watcher: %v", err)
	}
}

func seenAfter(t *testing.T, ctx context.Context, start time.Time) time.Duration {
	t.Helper()
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__seen`))
	if err != nil || seen == 0 {
		t.Fatalf("the row watcher saw nothing (%v)", err)
	}
	return time.UnixMilli(int64(seen)).Sub(start)
}

// TestBrowser drives the console in real headless Chromium: a wrong key is
// refused, sign-in works, a node appears live after a /boot, it is marked
// for reinstall from its page (and the JSON API agrees), the reinstall is
// cancelled, and the timeline shows the events.
func TestBrowser(t *testing.T) {
	a := newApp(t, testKey, nil)
	a.seedFleet()
	ctx := newChromium(t)
	u := a.srv.URL

	step(t, ctx, "open the console signed out", chromedp.Navigate(u+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	step(t, ctx, "sign in with a wrong key", chromedp.SendKeys(chromedp.CSS("#key"), "wrong-key"), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text(t, ctx, "#flash"); !strings.Contains(got, "Wrong admin key") {
		t.Fatalf("after a wrong key the page says %q", got)
	}
	if got := text(t, ctx, "h1"); got != "Sign in" {
		t.Fatalf("a wrong key led to %q, want the sign-in page again", got)
	}
	step(t, ctx, "sign in", chromedp.SendKeys(chromedp.CSS("#key"), testKey), chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#fleet")), chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`)))

	// A node boots: the fleet page shows it without a reload.
	const mac = "52:54:00:aa:bb:01"
	watchRow(t, ctx, mac)
	start := time.Now()
	a.boot(mac)
	step(t, ctx, "see the new node appear live", chromedp.WaitVisible(chromedp.CSS(`tr[data-mac="`+mac+`"]`)))
	t.Logf("live update: /boot to the row in the page's DOM in %s", seenAfter(t, ctx, start))
	// Installer progress and an outcome arrive the same way.
	a.report("52:54:00:00:00:02", "progress", "curtin: writing the bootloader (90%)")
	step(t, ctx, "see installer progress live", chromedp.WaitVisible(chromedp.Search(`//tr[@data-mac="52:54:00:00:00:02"]/td[contains(., "writing the bootloader")]`)))
	a.report("52:54:00:00:00:02", "failed", "no network for the mirror")
	step(t, ctx, "see the failure live", chromedp.WaitVisible(chromedp.Search(`//tr[@data-mac="52:54:00:00:00:02"]/td[contains(., "no network for the mirror")]`)))
	if got := text(t, ctx, "#count-failed"); got != "2" {
		t.Errorf("live failed count = %q, want 2", got)
	}
	if got := text(t, ctx, "#count-total"); got != "6" {
		t.Errorf("live total count = %q, want 6", got)
	}
	weight, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).reduce((s, e) => s + e.transferSize, 0)`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet view transferred %.0f bytes in the browser (navigation + resources)", weight)
	screenshots(t, ctx, "fleet")

	// Its page: mark it for reinstall, with confirmation.
	step(t, ctx, "open the node page", chromedp.Click(chromedp.CSS(`a[href="/ui/nodes/`+mac+`"]`)), chromedp.WaitVisible(chromedp.CSS("#act-reinstall")))
	step(t, ctx, "reinstall", chromedp.Click(chromedp.CSS("#act-reinstall")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	step(t, ctx, "confirm the reinstall", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text(t, ctx, "#flash"); !strings.Contains(got, "marked for reinstall") {
		t.Errorf("after reinstall the page says %q", got)
	}
	if got := a.apiState(mac, testKey); got != "reinstall" {
		t.Fatalf("JSON API: state %s after the console's reinstall, want reinstall", got)
	}
	if got := text(t, ctx, "#node-status .state"); got != "reinstall" {
		t.Errorf("node page shows state %q, want reinstall", got)
	}
	screenshots(t, ctx, "node")

	// Cancel it.
	step(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#act-cancel")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	step(t, ctx, "confirm the cancel", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text(t, ctx, "#flash"); !strings.Contains(got, "cancelled") {
		t.Errorf("after cancel the page says %q", got)
	}
	if got := a.apiState(mac, testKey); got != "local" {
		t.Fatalf("JSON API: state %s after the console's cancel, want local", got)
	}

	// The timeline: the boot so far, and a new boot arriving live.
	step(t, ctx, "wait for the live stream", chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`)))
	a.boot(mac)
	step(t, ctx, "see the second boot arrive live", chromedp.WaitVisible(chromedp.CSS("#timeline tr:nth-child(2)")))
	if got := text(t, ctx, "#timeline tr:first-child"); !strings.Contains(got, "boot") || !strings.Contains(got, "local") {
		t.Errorf("newest timeline entry = %q, want a boot decided local", got)
	}

	step(t, ctx, "open the appliance page", chromedp.Click(chromedp.CSS(`a[href="/ui/appliance"]`)), chromedp.WaitVisible(chromedp.CSS(".chart svg")))
	if got := text(t, ctx, "table.health"); !strings.Contains(got, "Store") || !strings.Contains(got, "healthy") {
		t.Errorf("appliance health table = %q", got)
	}
	screenshots(t, ctx, "appliance")

	step(t, ctx, "sign out", chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#key")))
}
