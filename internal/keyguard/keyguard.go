// Package keyguard slows down guessing of ADMIN_API_KEY, over the JSON API
// and the console's sign-in alike (one Guard serves both).
//
// Each client address (an IPv6 client's /64, which one host usually holds
// whole) may get the key wrong Burst times, then once every Every; a right
// key spends nothing. While an address has no try left, its requests are
// refused before its key is compared at all, so a guesser learns nothing
// more by sending faster. The defaults (DefaultTries, DefaultEvery: 10
// tries, then one every 10 s) leave an admin who mistyped room to retry and hold a guesser to
// 8,640 tries a day per address.
//
// The table is bounded (MaxClients): past it, the addresses that have all
// their tries back are forgotten first, then any.
package keyguard

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const (
	// MaxClients bounds the addresses a Guard remembers.
	MaxClients = 4096
	// DefaultTries and DefaultEvery are the appliance's policy.
	DefaultTries = 10
	DefaultEvery = 10 * time.Second
)

// Guard is safe for concurrent use. A nil *Guard limits nothing.
type Guard struct {
	burst int
	every time.Duration
	now   func() time.Time

	mu sync.Mutex
	m  map[netip.Addr]*rate.Limiter
}

// New gives each client burst tries, then one every every.
func New(burst int, every time.Duration) *Guard {
	return &Guard{burst: burst, every: every, now: time.Now, m: map[netip.Addr]*rate.Limiter{}}
}

// Policy is the Guard's tries and the time a try takes to come back, for
// the messages that refuse a client.
func (g *Guard) Policy() string {
	if g == nil {
		return "no limit"
	}
	return fmt.Sprintf("each address gets %d tries, then one every %s", g.burst, g.every)
}

// key is the address a client is counted under: an IPv6 address's /64,
// an IPv4 address as it is, and the zero Addr for text that is no address.
func key(client string) netip.Addr {
	a, err := netip.ParseAddr(client)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Check tries a key for client: when client has a try left, right
// compares the key (true: the key is right) and a wrong key spends the
// try. wait > 0 means client had none left and right was not called;
// exhausted reports a wrong key that was client's last try for now (the
// caller logs it once). The check, the compare and the spending are one
// step under the Guard's lock: separately, concurrent wrong keys all
// passed the check before any of them was spent (11 compared against 10
// tries in 6 of 40 runs of 16 parallel keys). right must be quick: it
// runs under the lock (a constant-time compare of two hashes).
func (g *Guard) Check(client string, right func() bool) (ok bool, wait time.Duration, exhausted bool) {
	if g == nil {
		return right(), 0, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if wait := g.waitLocked(client); wait > 0 {
		return false, wait, false
	}
	if right() {
		return true, 0, false
	}
	return false, 0, g.failedLocked(client)
}

// Wait is how long client must wait before it may try a key again; 0: it
// may try now.
func (g *Guard) Wait(client string) time.Duration {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waitLocked(client)
}

func (g *Guard) waitLocked(client string) time.Duration {
	l := g.m[key(client)]
	if l == nil {
		return 0
	}
	t := l.TokensAt(g.now())
	if t >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - t) * float64(g.every)))
}

// Seconds is a wait in whole seconds, rounded up, as Retry-After and the
// messages give it.
func Seconds(wait time.Duration) int { return int((wait + time.Second - 1) / time.Second) }

// Failed spends one of client's tries on a wrong key. It reports true when
// that was the client's last try for now (the caller logs it once).
func (g *Guard) Failed(client string) (exhausted bool) {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failedLocked(client)
}

func (g *Guard) failedLocked(client string) (exhausted bool) {
	k, now := key(client), g.now()
	l := g.m[k]
	if l == nil {
		if len(g.m) >= MaxClients {
			g.evictLocked(now)
		}
		l = rate.NewLimiter(rate.Every(g.every), g.burst)
		g.m[k] = l
	}
	l.AllowN(now, 1)
	return l.TokensAt(now) < 1
}

// evictLocked makes room: the clients with every try back first, and at
// least one client whatever its state.
func (g *Guard) evictLocked(now time.Time) {
	for k, l := range g.m {
		if l.TokensAt(now) >= float64(g.burst) {
			delete(g.m, k)
		}
	}
	for k := range g.m {
		if len(g.m) < MaxClients {
			break
		}
		delete(g.m, k)
	}
}

// Clients is how many addresses the Guard remembers (tests, metrics).
func (g *Guard) Clients() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
