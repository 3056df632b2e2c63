// Package etcdtest starts a real etcd cluster inside a test process
// (go.etcd.io/etcd/server/v3/embed), every member on loopback ports, with
// short heartbeats and elections so failover tests finish in seconds.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is a running etcd cluster; its members stop in t.Cleanup.
type Cluster struct {
	Members []*Member
}

// Member is one etcd server of a Cluster.
type Member struct {
	Name      string
	ClientURL string
	mu        sync.Mutex
	e         *embed.Etcd // nil once stopped
}

// Start starts an n-member cluster and waits until it has a leader.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, nil)
}

// StartWith is Start with a hook that adjusts each member's configuration
// (TLS, for example) before it starts; a hook that changes the client
// URLs' scheme changes Member.ClientURL with them.
func StartWith(t testing.TB, n int, hook func(*embed.Config)) *Cluster {
	t.Helper()
	dir := t.TempDir()
	peers, clients := freePorts(t, n), freePorts(t, n)
	var initial []string
	for i := 0; i < n; i++ {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, peers[i]))
	}
	c := &Cluster{}
	cfgs := make([]*embed.Config, n)
	for i := 0; i < n; i++ {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peers[i])}
		client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clients[i])}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "pxe-pilot-test"
		cfg.ClusterState = embed.ClusterStateFlagNew
		// Short heartbeats and elections (etcd's defaults: 100 ms, 1 s):
		// a killed leader is replaced within about a second. Shorter
		// ones made a loaded 2-core machine under -race elect spuriously.
		cfg.TickMs, cfg.ElectionMs = 50, 1000
		// The tests kill members with Close, never the machine; no fsync
		// keeps a 2-core CI box fast.
		cfg.UnsafeNoFsync = true
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		if hook != nil {
			hook(cfg)
		}
		cfgs[i] = cfg
		c.Members = append(c.Members, &Member{Name: cfg.Name, ClientURL: cfg.AdvertiseClientUrls[0].String()})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := embed.StartEtcd(cfgs[i])
			if err != nil {
				errs[i] = err
				return
			}
			c.Members[i].e = e
			select {
			case <-e.Server.ReadyNotify():
			case <-time.After(30 * time.Second):
				errs[i] = fmt.Errorf("member %s not ready after 30 s", cfgs[i].Name)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(c.Stop)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("starting etcd: %v", err)
		}
	}
	if c.WaitLeader(10*time.Second) < 0 {
		t.Fatal("etcd cluster has no leader after 10 s")
	}
	return c
}

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Leader is the index of the running member that leads, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		m.mu.Lock()
		e := m.e
		m.mu.Unlock()
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// WaitLeader polls for a leader for at most d; -1 when none.
func (c *Cluster) WaitLeader(d time.Duration) int {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if l := c.Leader(); l >= 0 {
			return l
		}
	}
	return -1
}

// Stop stops the member (embed.Etcd.Close); it is safe to call twice.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Stop stops every member.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Add(1)
		go func() { defer wg.Done(); m.Stop() }()
	}
	wg.Wait()
}

// freePorts asks the kernel for n free loopback TCP ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
