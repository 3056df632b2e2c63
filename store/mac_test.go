package store

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseMACAccepts(t *testing.T) {
	const want = MAC("52:54:00:ab:cd:ef")
	for _, in := range []string{
		"52:54:00:ab:cd:ef",
		"52:54:00:AB:CD:EF",
		"52:54:00:Ab:cD:eF",
		"52-54-00-ab-cd-ef", // Windows, iPXE ${mac:hexhyp}
		"52-54-00-AB-CD-EF",
		"5254.00ab.cdef", // Cisco
		"5254.00AB.CDEF",
		"525400abcdef", // bare hex, as some BMCs and inventories print it
		"525400ABCDEF",
	} {
		got, err := ParseMAC(in)
		if err != nil {
			t.Errorf("ParseMAC(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("ParseMAC(%q) = %q, want %q", in, got, want)
		}
		if got.String() != string(want) {
			t.Errorf("ParseMAC(%q).String() = %q", in, got.String())
		}
		if h := got.Hyphen(); h != "52-54-00-ab-cd-ef" {
			t.Errorf("ParseMAC(%q).Hyphen() = %q", in, h)
		}
	}
	// The extremes of the hex alphabet.
	for in, want := range map[string]MAC{
		"00:00:00:00:00:00": "00:00:00:00:00:00",
		"FF-FF-FF-FF-FF-FF": "ff:ff:ff:ff:ff:ff",
		"0123.4567.89aB":    "01:23:45:67:89:ab",
		"cdefCDEF0918":      "cd:ef:cd:ef:09:18",
	} {
		if got, err := ParseMAC(in); err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseMACRejects(t *testing.T) {
	long := strings.Repeat("52:54:00:12:34:56", 4096) // 68 KiB
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"five octets", "52:54:00:12:34"},
		{"seven octets", "52:54:00:12:34:56:78"},
		{"five octets hyphen", "52-54-00-12-34"},
		{"seven octets bare", "525400123456ab"},
		{"eleven hex digits", "525400123456"[:11]},
		{"mixed separators colon first", "52:54:00-12:34:56"},
		{"mixed separators hyphen first", "52-54-00-12-34:56"},
		{"mixed separators all", "52:54-00:12-34:56"},
		{"dot in colon form", "52:54:00.12:34:56"},
		{"cisco with colons", "5254:0012:3456"},
		{"cisco misplaced dots", "525.4001.23456"},
		{"colons in wrong places", "525:400:123:456"},
		{"single-digit octets shifted", "0:00:00:00:00:000"},
		{"hex digit as separator", "0:0000:0000:0000"},
		{"non-hex colon", "52:54:00:12:34:5g"},
		{"non-hex bare", "52540012345z"},
		{"non-hex cisco", "5254.0012.345x"},
		{"0x prefix", "0x525400123456"},
		{"eui-64", "52:54:00:ff:fe:12:34:56"},
		{"eui-64 hyphen", "52-54-00-ff-fe-12-34-56"},
		{"eui-64 bare", "525400fffe123456"},
		{"infiniband 20 octets", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"},
		{"leading space", " 52:54:00:12:34:56"},
		{"trailing newline", "52:54:00:12:34:56\n"},
		{"inner space", "52:54:00:12:34: 6"},
		{"tab in bare", "52540012345\t"},
		{"nul byte", "52:54:00:12:34:5\x00"},
		{"unicode digit", "52:54:00:12:34:٥٦"},
		{"fullwidth", "５２:54:00:12:34:56"},
		{"unicode same byte length", "52:54:00:12:3é:56"[:17]},
		{"invalid utf-8", "52:54:00:12:34:\xff\xfe"},
		{"url-escaped", "52%3A54%3A00%3A12%3A34%3A56"},
		{"ipxe unexpanded", "${mac}"},
		{"very long", long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMAC(tc.in)
			if err == nil {
				t.Fatalf("ParseMAC(%q) = %q, want an error", tc.in, got)
			}
			if got != "" {
				t.Errorf("ParseMAC(%q) returned %q alongside its error", tc.in, got)
			}
			if !errors.Is(err, ErrBadMAC) {
				t.Errorf("error %v does not wrap ErrBadMAC", err)
			}
			msg := err.Error()
			// The message quotes the input (at most its first 64 bytes),
			// so a log line says what the client actually sent.
			head := tc.in
			if len(head) > 64 {
				head = head[:64]
			}
			if !strings.Contains(msg, strings.Trim(strconv.Quote(head), `"`)) {
				t.Errorf("error %q does not quote the input %q", msg, head)
			}
			if len(msg) > 512 {
				t.Errorf("error is %d bytes long; a hostile input must not make huge log lines: %.100q", len(msg), msg)
			}
		})
	}
}

// FuzzParseMAC: whatever the input, ParseMAC either refuses it with an error
// wrapping ErrBadMAC, or returns the 17-byte lowercase colon form, which
// parses to itself, whose Hyphen form parses back to it, and whose 12 hex
// digits are the input's with separators removed and case folded (so no
// input is silently reshaped into some other machine's address).
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{
		"52:54:00:12:34:56", "52-54-00-12-34-56", "5254.0012.3456", "525400123456",
		"AA:BB:CC:DD:EE:FF", "", "52:54:00:12:34", "52:54:00-12:34:56",
		"0:00:00:00:00:000", "52:54:00:ff:fe:12:34:56", " 525400123456",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMAC(in)
		if err != nil {
			if !errors.Is(err, ErrBadMAC) {
				t.Fatalf("ParseMAC(%q) error %v does not wrap ErrBadMAC", in, err)
			}
			if m != "" {
				t.Fatalf("ParseMAC(%q) returned %q with an error", in, m)
			}
			if len(err.Error()) > 512 { // 64 input bytes, each at most 4 once quoted, and the sentence
				t.Fatalf("ParseMAC(%q) error is %d bytes", in, len(err.Error()))
			}
			return
		}
		s := string(m)
		if len(s) != 17 {
			t.Fatalf("ParseMAC(%q) = %q, not 17 bytes", in, s)
		}
		for i := 0; i < 17; i++ {
			c := s[i]
			if i%3 == 2 {
				if c != ':' {
					t.Fatalf("ParseMAC(%q) = %q: byte %d is %q, want ':'", in, s, i, c)
				}
				continue
			}
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("ParseMAC(%q) = %q: byte %d is %q, not lowercase hex", in, s, i, c)
			}
		}
		if again, err := ParseMAC(s); err != nil || again != m {
			t.Fatalf("ParseMAC(%q) = %q, %v; want it to parse to itself", s, again, err)
		}
		if back, err := ParseMAC(m.Hyphen()); err != nil || back != m {
			t.Fatalf("ParseMAC(Hyphen %q) = %q, %v; want %q", m.Hyphen(), back, err, m)
		}
		// The input is one of the four shapes, holding the same digits.
		var digits, shape string
		switch len(in) {
		case 17:
			digits = in[0:2] + in[3:5] + in[6:8] + in[9:11] + in[12:14] + in[15:17]
			sep := in[2]
			if sep != ':' && sep != '-' {
				t.Fatalf("ParseMAC(%q) accepted a 17-byte input whose separator is %q", in, sep)
			}
			shape = strings.Repeat("xx"+string(sep), 5) + "xx"
		case 14:
			digits = in[0:4] + in[5:9] + in[10:14]
			shape = "xxxx.xxxx.xxxx"
		case 12:
			digits = in
			shape = "xxxxxxxxxxxx"
		default:
			t.Fatalf("ParseMAC(%q) accepted a %d-byte input", in, len(in))
		}
		var mask strings.Builder
		for i := 0; i < len(in); i++ {
			if shape[i] == 'x' {
				mask.WriteByte('x')
			} else {
				mask.WriteByte(in[i])
			}
		}
		if mask.String() != shape {
			t.Fatalf("ParseMAC(%q) accepted an input not shaped %q", in, shape)
		}
		if strings.ToLower(digits) != strings.ReplaceAll(s, ":", "") {
			t.Fatalf("ParseMAC(%q) = %q: digits changed", in, s)
		}
	})
}
