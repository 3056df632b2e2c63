package boot

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// GRUBConfigPath is where the appliance's GRUB configuration endpoint
// lives under PXE_BASE_URL.
const GRUBConfigPath = "/grub"

// GRUBConfig renders the static grub.cfg served over TFTP (and HTTP) under
// GRUB's built-in prefix, once at start-up from PXE_BASE_URL, like
// boot.ipxe. It is the same for every machine: it asks the appliance for
// the machine's own script, with the facts GRUB knows about it
// ($net_default_mac, $net_default_ip, $grub_platform), and sources it. If
// the appliance cannot be reached it says so and leaves GRUB.
//
// The request goes through GRUB's http module to (http,host:port); base
// must therefore be http://, not https:// (GRUB has no TLS).
func GRUBConfig(base string) ([]byte, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || strings.ContainsAny(base, " \t\r\n'\"\\$;") {
		return nil, fmt.Errorf("base URL %q: GRUB needs a plain http:// URL with a host (GRUB has no https)", base)
	}
	dev := "(http," + u.Host + ")" + strings.TrimRight(u.EscapedPath(), "/") + GRUBConfigPath
	var b bytes.Buffer
	fmt.Fprintf(&b, `# PXE Pilot grub.cfg, generated at start-up from PXE_BASE_URL (%s).
# GRUB reads it from its prefix; it fetches this machine's own script from
# the appliance, which makes the same decision as iPXE's /boot.
set timeout=0
echo 'PXE Pilot: GRUB asks %s%s for this machine'
source "%s?mac=${net_default_mac}&ip=${net_default_ip}&platform=${grub_platform}&buildarch=${grub_cpu}"
echo 'PXE Pilot: could not load %s%s; trying the next boot device'
sleep 3
exit
`, base, base, GRUBConfigPath, dev, base, GRUBConfigPath)
	return b.Bytes(), nil
}
