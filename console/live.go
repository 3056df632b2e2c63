package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// Live updates: GET /ui/events is a Server-Sent Events stream, one store
// subscription per browser. The store's feed never blocks a writer: when
// this browser reads too slowly its subscription lags, and the stream
// says "resync" (the page reloads itself) instead of slowing /boot.
//
// Events:
//
//	row     {"mac", "html"}  a fleet row to insert or replace
//	remove  {"mac"}          a row that left the view (forgotten, filtered out)
//	counts  {"<state>": n, "total": n}
//	status  {"html"}         the node page's status block
//	event   {"html"}         a node page timeline entry
//	resync                   changes were missed: read the page again
//	busy                     too many live browsers; retry later
//
// A comment line every Heartbeat keeps proxies from closing the stream;
// EventSource reconnects by itself when it breaks ("retry" says when).

// liveWriteTimeout bounds one write to a browser; a stuck one ends the stream.
const liveWriteTimeout = 10 * time.Second

func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	select {
	case c.live <- struct{}{}:
		defer func() { <-c.live }()
	default:
		c.metrics.liveBusy.Inc()
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "retry: 30000\nevent: busy\ndata: {}\n\n")
		return
	}
	var (
		nodeMAC   store.MAC
		filter    store.Filter
		after     store.MAC
		next      store.MAC
		fleetView = true
	)
	qv := r.URL.Query()
	if raw := qv.Get("node"); raw != "" {
		m, err := store.ParseMAC(raw)
		if err != nil {
			http.Error(w, "node: "+err.Error(), http.StatusBadRequest)
			return
		}
		nodeMAC, fleetView = m, false
	} else {
		q := parseFleetQuery(qv)
		var err error
		if filter, after, err = q.filter(c.now()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if raw := qv.Get("next"); raw != "" {
			if next, err = store.ParseMAC(raw); err != nil {
				http.Error(w, "next: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
	}
	// The server's ReadTimeout would end the stream (net/http cancels the
	// request when its background read times out).
	rc.SetReadDeadline(time.Time{})
	sub := c.cfg.Store.Subscribe(256)
	defer sub.Close()
	c.metrics.live.Inc()
	defer c.metrics.live.Dec()

	send := func(event string, v any) bool {
		data, _ := json.Marshal(v)
		rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
	fmt.Fprint(w, "retry: 3000\n: live\n\n")
	if rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(c.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-beat.C:
			rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
			if _, err := fmt.Fprint(w, ": beat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case ch, ok := <-sub.C:
			if !ok {
				return // the store is closing
			}
			// Take what else is waiting, so a burst of boots costs one
			// counts event, not one per boot.
			batch := append(make([]store.Change, 0, 16), ch)
		drain:
			for len(batch) < 256 {
				select {
				case more, ok := <-sub.C:
					if !ok {
						break drain
					}
					batch = append(batch, more)
				default:
					break drain
				}
			}
			if sub.Lagged() {
				c.metrics.resyncs.Inc()
				if !send("resync", struct{}{}) {
					return
				}
				continue
			}
			for _, ch := range batch {
				var sent bool
				if fleetView {
					sent = c.sendRow(send, ch, filter, after, next)
				} else {
					sent = c.sendNode(send, ch, nodeMAC)
				}
				if !sent {
					return
				}
			}
			if fleetView && !c.sendCounts(send) {
				return
			}
		}
	}
}

// sendCounts tells a fleet page the number of nodes per state.
func (c *Console) sendCounts(send func(string, any) bool) bool {
	cnt, err := c.cfg.Store.CountByState()
	if err != nil {
		return true
	}
	out := map[string]int{}
	total := 0
	for _, s := range store.States {
		out[string(s)] = cnt[s]
		total += cnt[s]
	}
	out["total"] = total
	return send("counts", out)
}

// sendRow tells a fleet page about one change if it belongs on this page
// (inside the page's MAC range and the filter).
func (c *Console) sendRow(send func(string, any) bool, ch store.Change, f store.Filter, after, next store.MAC) bool {
	inRange := ch.MAC > after && (next == "" || ch.MAC <= next)
	if !inRange {
		return true
	}
	if ch.Node == nil || !f.Match(ch.Node) {
		return send("remove", map[string]string{"mac": string(ch.MAC)})
	}
	html, err := c.renderPart("row", makeRow(ch.Node.Public(), c.profileSet(), c.now()))
	if err != nil {
		c.log.Error("console: rendering a live row failed", "mac", ch.MAC, "err", err)
		return true
	}
	return send("row", map[string]string{"mac": string(ch.MAC), "html": html})
}

// sendNode tells a node page about a change of its node.
func (c *Console) sendNode(send func(string, any) bool, ch store.Change, m store.MAC) bool {
	if ch.MAC != m {
		return true
	}
	if ch.Node == nil {
		return send("resync", struct{}{})
	}
	html, err := c.renderPart("status", c.status(*ch.Node, c.now()))
	if err == nil && !send("status", map[string]string{"html": html}) {
		return false
	}
	if ch.Event != nil {
		ev := *ch.Event
		if ev.Time.IsZero() {
			ev.Time = c.now()
		}
		if html, err = c.renderPart("event", makeEvent(ev)); err == nil {
			return send("event", map[string]string{"html": html})
		}
	}
	if err != nil {
		c.log.Error("console: rendering a live update failed", "mac", m, "err", err)
	}
	return true
}
