package keyguard

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func fakeClock(g *Guard) *time.Time {
	t := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	g.now = func() time.Time { return t }
	return &t
}

func TestBurstThenOneEvery(t *testing.T) {
	g := New(10, 10*time.Second)
	now := fakeClock(g)
	const c = "203.0.113.7"
	for i := 1; i <= 10; i++ {
		if w := g.Wait(c); w != 0 {
			t.Fatalf("try %d: wait %s, want none", i, w)
		}
		if got := g.Failed(c); got != (i == 10) {
			t.Fatalf("try %d: exhausted = %v", i, got)
		}
	}
	if w := g.Wait(c); w != 10*time.Second {
		t.Fatalf("after 10 wrong keys: wait %s, want 10s", w)
	}
	if w := g.Wait("203.0.113.8"); w != 0 {
		t.Fatalf("another address waits %s", w)
	}
	*now = now.Add(4 * time.Second)
	if w := g.Wait(c); w != 6*time.Second {
		t.Fatalf("4 s later: wait %s, want 6s", w)
	}
	*now = now.Add(6 * time.Second)
	if w := g.Wait(c); w != 0 {
		t.Fatalf("10 s later: wait %s, want none", w)
	}
	if !g.Failed(c) {
		t.Fatal("the one try regained was not the last")
	}
	if w := g.Wait(c); w != 10*time.Second {
		t.Fatalf("after the regained try: wait %s, want 10s", w)
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{time.Nanosecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 10 * time.Second: 10} {
		if got := Seconds(d); got != want {
			t.Errorf("Seconds(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestAddressesCountedTogether(t *testing.T) {
	g := New(2, time.Minute)
	fakeClock(g)
	g.Failed("2001:db8:1:2::1")
	g.Failed("2001:db8:1:2:ffff::9") // same /64
	if w := g.Wait("2001:db8:1:2::77"); w == 0 {
		t.Error("one /64 is one client: its third address may still try")
	}
	if w := g.Wait("2001:db8:1:3::1"); w != 0 {
		t.Errorf("another /64 waits %s", w)
	}
	g.Failed("::ffff:203.0.113.9")
	g.Failed("203.0.113.9")
	if w := g.Wait("203.0.113.9"); w == 0 {
		t.Error("an IPv4-mapped address is the IPv4 address")
	}
	g.Failed("")
	g.Failed("not an address")
	if w := g.Wait("garbage"); w == 0 {
		t.Error("requests without a readable address share one count")
	}
}

func TestBounded(t *testing.T) {
	g := New(3, time.Second)
	now := fakeClock(g)
	const limited = "198.51.100.1"
	for i := range MaxClients - 1 {
		g.Failed(fmt.Sprintf("10.%d.%d.1", i/256, i%256))
	}
	*now = now.Add(10 * time.Second) // every one of them has its tries back
	for range 3 {
		g.Failed(limited) // and this one is out of them
	}
	for i := range 100 {
		g.Failed(fmt.Sprintf("172.16.%d.1", i))
	}
	// The first new client made room by forgetting every client that had
	// all its tries back: the limited one and the 100 new ones are left.
	if n := g.Clients(); n != 101 {
		t.Fatalf("%d clients remembered, want 101 (bound %d)", n, MaxClients)
	}
	if g.Wait(limited) == 0 {
		t.Fatal("a client out of tries was forgotten while others had theirs back")
	}
	var none *Guard
	if none.Wait("203.0.113.1") != 0 || none.Failed("203.0.113.1") {
		t.Fatal("a nil Guard limits")
	}
}

// TestCheckIsOneStep: concurrent wrong keys from one address are compared
// exactly as many times as it has tries (a separate Wait and Failed let
// every request that checked before the first was spent through: 11
// compared against 10 tries in 6 of 40 runs); a right key spends nothing.
func TestCheckIsOneStep(t *testing.T) {
	g := New(10, 10*time.Second)
	fakeClock(g) // no try comes back during the test
	if ok, wait, _ := g.Check("203.0.113.7", func() bool { return true }); !ok || wait != 0 {
		t.Fatalf("a right key: ok %t, wait %s", ok, wait)
	}
	var compared, limited, exhausted atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, wait, last := g.Check("203.0.113.7", func() bool { compared.Add(1); return false })
			switch {
			case ok:
				t.Error("a wrong key was taken")
			case wait > 0:
				limited.Add(1)
			case last:
				exhausted.Add(1)
			}
		}()
	}
	wg.Wait()
	if compared.Load() != 10 || limited.Load() != 54 || exhausted.Load() != 1 {
		t.Fatalf("64 parallel wrong keys against 10 tries: %d compared, %d limited, %d reported the last try",
			compared.Load(), limited.Load(), exhausted.Load())
	}
	if ok, wait, _ := g.Check("203.0.113.7", func() bool { t.Error("compared while out of tries"); return true }); ok || wait != 10*time.Second {
		t.Fatalf("a right key while out of tries: ok %t, wait %s; want 429 without a compare", ok, wait)
	}
}
