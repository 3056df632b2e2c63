package etcdstore_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/internal/etcdtest"
	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
	"github.com/pxe-pilot/pxe-pilot/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// open connects a client to the cluster under prefix; it closes in
// t.Cleanup.
func open(t testing.TB, endpoints []string, prefix string) *etcdstore.Store {
	t.Helper()
	st, err := etcdstore.Open(etcdstore.Options{Endpoints: endpoints, Prefix: prefix, History: storetest.History,
		Timeout: 30 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatalf("etcdstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestConformance runs the shared Backend suite against a 3-member etcd
// cluster; each test gets its own prefix, so it starts empty.
func TestConformance(t *testing.T) {
	c := startCluster(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		return open(t, c.Endpoints(), "/conformance/"+strings.ReplaceAll(t.Name(), "/", "_")+"/")
	})
}

// startCluster starts a 3-member etcd cluster on loopback ports; it stops
// in t.Cleanup.
func startCluster(t testing.TB) *etcdtest.Cluster {
	start := time.Now()
	c := etcdtest.Start(t, 3)
	t.Logf("3-member etcd cluster up in %s", time.Since(start).Round(time.Millisecond))
	return c
}

func newProxy(t testing.TB, target string) *etcdtest.Proxy { return etcdtest.NewProxy(t, target) }
