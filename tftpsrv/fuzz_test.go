package tftpsrv

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

var fuzzNames = []string{"autoexec.ipxe", "boot.ipxe", "ipxe-arm64.efi", "ipxe.efi", "snponly.efi", "undionly.kpxe"}

// FuzzParseRequest feeds arbitrary packets to everything that reads
// untrusted bytes at port 69: the socket filter (run in x/net/bpf's VM,
// which like the kernel returns 0 on a load past the end), ParseRequest,
// CleanName and the door's verdict. Beyond "never panics" it checks that
// the filter and the Go code agree: the filter passes a packet to pin/tftp
// only if the door would have called it a well-formed request for a known
// name (one gap: an option without a value, which the filter cannot count
// and pin/tftp ignores), and everything the door gets has a proper refusal.
func FuzzParseRequest(f *testing.F) {
	f.Add(rq(opRRQ, "undionly.kpxe", "octet"))
	f.Add(rq(opRRQ, "/ipxe.efi", "octet", "blksize", "1468", "tsize", "0"))
	f.Add(rq(opRRQ, "../etc/passwd", "netascii"))
	f.Add(rq(opWRQ, "boot.ipxe", "octet"))
	f.Add([]byte{0, 1, 0, 0})
	f.Add([]byte{0, 5, 0, 1, 0})
	f.Add(rq(opRRQ, "grub/node/52:54:00:12:34:56", "octet", "blksize", "1468"))
	f.Add(rq(opRRQ, "/grub/node/52:54:00:12:34:56", "mail"))
	const folder = "grub/node/" // a generated folder: any name in it, with a good mode
	raw, err := splitProgram(append(fuzzNames[:len(fuzzNames):len(fuzzNames)], folder), gate{})
	if err != nil {
		f.Fatal(err)
	}
	insns := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		insns[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		f.Fatal(err)
	}
	srv := &Server{files: map[string]file{}, gen: Generator{Prefix: folder, Make: func(string, netip.Addr) ([]byte, bool) { return nil, true }}}
	for _, n := range fuzzNames {
		srv.files[n] = file{name: n}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		sock, err := vm.Run(p)
		if err != nil {
			t.Fatalf("filter: %v", err)
		}
		req, perr := ParseRequest(p)
		if perr == nil {
			if req.Op != opRRQ && req.Op != opWRQ {
				t.Fatalf("parsed op %d", req.Op)
			}
			if name, cerr := CleanName(req.Filename); cerr == nil {
				if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") || len(name) > MaxNameLen {
					t.Fatalf("CleanName let %q through as %q", req.Filename, name)
				}
			}
		}
		v := srv.verdict(p, netip.Addr{})
		switch sock {
		case sockPin:
			if len(p) > MaxRequestLen || binary.BigEndian.Uint16(p) != opRRQ {
				t.Fatalf("filter passed %q to pin/tftp", p)
			}
			name, _, _ := strings.Cut(string(p[2:]), "\x00")
			_, known := srv.files[strings.TrimPrefix(name, "/")]
			inFolder := strings.HasPrefix(strings.TrimPrefix(name, "/"), folder) && len(name) <= MaxNameLen
			if !known && !inFolder || strings.HasPrefix(name, "//") {
				t.Fatalf("filter passed name %q to pin/tftp", name)
			}
			if perr != nil && !strings.Contains(perr.Error(), "has no value") {
				t.Fatalf("filter passed %q to pin/tftp, which the door refuses: %v", p, perr)
			}
		case sockDoor:
			if v != nil && v.Silent {
				t.Fatalf("door got a request it should serve: %q (%s)", p, v.Message)
			}
			if v == nil && (len(p) < 2 || binary.BigEndian.Uint16(p) != opERROR) {
				t.Fatalf("door would not answer %q", p)
			}
		default:
			t.Fatalf("filter returned socket %d", sock)
		}
		if v != nil {
			pkt := errorPacket(v.Code, v.Message)
			if binary.BigEndian.Uint16(pkt) != opERROR || pkt[len(pkt)-1] != 0 || bytes.IndexByte(pkt[4:len(pkt)-1], 0) >= 0 {
				t.Fatalf("bad ERROR packet %q", pkt)
			}
		}
	})
}

// FuzzLoopBreaker drives the loop breaker with arbitrary event sequences
// (3 bytes an event: kind, client and binary, seconds elapsed) and checks
// its invariants: the table never outgrows its cap, a completed script
// always sends the next request of that client for that binary to the
// binary, and a client that never completed a binary never gets the script
// for it.
func FuzzLoopBreaker(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 1, 5, 3, 1, 0, 0, 1, 9})
	f.Add(bytes.Repeat([]byte{1, 0xff, 1, 1, 0xfe, 1}, 40))
	f.Fuzz(func(t *testing.T, ev []byte) {
		const max = 8
		l := NewLoopBreaker(20*time.Second, max)
		now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
		type key struct {
			ip   netip.Addr
			file string
		}
		everLoaded := map[key]bool{}
		for i := 0; i+2 < len(ev); i += 3 {
			kind, who, dt := ev[i]%5, ev[i+1], ev[i+2]
			ip := netip.AddrFrom4([4]byte{198, 51, 100, who % 16})
			file := fuzzNames[int(who>>4)%len(fuzzNames)]
			now = now.Add(time.Duration(dt) * time.Second)
			switch kind {
			case 0:
				if l.Decide(ip, file, now) == ServeScript && !everLoaded[key{ip, file}] {
					t.Fatalf("event %d: script for %v asking for %s, which it never completed", i/3, ip, file)
				}
			case 1:
				l.Completed(ip, file, ServeBinary, true, now)
				everLoaded[key{ip, file}] = true
			case 2:
				l.Completed(ip, file, ServeBinary, false, now)
			case 3:
				l.Completed(ip, file, ServeScript, true, now)
				if l.Decide(ip, file, now) != ServeBinary {
					t.Fatalf("event %d: script again right after a completed script", i/3)
				}
			case 4:
				l.Completed(ip, file, ServeScript, false, now)
			}
			if l.Len() > max {
				t.Fatalf("table holds %d > %d", l.Len(), max)
			}
		}
	})
}
