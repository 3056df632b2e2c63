package console

import (
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// FuzzFleetFilter: whatever a browser puts in the fleet view's query
// string, the filter either maps onto store.Filter or names the field at
// fault; and the query links the page makes read back as the same filter.
func FuzzFleetFilter(f *testing.F) {
	f.Add("web", "failed", "debian", "rack=r1", "24h", "52:54:00:00:00:01")
	f.Add("", "", "-", "rack", "", "")
	f.Add("%zz", "Failed", "", "a b", "-1h", "not-a-mac")
	f.Add("\x00", "reinstall", "x", "k=v=w", "1e9h", "5254.0012.3456")
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, q, state, profile, label, since, after string) {
		fq := fleetQuery{Q: q, State: state, Profile: profile, Label: label, Since: since, After: after}
		flt, cursor, err := fq.filter(now)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "state") && !strings.Contains(msg, "label") && !strings.Contains(msg, "seen since") && !strings.Contains(msg, "page cursor") {
				t.Fatalf("error %q names no field", msg)
			}
			return
		}
		if flt.State != "" && flt.State != store.State(state) {
			t.Fatalf("state %q became %q", state, flt.State)
		}
		if after != "" && cursor == "" {
			t.Fatalf("cursor %q lost", after)
		}
		back := parseFleetQuery(fq.values())
		trim := func(s string) string { return strings.TrimSpace(s) }
		if back.Q != trim(q) || back.State != trim(state) || back.Profile != trim(profile) || back.Label != trim(label) || back.Since != trim(since) {
			t.Fatalf("query links do not read back: %+v from %+v", back, fq)
		}
	})
}
