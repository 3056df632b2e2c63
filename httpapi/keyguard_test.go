package httpapi

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
)

// TestWrongAPIKeysAreLimited: an address that spent its tries on wrong
// admin keys gets 429 with Retry-After, even with the right key, for the
// admin API and the install call-back alike, and nothing changes; other
// addresses (told apart through a trusted proxy) and requests without a
// key are not held back.
func TestWrongAPIKeysAreLimited(t *testing.T) {
	const key = "correct horse battery staple"
	e := newEnv(t, func(c *Config) {
		c.AdminKey = key
		c.KeyGuard = keyguard.New(3, time.Hour)
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")} // testPeer
	})
	const mac = "52:54:00:00:00:81"
	wantScript(t, e.boot(mac, "efi"), http.StatusOK)
	from := func(client, auth string) []string {
		h := []string{"X-Forwarded-For", client}
		if auth != "" {
			h = append(h, "Authorization", auth)
		}
		return h
	}
	const guesser, admin = "198.51.100.20", "198.51.100.21"
	for i := 0; i < 3; i++ {
		wantJSONError(t, e.do("POST", "/nodes/"+mac+"/reinstall", "", from(guesser, "Bearer guess")...), http.StatusUnauthorized, "wrong API key")
	}
	// Out of tries: refused before the key is compared, the right one too.
	for _, auth := range []string{"Bearer guess", "Bearer " + key} {
		w := e.do("POST", "/nodes/"+mac+"/reinstall", "", from(guesser, auth)...)
		wantJSONError(t, w, http.StatusTooManyRequests, "too many wrong API keys from "+guesser+": try again in 3600 s (each address gets 3 tries, then one every 1h0m0s); nothing was changed")
		if ra := w.Header().Get("Retry-After"); ra != "3600" {
			t.Errorf("Retry-After %q, want 3600", ra)
		}
	}
	w := e.do("POST", "/installed?mac="+mac, "", from(guesser, "Bearer "+key)...)
	wantJSONError(t, w, http.StatusTooManyRequests, "too many wrong API keys")
	// Without a key: the usual 401, no try spent, no wait.
	wantJSONError(t, e.do("GET", "/nodes", "", from(guesser, "")...), http.StatusUnauthorized, "missing Authorization")
	if n := e.node(mac); n.Reinstall {
		t.Fatal("a refused request changed the node")
	}
	// Another address is not held back by the guesser.
	wantCode(t, e.do("POST", "/nodes/"+mac+"/reinstall", "", from(admin, "Bearer "+key)...), http.StatusOK)
	if n := e.node(mac); !n.Reinstall {
		t.Fatal("the admin's reinstall did not take")
	}
	for result, want := range map[string]float64{"wrong_key": 3, "limited": 3} {
		if got := testutil.ToFloat64(e.m.AdminKeyRefusals.WithLabelValues(result)); got != want {
			t.Errorf("pxe_pilot_http_admin_key_refusals_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	// The boot endpoints never ask for the key.
	if w := e.boot(mac, "efi"); !strings.Contains(w.Body.String(), "kernel ") {
		t.Fatalf("boot after the guessing did not install:\n%s", w.Body)
	}
}
