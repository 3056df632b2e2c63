package tftpsrv

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// step is one event in a loop breaker scenario: a request (want says what
// must be served) or the end of a transfer.
type step struct {
	at   time.Duration // since the start of the scenario
	ip   string
	file string // the binary asked for; "" is undionly.kpxe
	op   string // "req" or "done"
	what Serve  // for done: what the transfer carried
	ok   bool   // for done: completed (true) or failed
	want Serve  // for req
}

func req(at time.Duration, ip string, want Serve) step {
	return step{at: at, ip: ip, op: "req", want: want}
}
func done(at time.Duration, ip string, what Serve, ok bool) step {
	return step{at: at, ip: ip, op: "done", what: what, ok: ok}
}

// of sets the binary a step is about.
func (s step) of(file string) step { s.file = file; return s }

const (
	A    = "203.0.113.21"
	B    = "203.0.113.22"
	sec  = time.Second
	kpxe = "undionly.kpxe"
	efi  = "ipxe.efi"
	snp  = "snponly.efi"
)

func TestLoopBreakerScenarios(t *testing.T) {
	cases := []struct {
		name   string
		window time.Duration
		steps  []step
	}{
		{"first fetch gets the binary", 60 * sec, []step{
			req(0, A, ServeBinary),
		}},
		{"iPXE asking again gets the script", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(6*sec, A, ServeScript),
		}},
		{"PXE ROM retrying after a failed binary transfer gets the binary", 60 * sec, []step{
			req(0, A, ServeBinary), done(5*sec, A, ServeBinary, false),
			req(6*sec, A, ServeBinary), done(7*sec, A, ServeBinary, false),
			req(8*sec, A, ServeBinary), done(9*sec, A, ServeBinary, true),
			req(14*sec, A, ServeScript),
		}},
		{"a failed script transfer is retried with the script", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(6*sec, A, ServeScript), done(12*sec, A, ServeScript, false),
			req(13*sec, A, ServeScript), done(13*sec, A, ServeScript, true),
		}},
		{"duplicate RRQ while the script is in flight gets the script too", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(6*sec, A, ServeScript), req(7*sec, A, ServeScript),
			done(7*sec, A, ServeScript, true), done(13*sec, A, ServeScript, false),
			req(40*sec, A, ServeBinary),
		}},
		{"next real reboot after the script gets the binary, even inside the window", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(6*sec, A, ServeScript), done(6*sec, A, ServeScript, true),
			req(20*sec, A, ServeBinary), done(21*sec, A, ServeBinary, true),
			req(26*sec, A, ServeScript),
		}},
		{"next boot after the window gets the binary", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(61*sec, A, ServeBinary),
		}},
		{"the window edge belongs to the next boot", 10 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(10*sec+999*time.Millisecond, A, ServeScript),
			req(11*sec, A, ServeBinary),
		}},
		{"two machines behind one IP over time", 60 * sec, []step{
			// Machine 1 loads iPXE, which then dies (never asks again).
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			// Hours later, machine 2 got the same lease.
			req(3*time.Hour, A, ServeBinary), done(3*time.Hour+sec, A, ServeBinary, true),
			req(3*time.Hour+6*sec, A, ServeScript), done(3*time.Hour+6*sec, A, ServeScript, true),
			// Machine 1 again, same IP, once machine 2 is through.
			req(4*time.Hour, A, ServeBinary),
		}},
		{"clients do not see each other's state", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(2*sec, B, ServeBinary), done(3*sec, B, ServeBinary, true),
			req(6*sec, A, ServeScript), done(6*sec, A, ServeScript, true),
			req(7*sec, B, ServeScript),
			req(8*sec, A, ServeBinary),
		}},
		{"another binary from the same IP is a first load (BIOS and UEFI machine on one address)", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(5*sec, A, ServeBinary).of(efi), done(6*sec, A, ServeBinary, true).of(efi),
			// Each machine's iPXE then asks again for its own file: both loops are broken.
			req(10*sec, A, ServeScript), done(10*sec, A, ServeScript, true),
			req(11*sec, A, ServeScript).of(efi), done(11*sec, A, ServeScript, true).of(efi),
			req(30*sec, A, ServeBinary), req(30*sec, A, ServeBinary).of(efi),
		}},
		{"a machine switched from legacy to UEFI boot inside the window gets the UEFI binary", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, A, ServeBinary, true),
			req(20*sec, A, ServeBinary).of(efi), done(21*sec, A, ServeBinary, true).of(efi),
			req(26*sec, A, ServeScript).of(efi),
		}},
		{"the same file again is the loop, whatever else the IP loaded", 60 * sec, []step{
			req(0, A, ServeBinary).of(efi), done(1*sec, A, ServeBinary, true).of(efi),
			req(2*sec, A, ServeBinary).of(snp), done(3*sec, A, ServeBinary, false).of(snp),
			req(6*sec, A, ServeScript).of(efi),
			req(7*sec, A, ServeBinary).of(snp),
		}},
		{"IPv4-mapped IPv6 is the same client", 60 * sec, []step{
			req(0, A, ServeBinary), done(1*sec, "::ffff:"+A, ServeBinary, true),
			req(6*sec, A, ServeScript),
		}},
		{"a clock that steps back ends the entry", 60 * sec, []step{
			req(10*sec, A, ServeBinary), done(11*sec, A, ServeBinary, true),
			req(5*sec, A, ServeBinary),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLoopBreaker(c.window, 0)
			t0 := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
			for i, st := range c.steps {
				ip := netip.MustParseAddr(st.ip)
				now := t0.Add(st.at)
				file := st.file
				if file == "" {
					file = kpxe
				}
				switch st.op {
				case "req":
					if got := l.Decide(ip, file, now); got != st.want {
						t.Fatalf("step %d (%s asks for %s at %v): got %v, want %v", i, st.ip, file, st.at, got, st.want)
					}
				case "done":
					l.Completed(ip, file, st.what, st.ok, now)
				}
			}
		})
	}
}

