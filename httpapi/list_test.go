package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// TestNodesPages: pages of a fleet, followed by cursor, hold every node
// once and in order; the plain GET /nodes (the seed's answer) streams the
// same nodes; filters apply to both; install tokens never show.
func TestNodesPages(t *testing.T) {
	e := newEnv(t, nil)
	const fleet = 2345
	for i := 0; i < fleet; i++ {
		m := store.MAC(fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff))
		_, _, err := e.st.RecordBoot(m, store.Sighting{Time: t0.Add(time.Duration(i) * time.Second), IP: "203.0.113.9"},
			func(n *store.Node) store.Event { return store.Event{Decision: "local"} })
		if err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, err := e.st.SetReinstall(m, true, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A node with an install running has a token; it must not leak.
	wantScript(t, e.boot("52:54:00:00:00:00", "efi"), http.StatusOK)

	var seen []store.MAC
	cursor, pages := "", 0
	for {
		w := e.do("GET", "/nodes?limit=1000&cursor="+cursor, "")
		wantCode(t, w, http.StatusOK)
		if strings.Contains(w.Body.String(), `"token"`) {
			t.Fatal("a page shows an install token")
		}
		p := jsonBody[struct {
			Nodes []store.Node
			Next  string
		}](t, w)
		for _, n := range p.Nodes {
			seen = append(seen, n.MAC)
		}
		pages++
		if p.Next == "" {
			break
		}
		cursor = p.Next
		if pages > 10 {
			t.Fatal("pages do not end")
		}
	}
	if len(seen) != fleet || pages != 3 {
		t.Fatalf("%d nodes in %d pages, want %d in 3", len(seen), pages, fleet)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] >= seen[i] {
			t.Fatalf("page order broken at %d: %s then %s", i, seen[i-1], seen[i])
		}
	}

	w := e.do("GET", "/nodes", "")
	wantCode(t, w, http.StatusOK)
	all := jsonBody[struct{ Nodes []store.Node }](t, w)
	if len(all.Nodes) != fleet || all.Nodes[fleet-1].MAC != seen[fleet-1] || strings.Contains(w.Body.String(), `"token"`) {
		t.Fatalf("plain GET /nodes: %d nodes", len(all.Nodes))
	}

	for _, tc := range []struct {
		q    string
		want int
	}{
		{"state=reinstall", 23}, {"state=installing", 1}, {"q=52:54:00:00:09", 0x929 - 0x900}, {"seen_since=2026-11-25T06:38:00Z", fleet - 2280},
		{"profile=-", fleet}, {"profile=x", 0}, {"label=rack", 0},
	} {
		w := e.do("GET", "/nodes?"+tc.q, "")
		wantCode(t, w, http.StatusOK)
		if got := len(jsonBody[struct{ Nodes []store.Node }](t, w).Nodes); got != tc.want {
			t.Errorf("GET /nodes?%s: %d nodes, want %d", tc.q, got, tc.want)
		}
	}
	wantJSONError(t, e.do("GET", "/nodes?state=gone", ""), http.StatusBadRequest, `state "gone"`)
	wantJSONError(t, e.do("GET", "/nodes?limit=0", ""), http.StatusBadRequest, "1 to 1000")
	wantJSONError(t, e.do("GET", "/nodes?cursor=zzz", ""), http.StatusBadRequest, "start again")
	wantJSONError(t, e.do("GET", "/nodes?seen_since=yesterday", ""), http.StatusBadRequest, "RFC 3339")
	w = e.do("GET", "/nodes?state=failed", "")
	if got := strings.TrimSpace(w.Body.String()); got != "{\n  \"nodes\": []\n}" {
		t.Errorf("empty stream = %q", got)
	}
}
