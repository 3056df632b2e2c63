package console

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestActivityRing(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 30, 0, time.UTC)
	a := newActivity(60, func() time.Time { return now })
	a.add(now)                        // this minute
	a.add(now.Add(-time.Minute))      // the one before
	a.add(now.Add(-30 * time.Minute)) // half an hour ago
	a.add(now.Add(-2 * time.Hour))    // outside the window: dropped
	a.add(now.Add(-59 * time.Minute)) // the oldest minute kept
	a.add(now.Add(-60 * time.Minute)) // one too old; shares a slot with "now"
	s, _ := a.series(1)
	if len(s) != 60 {
		t.Fatalf("series has %d minutes, want 60", len(s))
	}
	if s[59] != 1 || s[58] != 1 || s[29] != 1 || s[0] != 1 {
		t.Errorf("series = %v; want one boot at minutes 0, 29, 58 and 59", s)
	}
	var sum uint32
	for _, v := range s {
		sum += v
	}
	if sum != 4 {
		t.Errorf("%d boots in the window, want 4", sum)
	}
	// An hour later the old counts have left the window.
	now = now.Add(time.Hour)
	s, _ = a.series(5)
	for _, v := range s {
		if v != 0 {
			t.Fatalf("an hour later the series still has boots: %v", s)
		}
	}
	c := a.chart()
	if len(c.Bars) != 12 || c.Total != 0 {
		t.Errorf("chart: %d bars, total %d; want 12 bars, 0", len(c.Bars), c.Total)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/nodes/x":       "/ui/nodes/x",
		"/ui/?state=failed": "/ui/?state=failed",
		"https://evil/ui/":  "/ui/",
		"//evil/ui/":        "/ui/",
		"/ui/\\evil":        "/ui/",
		"/nodes":            "/ui/",
		"":                  "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecureCookieBehindTrustedProxy(t *testing.T) {
	c := &Console{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		peer, proto string
		want        bool
	}{
		{"10.1.2.3:5000", "https", true},
		{"10.1.2.3:5000", "http", false},
		{"192.0.2.9:5000", "https", false}, // not a trusted proxy: the header is ignored
	} {
		r := httptest.NewRequest("GET", "/ui/", nil)
		r.RemoteAddr = tc.peer
		r.Header.Set("X-Forwarded-Proto", tc.proto)
		if got := c.overTLS(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-Proto %s: Secure = %v, want %v", tc.peer, tc.proto, got, tc.want)
		}
	}
}

func TestSessionTableIsBounded(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := newSessions(func() time.Time { return now }, time.Hour)
	admin := s.create(true)
	for range maxSessions + 10 { // anonymous browsers asking for the sign-in page
		s.create(false)
	}
	if len(s.m) != maxSessions {
		t.Errorf("%d sessions, want the bound %d", len(s.m), maxSessions)
	}
	if _, ok := s.get(admin.id); !ok {
		t.Error("anonymous sessions pushed out a signed-in one")
	}
	now = now.Add(2 * time.Hour)
	if _, ok := s.get(admin.id); ok {
		t.Error("a session outlived its expiry")
	}
	s.sweep()
	if len(s.m) != 0 {
		t.Errorf("%d sessions after every one expired and a sweep", len(s.m))
	}
}
