//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const adminKey = "e2e-admin-secret"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// applianceBinary builds ./cmd/pxe-pilot once per run (or uses
// $E2E_PXE_PILOT, a binary built elsewhere).
func applianceBinary(work string) (string, error) {
	buildOnce.Do(func() {
		if p := os.Getenv("E2E_PXE_PILOT"); p != "" {
			binPath = p
			return
		}
		binPath = filepath.Join(work, "pxe-pilot")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/pxe-pilot")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/pxe-pilot: %w\n%s", err, out)
		}
	})
	return binPath, buildErr
}

// appliance is one run of the real pxe-pilot binary inside the app
// namespace, configured only through the documented environment.
type appliance struct {
	name   string
	p      *proc
	client *http.Client
	base   string
}

type applianceOpts struct {
	db    string   // DATABASE_PATH
	proxy bool     // PXE_DHCP_PROXY_ENABLED
	env   []string // more settings, K=V
}

func (st *suite) startAppliance(name string, o applianceOpts) (*appliance, error) {
	bin, err := applianceBinary(st.work)
	if err != nil {
		return nil, err
	}
	files := "http://" + filesIP + ":" + filesPort
	proxy := "0"
	if o.proxy {
		proxy = "1"
	}
	env := []string{
		"PORT=" + appPort,
		"PXE_BASE_URL=http://" + applianceIP + ":" + appPort,
		"PXE_UBUNTU_KERNEL_URL=" + files + "/ubuntu/vmlinuz",
		"PXE_UBUNTU_INITRD_URL=" + files + "/ubuntu/initrd",
		"PXE_AUTOINSTALL_URL=" + files + "/autoinstall/${mac}/",
		// quiet: the kernel's boot messages over an emulated UART cost
		// ~8 s per installer boot under TCG.
		"PXE_KERNEL_ARGS=console=ttyS0 quiet",
		"DATABASE_PATH=" + o.db,
		"ADMIN_API_KEY=" + adminKey,
		"PXE_LOG_FORMAT=text",
		"PXE_LOG_LEVEL=debug",
		"PXE_TFTP_ENABLED=1",
		"PXE_TFTP_ADDR=:69",
		"PXE_DHCP_PROXY_ENABLED=" + proxy,
		"PXE_DHCP_INTERFACE=eth0",
	}
	// E2E_APPLIANCE_ENV="K=V K=V" adds or overrides settings, for
	// bisecting a failure by hand (e.g. PXE_TFTP_LOOP_WINDOW=1s).
	env = append(env, o.env...)
	env = append(env, strings.Fields(os.Getenv("E2E_APPLIANCE_ENV"))...)
	p, err := startIn(st.net.app, name, filepath.Join(st.artifacts, name+".log"), env, bin, "serve")
	if err != nil {
		return nil, err
	}
	a := &appliance{
		name: name,
		p:    p,
		base: "http://" + applianceIP + ":" + appPort,
		client: &http.Client{
			Transport: &http.Transport{DialContext: dialerIn(st.net.files), DisableKeepAlives: true},
			Timeout:   10 * time.Second,
		},
	}
	// Ready when /health answers 200 from another host on the LAN.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, err := a.do("GET", "/health")
		if err == nil && code == 200 {
			return a, nil
		}
		if p.exited() {
			return nil, fmt.Errorf("pxe-pilot exited at start-up (%v):\n%s", p.exitErr(), tail(p.log(), 30))
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("pxe-pilot /health not 200 within 30 s (last: %d %v):\n%s", code, err, tail(p.log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a graceful exit.
func (a *appliance) stop() error {
	err, polite := a.p.stop(syscall.SIGTERM, 20*time.Second)
	if !polite {
		return fmt.Errorf("%s ignored SIGTERM for 20 s and was killed", a.name)
	}
	if err != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM:\n%s", a.name, err, tail(a.p.log(), 20))
	}
	return nil
}

func (a *appliance) do(method, path string) (int, []byte, error) {
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// metricSet is a parsed Prometheus text exposition: series -> value.
type metricSet map[string]float64

func (a *appliance) metrics() (metricSet, error) {
	code, b, err := a.do("GET", "/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("/metrics answered %d", code)
	}
	return parseMetrics(string(b)), nil
}

// parseMetrics reads the text format well enough for counters: one
// "name{labels} value" per line, comments skipped.
func parseMetrics(text string) metricSet {
	m := metricSet{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	return m
}

// sum adds every series of a metric whose labels include all of want
// (given as `key="value"` strings).
func (m metricSet) sum(name string, want ...string) float64 {
	var total float64
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// dump lists the pxe_pilot_ series, for failure messages.
func (m metricSet) dump(prefix string) string {
	var lines []string
	for k, v := range m {
		if strings.HasPrefix(k, prefix) && v != 0 {
			lines = append(lines, fmt.Sprintf("%s %g", k, v))
		}
	}
	sortStrings(lines)
	return strings.Join(lines, "\n")
}
