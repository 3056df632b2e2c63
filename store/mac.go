package store

import (
	"errors"
	"fmt"
	"strings"
)

// MAC is a normalised Ethernet hardware address: six lowercase hex octets
// joined by colons ("52:54:00:12:34:56"). Build one with ParseMAC; every key
// in the store and every MAC the API returns is in this form, so two spellings
// of one machine can never become two nodes.
type MAC string

// ErrBadMAC is wrapped by every ParseMAC error.
var ErrBadMAC = errors.New("not a MAC address")

// ParseMAC accepts the spellings people and firmware actually use, in any
// case: colon ("52:54:00:12:34:56"), hyphen ("52-54-00-12-34-56", Windows and
// iPXE's ${mac:hexhyp}), Cisco dot ("5254.0012.3456") and bare hex
// ("525400123456"). Anything else is an error that quotes the input.
// Unlike net.ParseMAC it refuses 8- and 20-octet addresses: PXE is Ethernet.
func ParseMAC(s string) (MAC, error) {
	in := s
	var hex string
	switch {
	case len(s) == 17 && (strings.Count(s, ":") == 5 || strings.Count(s, "-") == 5):
		// The separators must sit between the octets, all alike: five
		// colons elsewhere ("0:00:00:00:00:000") are not a MAC.
		sep := s[2]
		for i := 2; i < 17; i += 3 {
			if s[i] != sep || (sep != ':' && sep != '-') {
				return "", fmt.Errorf("%w: %q mixes separators", ErrBadMAC, quoteShort(in))
			}
		}
		hex = s[0:2] + s[3:5] + s[6:8] + s[9:11] + s[12:14] + s[15:17]
	case len(s) == 14 && s[4] == '.' && s[9] == '.':
		hex = s[0:4] + s[5:9] + s[10:14]
	case len(s) == 12:
		hex = s
	default:
		return "", fmt.Errorf("%w: %q (want six hex octets such as 52:54:00:12:34:56, 52-54-00-12-34-56, 5254.0012.3456 or 525400123456)", ErrBadMAC, quoteShort(in))
	}
	if len(hex) != 12 {
		return "", fmt.Errorf("%w: %q", ErrBadMAC, quoteShort(in))
	}
	var b strings.Builder
	b.Grow(17)
	for i := 0; i < 12; i++ {
		c := hex[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		default:
			return "", fmt.Errorf("%w: %q has a non-hex character", ErrBadMAC, quoteShort(in))
		}
		if i > 0 && i%2 == 0 {
			b.WriteByte(':')
		}
		b.WriteByte(c)
	}
	return MAC(b.String()), nil
}

// Hyphen returns the MAC in hyphen form, as iPXE's ${mac:hexhyp} and many
// installer URL schemes spell it.
func (m MAC) Hyphen() string { return strings.ReplaceAll(string(m), ":", "-") }

func (m MAC) String() string { return string(m) }

// quoteShort keeps error messages (and logs) bounded when the input is huge.
func quoteShort(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
