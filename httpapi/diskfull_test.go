package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// A store whose file system is "full" (a reserve no disk can meet) refuses
// every write: admin writes answer 507 naming the database and the fix,
// /boot serves a fall-through script, /health says why it is unhealthy, and
// nothing was changed.
func TestDiskFullAnswers(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/nodes/52:54:00:00:00:0f/reinstall", "") // accepted while there is room
	e.st.Close()
	dir := t.TempDir()
	full, err := store.Open(dir, store.Options{Logger: quiet, MinFree: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	e.cfg.Store = full
	h, err := NewHandler(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h

	w := e.do("POST", "/nodes/52:54:00:00:00:10/reinstall", "")
	msg := wantJSONError(t, w, http.StatusInsufficientStorage, "database at "+dir, "free", "nothing was changed")
	if !strings.Contains(msg, store.ErrDiskFull.Error()) {
		t.Fatalf("507 body does not say the disk is full: %s", msg)
	}
	if _, err := full.Get(mustMAC(t, "52:54:00:00:00:10")); err == nil {
		t.Fatal("refused write created the node anyway")
	}

	script := wantScript(t, e.boot("52:54:00:00:00:10", "pcbios"), http.StatusInternalServerError)
	if !strings.Contains(script, "exit 1") {
		t.Fatalf("boot on a full disk must fall through:\n%s", script)
	}
	if got := testutil.ToFloat64(e.m.BootRequests.WithLabelValues("error")); got != 1 {
		t.Fatalf("boot_requests_total{decision=error} = %v, want 1", got)
	}

	w = e.do("GET", "/health", "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "free") {
		t.Fatalf("/health on a full disk: %d %s", w.Code, w.Body)
	}
}
