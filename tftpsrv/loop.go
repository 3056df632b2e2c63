package tftpsrv

import (
	"net/netip"
	"sync"
	"time"
)

// DefaultLoopWindow is how long after a client IP completed a download of an
// iPXE binary a new request of an iPXE binary from that IP is taken for
// iPXE asking again (and answered with the boot script).
//
// The gap to cover is: end of the binary transfer → iPXE starts → link up →
// DHCP with the router → RRQ. iPXE waits for ProxyDHCP offers that never
// come, and up to ~16 s for an IPv6 router advertisement on an IPv4-only
// LAN; a switch port without portfast adds its own seconds. We measured
// 35 s with QEMU (TCG) + SeaBIOS + the e1000 iPXE ROM loading Debian's
// undionly.kpxe from a dnsmasq router. Two minutes leave room for slower
// machines. A longer window costs little: the entry ends as soon as the
// script has been served, so the machine's next boot gets the binary
// anyway; only a machine whose iPXE died right after loading and that is
// power-cycled within the window sees its PXE ROM get the script once.
const DefaultLoopWindow = 2 * time.Minute

// DefaultLoopEntries caps the table. An entry costs about 100 bytes and is
// only created by a completed binary download (tens of kilobytes sent), so
// 4096 entries are 400 kB at worst and a flood of spoofed IPs cannot grow it.
const DefaultLoopEntries = 4096

// Serve says what to send for a request of an iPXE binary.
type Serve int

const (
	ServeBinary Serve = iota // the iPXE binary asked for
	ServeScript              // boot.ipxe under the binary's name: the loop breaker
)

func (s Serve) String() string {
	if s == ServeScript {
		return "script"
	}
	return "binary"
}

// LoopBreaker is the router-only loop breaker's memory: which client IPs
// have just been handed an iPXE binary. It does no I/O and reads no clock;
// the caller passes the time, so tests can walk it through any sequence.
// It is safe for concurrent use.
//
// TFTP carries no MAC address, so the key is the client's IP together
// with the binary's name: the loop is iPXE asking for the very file it was
// loaded from (the router hands out one name). Another binary from the same
// IP inside the window (a BIOS and a UEFI machine taking turns on one
// address, or one machine switched from legacy to UEFI boot) is a first
// load, and gets the binary. The states of one (IP, binary):
//
//	(none) --binary transfer completed--> loaded(t)
//	loaded(t), request within window --> answer script (state unchanged)
//	loaded(t), script transfer completed --> (none)
//	loaded(t), window over --> (none)
//
// A failed binary transfer changes nothing: a firmware that retries after a
// timeout or abort must get the binary again, not a script its PXE ROM
// cannot run. A failed script transfer changes nothing either, so iPXE's
// retry of the script gets the script. A completed script ends the entry,
// so the machine's next real boot gets the binary whatever the window.
type LoopBreaker struct {
	window time.Duration
	max    int

	mu      sync.Mutex
	entries map[loopKey]time.Time // (IP, binary) -> when that transfer completed
}

// loopKey is one client IP and the binary it loaded. file is always a served
// name (the caller's table is fixed at start-up), so the key space is
// bounded by the IPs.
type loopKey struct {
	ip   netip.Addr
	file string
}

// NewLoopBreaker returns a LoopBreaker. window <= 0 means DefaultLoopWindow;
// maxEntries <= 0 means DefaultLoopEntries.
func NewLoopBreaker(window time.Duration, maxEntries int) *LoopBreaker {
	if window <= 0 {
		window = DefaultLoopWindow
	}
	if maxEntries <= 0 {
		maxEntries = DefaultLoopEntries
	}
	return &LoopBreaker{window: window, max: maxEntries, entries: map[loopKey]time.Time{}}
}

// Window returns the window in force.
func (l *LoopBreaker) Window() time.Duration { return l.window }

func canon(ip netip.Addr) netip.Addr { return ip.Unmap() }

// Decide is called when ip asks for the iPXE binary file at now.
func (l *LoopBreaker) Decide(ip netip.Addr, file string, now time.Time) Serve {
	k := loopKey{canon(ip), file}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.entries[k]
	if !ok {
		return ServeBinary
	}
	if l.expired(t, now) {
		delete(l.entries, k)
		return ServeBinary
	}
	return ServeScript
}

func (l *LoopBreaker) expired(t, now time.Time) bool {
	// A clock that went backwards (t after now) also ends the entry: better
	// one extra iPXE round than a script to a PXE ROM.
	return now.Sub(t) >= l.window || now.Before(t)
}

// Completed is called when a transfer to ip of a request for file, decided
// by Decide, has ended at now; ok says whether the client acknowledged the
// last block.
func (l *LoopBreaker) Completed(ip netip.Addr, file string, what Serve, ok bool, now time.Time) {
	if !ok {
		return
	}
	k := loopKey{canon(ip), file}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch what {
	case ServeScript:
		delete(l.entries, k)
	case ServeBinary:
		if _, exists := l.entries[k]; !exists && len(l.entries) >= l.max {
			l.makeRoom(now)
		}
		l.entries[k] = now
	}
}

// makeRoom drops expired entries, and if the table is still full the
// oldest one. O(n), but it only runs when a binary download completes with
// the table full.
func (l *LoopBreaker) makeRoom(now time.Time) {
	var oldestKey loopKey
	var oldest time.Time
	for k, t := range l.entries {
		if l.expired(t, now) {
			delete(l.entries, k)
			continue
		}
		if !oldestKey.ip.IsValid() || t.Before(oldest) {
			oldestKey, oldest = k, t
		}
	}
	if len(l.entries) >= l.max && oldestKey.ip.IsValid() {
		delete(l.entries, oldestKey)
	}
}

// Len returns the number of (IP, binary) pairs remembered (expired ones included until
// they are looked at or pushed out).
func (l *LoopBreaker) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