func TestLoopBreakerDefaults(t *testing.T) {
	l := NewLoopBreaker(0, 0)
	if l.Window() != DefaultLoopWindow || l.max != DefaultLoopEntries {
		t.Fatalf("defaults: %v %d", l.Window(), l.max)
	}
}

func TestLoopBreakerMemoryIsBounded(t *testing.T) {
	const max = 64
	l := NewLoopBreaker(time.Minute, max)
	t0 := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	// A flood of distinct IPs, all completing binaries within the window:
	// the table never grows past its cap, and the newest entries survive.
	for i := 0; i < 10000; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		now := t0.Add(time.Duration(i) * time.Millisecond)
		l.Completed(ip, kpxe, ServeBinary, true, now)
		if l.Len() > max {
			t.Fatalf("after %d IPs the table holds %d > %d", i+1, l.Len(), max)
		}
	}
	last := netip.AddrFrom4([4]byte{198, 51, byte(9999 >> 8), byte(9999 & 0xff)})
	if got := l.Decide(last, kpxe, t0.Add(10*time.Second)); got != ServeScript {
		t.Fatalf("newest entry was evicted")
	}
	first := netip.AddrFrom4([4]byte{198, 51, 0, 0})
	if got := l.Decide(first, kpxe, t0.Add(10*time.Second)); got != ServeBinary {
		t.Fatalf("oldest entry survived a full table")
	}
	// Expired entries are swept before anything still live is evicted.
	l = NewLoopBreaker(time.Minute, 3)
	l.Completed(netip.MustParseAddr(A), kpxe, ServeBinary, true, t0)
	l.Completed(netip.MustParseAddr(B), kpxe, ServeBinary, true, t0.Add(50*sec))
	l.Completed(netip.MustParseAddr("203.0.113.23"), kpxe, ServeBinary, true, t0.Add(55*sec))
	l.Completed(netip.MustParseAddr("203.0.113.24"), kpxe, ServeBinary, true, t0.Add(70*sec))
	if l.Len() != 3 {
		t.Fatalf("len %d", l.Len())
	}
	if got := l.Decide(netip.MustParseAddr(B), kpxe, t0.Add(71*sec)); got != ServeScript {
		t.Fatalf("a live entry was evicted while an expired one could go")
	}
}

func ExampleLoopBreaker() {
	l := NewLoopBreaker(time.Minute, 0)
	pc := netip.MustParseAddr("203.0.113.21")
	t0 := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

	fmt.Println(l.Decide(pc, kpxe, t0)) // the PXE ROM asks for undionly.kpxe
	l.Completed(pc, kpxe, ServeBinary, true, t0.Add(time.Second))
	fmt.Println(l.Decide(pc, kpxe, t0.Add(6*time.Second))) // iPXE asks for the same name
	l.Completed(pc, kpxe, ServeScript, true, t0.Add(6*time.Second))
	fmt.Println(l.Decide(pc, kpxe, t0.Add(30*time.Second))) // the next boot
	// Output:
	// binary
	// script
	// binary
}
