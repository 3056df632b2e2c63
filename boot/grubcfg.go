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

// GRUBNodeFolder is the TFTP folder GRUB asks for its per-machine
// script: /grub/node/<MAC>.
const GRUBNodeFolder = "grub/node/"

// GRUBConfig renders the static grub.cfg served over TFTP (and HTTP) under
// GRUB's built-in prefixes, once at start-up from PXE_BASE_URL, like
// boot.ipxe. It is the same for every machine: it sources the machine's own
// script, which the appliance makes per request with the same decision as
// /boot. Measured with Debian's signed grubnetx64.efi (2.06-13): it reads
// $prefix/x86_64-efi/{command,fs,crypto,terminal}.lst, then
// $prefix/grub.cfg (prefix "/grub", all with a leading slash), from the
// next-server (siaddr) of the router's DHCP answer, not from the ProxyDHCP
// offer; it asks for no per-MAC config names; and it has no http module
// ("source (http,…)" makes it ask for $prefix/x86_64-efi/http.mod, which a
// Secure Boot GRUB may not load unsigned anyway). So the per-machine script
// comes over TFTP, from the same server as grub.cfg: /grub/node/<MAC>,
// with the MAC from $net_default_mac.
func GRUBConfig(base string) ([]byte, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || strings.ContainsAny(base, " \t\r\n'\"\\$;") {
		return nil, fmt.Errorf("base URL %q: want an http(s) URL with a host", base)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `# PXE Pilot grub.cfg, generated at start-up (appliance %s).
# GRUB reads it from its prefix; it loads this machine's own script from
# the appliance, which makes the same decision as iPXE's /boot.
set timeout=0
echo 'PXE Pilot: GRUB asks the appliance how to boot this machine'
source "/%s${net_default_mac}"
echo "PXE Pilot: could not load /%s${net_default_mac} from %s; trying the local disk"
%s`, base, GRUBNodeFolder, GRUBNodeFolder, u.Host, grubLeave)
	return b.Bytes(), nil
}
