package etcdstore_test

// Several appliances on one etcd cluster: each test runs three (or two)
// full HTTP APIs (httpapi.NewHandler on httptest servers), each with its
// own etcd client, against a real 3-member cluster in this process.

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/httpapi"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/store/etcdstore"
)

var bootCfg = httpapi.BootConfig{
	KernelURL:      "http://198.51.100.10/ubuntu/vmlinuz",
	InitrdURL:      "http://198.51.100.10/ubuntu/initrd",
	AutoinstallURL: "http://198.51.100.10/autoinstall/",
}

// appliance is one PXE Pilot HTTP API over its own etcd client.
type appliance struct {
	st  *etcdstore.Store
	url string
}

func newAppliance(t testing.TB, endpoints []string, prefix string, timeout time.Duration) appliance {
	t.Helper()
	st, err := etcdstore.Open(etcdstore.Options{Endpoints: endpoints, Prefix: prefix, Timeout: timeout, Logger: quiet})
	if err != nil {
		t.Fatalf("etcdstore.Open: %v", err)
	}
	h, err := httpapi.NewHandler(httpapi.Config{BaseURL: "http://198.51.100.1:8000", Boot: bootCfg, Store: st,
		Metrics: metrics.New("test"), Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		t.Fatalf("httpapi.NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); st.Close() })
	return appliance{st: st, url: srv.URL}
}

// testLog shows the API's error lines in the test's output.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var client = &http.Client{Timeout: slow * 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// outcome of one GET /boot.
type outcome int

const (
	installer outcome = iota // the installer script (the flag was consumed)
	local                    // a local-boot script
	fallback                 // the error script: the machine boots its disk
	failed                   // no answer at all
)

func bootOnce(a appliance, m store.MAC) outcome {
	resp, err := client.Get(a.url + "/boot?mac=" + string(m) + "&platform=pcbios")
	if err != nil {
		return failed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusOK && strings.Contains(string(body), "\nkernel "):
		return installer
	case resp.StatusCode == http.StatusOK:
		return local
	case strings.HasPrefix(string(body), "#!ipxe") && strings.Contains(string(body), "exit 1"):
		return fallback
	}
	return failed
}

func post(a appliance, path string) int {
	resp, err := client.Post(a.url+path, "application/json", nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func health(a appliance) int {
	resp, err := client.Get(a.url + "/health")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealthy polls every appliance's /health until all say 200, for at
// most d; it returns how long that took, or d and false.
func waitHealthy(apps []appliance, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		ok := true
		for _, a := range apps {
			if health(a) != http.StatusOK {
				ok = false
				break
			}
		}
		if ok {
			return time.Since(start), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, false
}

// TestOneInstallAcrossAppliances: 200 concurrent boots of one machine
// marked for reinstall, spread over three appliances, serve exactly one
// installer.
func TestOneInstallAcrossAppliances(t *testing.T) {
	c := startCluster(t)
	var apps []appliance
	for i := 0; i < 3; i++ {
		// 200 boots of one machine queue behind each other in each
		// appliance: give the last one time (the race detector slows the
		// in-process etcd members some tenfold).
		apps = append(apps, newAppliance(t, c.Endpoints(), "/oneshot/", slow*15*time.Second))
	}
	m := store.MAC("52:54:00:aa:00:01")
	if code := post(apps[1], "/nodes/"+string(m)+"/reinstall"); code != http.StatusOK {
		t.Fatalf("POST reinstall: %d", code)
	}
	const boots = 200
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[outcome]int{}
	)
	start := time.Now()
	for i := 0; i < boots; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := bootOnce(apps[i%3], m)
			mu.Lock()
			got[o]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d boots over 3 appliances in %s: %d installer, %d local, %d fell back, %d failed",
		boots, time.Since(start).Round(time.Millisecond), got[installer], got[local], got[fallback], got[failed])
	if got[installer] != 1 {
		t.Errorf("%d installer scripts served, want exactly 1", got[installer])
	}
	// Safety always; liveness (every boot answered in time) only where
	// the machine is not slowed tenfold by the race detector: there the
	// boots that waited too long fell back to the disk, which is safe.
	if got[fallback]+got[failed] != 0 && slow == 1 {
		t.Errorf("%d boots fell back or failed with a healthy cluster", got[fallback]+got[failed])
	}
	n, err := apps[2].st.Get(m)
	if err != nil || n.InstallCount != 1 || n.State != store.StateInstalling {
		t.Errorf("node after the storm: state %s, installs %d (%v); want installing, 1", n.State, n.InstallCount, err)
	}
	if slow == 1 && n.BootCount != boots {
		t.Errorf("node after the storm: %d boots recorded, want %d", n.BootCount, boots)
	}
	for i, a := range apps { // every appliance counts the same, from its watch
		counts, err := a.st.CountByState()
		if err != nil || counts[store.StateInstalling] != 1 {
			t.Errorf("appliance %d counts %v (%v), want installing:1", i, counts, err)
		}
	}
}

// TestApplianceCutOff: an appliance that cannot reach etcd serves the
// error script (the machine boots its disk), leaves the flag alone,
// answers /health 503, and recovers on its own when etcd is back.
func TestApplianceCutOff(t *testing.T) {
	c := startCluster(t)
	proxy := newProxy(t, strings.TrimPrefix(c.Members[0].ClientURL, "http://"))
	cut := newAppliance(t, []string{"http://" + proxy.Addr}, "/cutoff/", 2*time.Second)
	other := newAppliance(t, c.Endpoints(), "/cutoff/", 2*time.Second)
	m := store.MAC("52:54:00:bb:00:01")
	if code := post(other, "/nodes/"+string(m)+"/reinstall"); code != http.StatusOK {
		t.Fatalf("POST reinstall: %d", code)
	}
	if code := health(cut); code != http.StatusOK {
		t.Fatalf("/health before the cut: %d", code)
	}

	proxy.Cut()
	start := time.Now()
	if o := bootOnce(cut, m); o != fallback {
		t.Errorf("boot on the cut-off appliance: outcome %d, want the error script (fall through to the disk)", o)
	}
	took := time.Since(start)
	t.Logf("cut-off appliance answered /boot with the error script in %s", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("/boot on the cut-off appliance took %s; it must fail fast", took)
	}
	if code := health(cut); code != http.StatusServiceUnavailable {
		t.Errorf("/health of the cut-off appliance: %d, want 503", code)
	}
	if n, err := other.st.Get(m); err != nil || n.State != store.StateReinstall || n.InstallCount != 0 {
		t.Errorf("flag after the cut-off boot: %+v, %v; want still reinstall, never consumed", n.State, err)
	}

	proxy.Restore(t)
	back, ok := waitHealthy([]appliance{cut}, 15*time.Second)
	t.Logf("cut-off appliance healthy again %s after etcd came back", back.Round(time.Millisecond))
	if !ok {
		t.Fatal("the appliance did not recover within 15 s of etcd coming back")
	}
	if o := bootOnce(cut, m); o != installer {
		t.Errorf("boot after recovery: outcome %d, want the installer", o)
	}
}

// TestLeaderKilledDuringBootStorm: the etcd leader dies while three
// appliances serve a boot storm and an admin marks machines for
// reinstall. No acknowledged flag is lost, no install is served twice,
// and every appliance is healthy again within 10 s.
func TestLeaderKilledDuringBootStorm(t *testing.T) {
	c := startCluster(t)
	var apps []appliance
	for i := 0; i < 3; i++ {
		apps = append(apps, newAppliance(t, c.Endpoints(), "/storm/", 2*time.Second))
	}
	const (
		machines = 24
		workers  = 12
		storm    = 4 * time.Second
		maxBoots = 20000
	)
	mac := func(i int) store.MAC { return store.MAC(fmt.Sprintf("52:54:00:cc:00:%02x", i)) }
	var (
		mu      sync.Mutex
		served  = map[store.MAC]int{}
		acked   = map[store.MAC]bool{}
		results = map[outcome]int{}
		booted  int
		wg      sync.WaitGroup
	)
	end := time.Now().Add(storm)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(end); i += workers {
				mu.Lock()
				if booted >= maxBoots {
					mu.Unlock()
					return
				}
				booted++
				mu.Unlock()
				m := mac(i % machines)
				o := bootOnce(apps[i%3], m)
				mu.Lock()
				results[o]++
				if o == installer {
					served[m]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() { // the admin: one reinstall per machine, spread over the storm
		defer wg.Done()
		for i := 0; i < machines; i++ {
			code := post(apps[i%3], "/nodes/"+string(mac(i))+"/reinstall")
			mu.Lock()
			acked[mac(i)] = code == http.StatusOK
			mu.Unlock()
			time.Sleep(storm / machines)
		}
	}()
	time.Sleep(storm / 3)
	leader := c.Leader()
	if leader < 0 {
		t.Fatal("no etcd leader before the kill")
	}
	killed := time.Now()
	c.Members[leader].Stop()
	t.Logf("killed etcd leader %s at %s into the storm", c.Members[leader].Name, storm/3)
	recovered, ok := waitHealthy(apps, 10*time.Second)
	wg.Wait()
	t.Logf("every appliance's /health 200 again %s after the leader was killed", recovered.Round(time.Millisecond))
	t.Logf("storm: %d boots: %d installer, %d local, %d fell back to disk, %d failed", booted,
		results[installer], results[local], results[fallback], results[failed])
	if !ok {
		t.Errorf("not every appliance healthy within 10 s of the leader kill (%s ago)", time.Since(killed).Round(time.Millisecond))
	}
	if results[failed] != 0 {
		t.Errorf("%d boots got no iPXE script at all", results[failed])
	}
	if _, ok := waitHealthy(apps, 10*time.Second); !ok {
		t.Fatal("appliances unhealthy after the storm; cannot check the flags")
	}
	lost, ambiguous := 0, 0
	for i := 0; i < machines; i++ {
		m := mac(i)
		n, err := apps[i%3].st.Get(m)
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		if served[m] > int(n.InstallCount) || served[m] > 1 {
			t.Errorf("%s: %d installers served, %d flags consumed (one POST): an install was served twice", m, served[m], n.InstallCount)
		}
		switch {
		case !acked[m]:
		case n.State == store.StateReinstall && n.InstallCount == 0:
		case n.InstallCount == 1:
			if served[m] == 0 {
				ambiguous++ // consumed by a boot whose commit answer was lost in the kill
			}
		default:
			lost++
			t.Errorf("%s: reinstall acknowledged, now state %s with %d installs: the flag was lost", m, n.State, n.InstallCount)
		}
	}
	t.Logf("%d machines: %d flags lost, %d consumed by a boot that fell back to disk (commit answer lost in the kill)", machines, lost, ambiguous)
}
