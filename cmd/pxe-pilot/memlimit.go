package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryLimit applies PXE_MEMORY_LIMIT (default 16 MiB), unless GOMEMLIMIT
// is set (the Go runtime has applied that one already), as a soft limit on
// the Go runtime's memory: Base plus PerNode bytes for every node the store
// holds, but never less than the live heap plus a half (plus what the
// runtime holds besides the heap: stacks, metadata). Recomputed every Every
// (the fleet's size every nodesEvery). With the limit it sets the
// collector's pace to GOGC=25 (a collection when the heap has grown a
// quarter past the live heap), unless GOGC is set.
//
// Why these parts (measured: docs/performance-notes.md, Memory and "The
// collector's pace instead of the limit"):
//   - Without a limit the collector's target is twice the live heap, and
//     Badger's flushes and compactions make the live heap jump by 20-30 MB
//     for a moment (table builders it pools, a 3 MiB index buffer per table
//     built): 10,000 nodes reached 95-100 MB of RSS. The limit holds a
//     quiet appliance to its budget.
//   - A fixed limit below the live heap makes the collector run without
//     pause (a boot storm lost two thirds of its throughput that way), hence
//     the floor, which follows the live heap back down when a burst is
//     over.
//   - In a boot storm the floor is what binds, and a binding limit costs
//     more than the collections: the runtime keeps its memory under the
//     limit by returning free pages to the kernel (madvise) as it
//     allocates, and faulting them back in right after (10 % of the CPU in
//     a storm's profile). So the pace, not the limit, starts a storm's
//     collections: GOGC=25 collects as often as a limit a quarter above the
//     live heap did, and the floor, a half above it, stays out of the way.
//     Measured with bench/boot/run.sh, alternating with the floor a quarter
//     above the live heap and the default pace (GOGC=100): 26-52 % more
//     boots a second, for about 15 MiB more at the storm's peak. The
//     memory goals are kept (bench/memory.sh: 10,000 nodes 43-45 MiB
//     against 37-40 before, 100,000 nodes 103 MiB against 92).
//
// The live heap grows with the fleet (the acknowledgement journal's index,
// Badger's bloom filters and table indexes), hence the per-node share.
type memoryLimit struct {
	Base, PerNode int64
	Every         time.Duration
	Nodes         func() int
	Log           *slog.Logger

	samples []metrics.Sample
}

// Runtime metrics the floor reads: the live heap at the end of the last
// collection, and what the runtime maps besides the heap.
const (
	metricLive     = "/gc/heap/live:bytes"
	metricTotal    = "/memory/classes/total:bytes"
	metricObjects  = "/memory/classes/heap/objects:bytes"
	metricUnused   = "/memory/classes/heap/unused:bytes"
	metricFree     = "/memory/classes/heap/free:bytes"
	metricReleased = "/memory/classes/heap/released:bytes"
)

// gcPercent is the collector's pace while the limit applies (see
// memoryLimit).
const gcPercent = 25

// limit is max(Base + PerNode*nodes, live + live/2 + other), where other
// is the runtime's memory outside the heap.
func (m *memoryLimit) limit(nodes int, live, other uint64) int64 {
	l := m.Base + m.PerNode*int64(nodes)
	floor := int64(live + live/2 + other)
	return max(l, floor)
}

// read returns the live heap and the runtime's non-heap memory.
func (m *memoryLimit) read() (live, other uint64) {
	if m.samples == nil {
		for _, n := range []string{metricLive, metricTotal, metricObjects, metricUnused, metricFree, metricReleased} {
			m.samples = append(m.samples, metrics.Sample{Name: n})
		}
	}
	metrics.Read(m.samples)
	v := func(i int) uint64 {
		if m.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return m.samples[i].Value.Uint64()
	}
	live = v(0)
	heap := v(2) + v(3) + v(4) + v(5)
	if total := v(1); total > heap {
		other = total - heap
	}
	return live, other
}

func (m *memoryLimit) Serve(ctx context.Context) error {
	if env := os.Getenv("GOMEMLIMIT"); env != "" || m.Base <= 0 {
		if env != "" {
			m.Log.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", env)
		}
		<-ctx.Done()
		return nil
	}
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	} else {
		m.Log.Info("collector's pace from GOGC", "GOGC", os.Getenv("GOGC"))
	}
	t := time.NewTicker(m.Every)
	defer t.Stop()
	// The fleet's size moves slowly, and counting may wait on the store
	// (on etcd, up to its timeout while the watch catches up): read it
	// every nodesEvery, the live heap on every tick.
	var nodes int
	var counted time.Time
	for {
		if now := time.Now(); now.Sub(counted) >= nodesEvery {
			nodes, counted = m.Nodes(), now
		}
		live, other := m.read()
		debug.SetMemoryLimit(m.limit(nodes, live, other))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// nodesEvery is how often Serve counts the fleet.
const nodesEvery = 30 * time.Second
