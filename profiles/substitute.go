package profiles

import (
	"net/url"
	"strings"
)

// Substitute replaces ${mac}, ${mac_hyphen} and ${ip} in a seed installer
// URL (PXE_UBUNTU_KERNEL_URL, …) with the client's values, URL-encoded.
// Every other ${…} is left for iPXE to expand on the machine (${uuid},
// ${serial}, …). An unknown IP becomes the empty string.
//
// Replacing is repeated until no placeholder is left: an empty ${ip} can
// glue its neighbours into a new one ("${${ip}mac}" becomes "${mac}").
// Every pass that changes something removes at least one "$" and the values
// put in contain none ("$" is escaped too, which url.PathEscape leaves), so
// the loop ends.
func Substitute(raw, mac, macHyphen, ip string) string {
	if !strings.Contains(raw, "${") {
		return raw
	}
	esc := func(v string) string { return strings.ReplaceAll(url.PathEscape(v), "$", "%24") }
	r := strings.NewReplacer(
		"${mac}", esc(mac),
		"${mac_hyphen}", esc(macHyphen),
		"${ip}", esc(ip),
	)
	for {
		out := r.Replace(raw)
		if out == raw {
			return out
		}
		raw = out
	}
}
