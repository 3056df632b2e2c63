package console

import (
	"fmt"
	"sync"
	"time"
)

// activity counts boots per minute over a fixed window (a ring buffer fed
// from the change feed), for the appliance page's chart. It starts empty
// at every start of the appliance.
type activity struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets []uint32 // per minute; index = minute % len
	minute  []int64  // the minute (Unix/60) each bucket holds
	dropped int      // times the feed lagged (boots may be missing)
}

func newActivity(minutes int, now func() time.Time) *activity {
	return &activity{now: now, buckets: make([]uint32, minutes), minute: make([]int64, minutes)}
}

func (a *activity) add(t time.Time) {
	if t.IsZero() {
		t = a.now()
	}
	m := t.Unix() / 60
	a.mu.Lock()
	defer a.mu.Unlock()
	i := int(m % int64(len(a.buckets)))
	if a.minute[i] != m {
		if a.minute[i] > m { // older than the window
			return
		}
		a.minute[i], a.buckets[i] = m, 0
	}
	a.buckets[i]++
}

func (a *activity) lost() {
	a.mu.Lock()
	a.dropped++
	a.mu.Unlock()
}

// series returns the counts of the last n minutes, oldest first, summed
// into bars of per minutes each.
func (a *activity) series(per int) ([]uint32, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.buckets)
	now := a.now().Unix() / 60
	out := make([]uint32, (n+per-1)/per)
	for k := 0; k < n; k++ {
		m := now - int64(n-1-k)
		i := int(((m % int64(n)) + int64(n)) % int64(n))
		if a.minute[i] == m {
			out[k/per] += a.buckets[i]
		}
	}
	return out, a.dropped
}

// chart is the boot-activity chart, drawn server-side as SVG shapes.
type chart struct {
	W, H   int
	Bars   []bar
	Max    uint32
	Total  uint32
	Hours  int
	Per    int
	Ticks  []tick
	Lagged int
	Base   int // y of the axis
}

type bar struct {
	X, Y, W, H int
	Label      string
}

type tick struct {
	X      int
	Label  string
	Anchor string // SVG text-anchor: start, middle or end
}

func (a *activity) chart() chart {
	const per = 5
	s, lagged := a.series(per)
	c := chart{W: 720, H: 164, Per: per, Hours: len(a.buckets) / 60, Lagged: lagged, Base: 140}
	for _, v := range s {
		c.Total += v
		c.Max = max(c.Max, v)
	}
	scale := max(c.Max, 1)
	bw := c.W / len(s)
	now := a.now()
	for i, v := range s {
		h := int(v) * (c.Base - 10) / int(scale)
		if v > 0 && h < 2 {
			h = 2
		}
		end := now.Add(-time.Duration((len(s)-1-i)*per) * time.Minute)
		c.Bars = append(c.Bars, bar{X: i * bw, Y: c.Base - h, W: bw - 1, H: h,
			Label: fmt.Sprintf("%d boots in the %d minutes to %s", v, per, end.UTC().Format("15:04Z"))})
	}
	for hr := 0; hr <= c.Hours; hr++ {
		x := len(s)*bw - hr*60/per*bw
		t := tick{X: x, Label: fmt.Sprintf("−%dh", hr), Anchor: "middle"}
		switch {
		case hr == 0:
			t.Label, t.Anchor = "now", "end"
		case x <= 0:
			t.X, t.Anchor = 0, "start"
		}
		c.Ticks = append(c.Ticks, t)
	}
	return c
}
