package httpapi

import (
	"net/http"
	"testing"
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
