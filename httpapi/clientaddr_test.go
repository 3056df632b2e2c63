package httpapi

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/pxe-pilot/pxe-pilot/boot"
)

func TestClientAddr(t *testing.T) {
	long := "fe80::1%" + strings.Repeat("z", 3033) // 3,041 characters, as in issue 12
	for _, tc := range []struct {
		in, want string // want "" means refused
		errPart  string
	}{
		{"198.51.100.7", "198.51.100.7", ""},
		{"2001:db8::5", "2001:db8::5", ""},
		{"::ffff:198.51.100.8", "198.51.100.8", ""},
		{"fe80::1", "fe80::1", ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
		{"", "", "empty"},
		{"0.0.0.0", "", "unspecified"},
		{"::", "", "unspecified"},
		{"::ffff:0.0.0.0", "", "unspecified"},
		{"fe80::1%eth0", "", "zone"},
		{"fe80::1%", "", "not an IP address"},
		{long, "", "3041 bytes"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555", "", "46 bytes"},
		{"${ip}", "", "not an IP address"},
		{" 198.51.100.7", "", "not an IP address"},
		{"198.51.100.7:80", "", "not an IP address"},
	} {
		a, err := ClientAddr(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ClientAddr(%.50q) = %v, want an error", tc.in, a)
			} else if !strings.Contains(err.Error(), tc.errPart) || len(err.Error()) > 200 {
				t.Errorf("ClientAddr(%.50q): error %q should mention %q and stay short", tc.in, err, tc.errPart)
			}
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("ClientAddr(%q) = %v, %v; want %s", tc.in, a, err, tc.want)
		}
	}
}

// TestBootClientAddrOneRule: the ip= query and X-Forwarded-For from a
// trusted proxy obey the same rule; a zoned or over-long address is never
// stored as last_ip.
func TestBootClientAddrOneRule(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")}
	long := "fe80::1%" + strings.Repeat("z", 3033)
	for _, tc := range []struct {
		name  string
		query string
		xff   string
		want  string
	}{
		{"XFF with a 3,041-character zone", "", long, "203.0.113.7"},
		{"XFF with a zone", "", "fe80::1%eth0", "203.0.113.7"},
		{"XFF zone behind a trusted hop", "", "fe80::1%eth0, 203.0.113.9", "203.0.113.9"},
		{"XFF unspecified", "", "0.0.0.0", "203.0.113.7"},
		{"XFF over-long without a zone", "", strings.Repeat("1", 60), "203.0.113.7"},
		{"XFF v4-mapped is unmapped", "", "::ffff:198.51.100.80", "198.51.100.80"},
		{"query zone, XFF good", long, "198.51.100.81", "198.51.100.81"},
		{"query good beats XFF", "198.51.100.82", "198.51.100.81", "198.51.100.82"},
		{"query v4-mapped unspecified, XFF good", "::ffff:0.0.0.0", "198.51.100.83", "198.51.100.83"},
		{"query v4-mapped is unmapped", "::ffff:198.51.100.84", "198.51.100.81", "198.51.100.84"},
	} {
		// iPXE's /boot and GRUB's /grub take ip= by the same rule (/grub
		// used to check for the unspecified address before unmapping).
		for _, path := range []string{"/boot", boot.GRUBConfigPath} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				e := newEnv(t, func(c *Config) { c.TrustedProxies = proxies })
				target := path + "?mac=52:54:00:aa:bb:16&platform=pcbios"
				if tc.query != "" {
					target += "&ip=" + url.QueryEscape(tc.query)
				}
				wantCode(t, e.do("GET", target, "", "X-Forwarded-For", tc.xff), http.StatusOK)
				if n := e.node("52:54:00:aa:bb:16"); n.LastIP != tc.want {
					t.Errorf("last_ip = %.60q, want %q", n.LastIP, tc.want)
				}
			})
		}
	}
}

// FuzzClientAddr: whatever the text, an accepted address has no zone, is
// not unspecified or v4-mapped, came from at most MaxAddrText bytes, and
// its own spelling is accepted as the same address.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "::ffff:198.51.100.8", "fe80::1%eth0", "0.0.0.0", "::", "2001:db8::5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ClientAddr(s)
		if err != nil {
			if a.IsValid() {
				t.Fatalf("error %v with an address %v", err, a)
			}
			return
		}
		if len(s) > MaxAddrText || a.Zone() != "" || a.IsUnspecified() || a.Is4In6() || !a.IsValid() {
			t.Fatalf("ClientAddr(%q) accepted %v", s, a)
		}
		if b, err := ClientAddr(a.String()); err != nil || b != a {
			t.Fatalf("ClientAddr(%q) = %v, but its spelling %q gives %v, %v", s, a, a.String(), b, err)
		}
	})
}
