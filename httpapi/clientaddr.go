package httpapi

import (
	"errors"
	"fmt"
	"net/netip"
)

// MaxAddrText is the longest textual IP address accepted from a client:
// "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 45 bytes (INET6_ADDRSTRLEN
// less its NUL). Anything longer is not an address PXE Pilot stores.
const MaxAddrText = 45

// ClientAddr is the one rule for every address a client supplies: the
// ip= query of /boot, each X-Forwarded-For hop, and the connection's peer
// (ClientIP). It refuses text longer than MaxAddrText, anything
// netip.ParseAddr refuses, IPv6 zones ("fe80::1%eth0": free text of any
// length that would be stored as last_ip and substituted into installer
// URLs as ${ip}) and the unspecified addresses (0.0.0.0, ::), and returns
// IPv4-mapped IPv6 addresses as IPv4, so one machine has one spelling.
// Errors name the input (cut short) and say what to send instead.
func ClientAddr(s string) (netip.Addr, error) {
	if len(s) > MaxAddrText {
		return netip.Addr{}, fmt.Errorf("client address %q… is %d bytes; an IP address is at most %d: send the bare address", s[:MaxAddrText], len(s), MaxAddrText)
	}
	if s == "" {
		return netip.Addr{}, errors.New("client address is empty: send an IPv4 or IPv6 address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("client address %q is not an IP address: send an IPv4 or IPv6 address such as 192.0.2.10", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("client address %q has an IPv6 zone: send the address without %%zone", s)
	}
	a = a.Unmap()
	if a.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("client address %q is unspecified: send the address the client has", s)
	}
	return a, nil
}
