package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxe-pilot/pxe-pilot/httpapi"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8000 || c.DatabasePath != "pxe.db" || c.Boot.LocalBoot != httpapi.LocalBootAuto ||
		c.TFTPEnabled || c.DHCPEnabled || c.TFTPAddr != ":69" || c.EFIBinary != "ipxe.efi" ||
		c.BootHistory != 20 || c.ShutdownTimeout != 10*time.Second || c.LogFormat != "text" || c.NodeRetention != 0 || c.MemoryLimit != 16<<20 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadConfigMemoryLimit(t *testing.T) {
	for v, want := range map[string]int64{"0": 0, "64MiB": 64 << 20, "1GiB": 1 << 30, "50000000": 50000000} {
		c, err := loadConfig(nil, env(map[string]string{"PXE_MEMORY_LIMIT": v}), io.Discard)
		if err != nil || c.MemoryLimit != want {
			t.Errorf("PXE_MEMORY_LIMIT=%s: %d, %v; want %d", v, c.MemoryLimit, err, want)
		}
	}
}

func TestLoadConfigNodeRetention(t *testing.T) {
	for v, want := range map[string]time.Duration{"0": 0, "90d": 2160 * time.Hour, "2160h": 2160 * time.Hour, "1h": time.Hour} {
		c, err := loadConfig(nil, env(map[string]string{"PXE_NODE_RETENTION": v}), io.Discard)
		if err != nil || c.NodeRetention != want {
			t.Errorf("PXE_NODE_RETENTION=%s: %v, %v; want %v", v, c.NodeRetention, err, want)
		}
	}
}

func TestLoadConfigFlagBeatsEnv(t *testing.T) {
	c, err := loadConfig([]string{"--port", "9001", "--tftp", "--trusted-proxies", "10.0.0.0/8, 127.0.0.1"},
		env(map[string]string{"PORT": "9000", "PXE_TFTP_ENABLED": "0", "PXE_DHCP_PROXY_ENABLED": "YES",
			"PXE_BASE_URL": "http://203.0.113.2:8000/", "PXE_UBUNTU_KERNEL_URL": "http://203.0.113.9/k/${mac}"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9001 || !c.TFTPEnabled || !c.DHCPEnabled || c.BaseURL != "http://203.0.113.2:8000" ||
		c.Boot.KernelURL != "http://203.0.113.9/k/${mac}" || len(c.TrustedProxies) != 2 ||
		c.TrustedProxies[1].String() != "127.0.0.1/32" {
		t.Fatalf("got %+v", c)
	}
}

func TestLoadConfigErrorsNameTheSetting(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want []string
	}{
		{env: map[string]string{"PORT": "http"}, want: []string{`PORT (--port) = "http"`, "whole number from 1 to 65535"}},
		{env: map[string]string{"PORT": "70000"}, want: []string{"PORT"}},
		{args: []string{"--port", "0"}, want: []string{`PORT (--port) = "0"`}},
		{env: map[string]string{"PXE_BASE_URL": "203.0.113.2:8000"}, want: []string{"PXE_BASE_URL", "http://"}},
		{env: map[string]string{"PXE_BASE_URL": "http://x/?a=b"}, want: []string{"PXE_BASE_URL", "query"}},
		{env: map[string]string{"PXE_UBUNTU_KERNEL_URL": "http://x/a b"}, want: []string{"PXE_UBUNTU_KERNEL_URL", "spaces"}},
		{env: map[string]string{"PXE_AUTOINSTALL_URL": "file:///etc/passwd"}, want: []string{"PXE_AUTOINSTALL_URL", "absolute URL"}},
		{env: map[string]string{"PXE_KERNEL_ARGS": "a\nchain http://x"}, want: []string{"PXE_KERNEL_ARGS", "one line"}},
		{env: map[string]string{"PXE_KERNEL_ARGS": "quiet || chain http://x"}, want: []string{"PXE_KERNEL_ARGS", "script syntax"}},
		{env: map[string]string{"PXE_LOCAL_BOOT": "grub"}, want: []string{"PXE_LOCAL_BOOT", "auto, sanboot or exit"}},
		{env: map[string]string{"PXE_TFTP_ENABLED": "maybe"}, want: []string{"PXE_TFTP_ENABLED", "1/true/yes"}},
		{env: map[string]string{"PXE_DHCP_PROXY_ENABLED": "2"}, want: []string{"PXE_DHCP_PROXY_ENABLED"}},
		{env: map[string]string{"PXE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.lan"}, want: []string{"PXE_TRUSTED_PROXIES", `"proxy.lan"`}},
		{env: map[string]string{"PXE_LOG_FORMAT": "xml"}, want: []string{"PXE_LOG_FORMAT", "text or json"}},
		{env: map[string]string{"PXE_LOG_LEVEL": "loud"}, want: []string{"PXE_LOG_LEVEL"}},
		{env: map[string]string{"PXE_TFTP_ADDR": "69"}, want: []string{"PXE_TFTP_ADDR", "host:port"}},
		// An empty or zero port listened on a random one, which no firmware finds.
		{env: map[string]string{"PXE_TFTP_ADDR": "127.0.0.1:"}, want: []string{"PXE_TFTP_ADDR", "from 1 to 65535"}},
		{env: map[string]string{"PXE_TFTP_ADDR": ":0"}, want: []string{"PXE_TFTP_ADDR", "from 1 to 65535"}},
		{env: map[string]string{"PXE_TFTP_ADDR": "0.0.0.0:70000"}, want: []string{"PXE_TFTP_ADDR", "from 1 to 65535"}},
		{env: map[string]string{"PXE_TFTP_LOOP_WINDOW": "-1s"}, want: []string{"PXE_TFTP_LOOP_WINDOW", "positive duration"}},
		{env: map[string]string{"PXE_EFI_BINARY": "grub.efi"}, want: []string{"PXE_EFI_BINARY", "snponly.efi"}},
		{env: map[string]string{"PXE_LISTEN_ADDR": "eth0"}, want: []string{"PXE_LISTEN_ADDR", "not an IP"}},
		{env: map[string]string{"PXE_BOOT_HISTORY": "0"}, want: []string{"PXE_BOOT_HISTORY"}},
		{env: map[string]string{"PXE_MEMORY_LIMIT": "32MB"}, want: []string{"PXE_MEMORY_LIMIT", "32MiB"}},
		{env: map[string]string{"PXE_MEMORY_LIMIT": "1MiB"}, want: []string{"PXE_MEMORY_LIMIT", "at least 8MiB"}},
		{env: map[string]string{"PXE_NODE_RETENTION": "90days"}, want: []string{"PXE_NODE_RETENTION", "90d"}},
		{env: map[string]string{"PXE_NODE_RETENTION": "-1d"}, want: []string{"PXE_NODE_RETENTION"}},
		{env: map[string]string{"PXE_NODE_RETENTION": "10m"}, want: []string{"PXE_NODE_RETENTION", "at least 1h"}},
		{env: map[string]string{"PORT": "x", "PXE_LOCAL_BOOT": "y"}, want: []string{"PORT", "PXE_LOCAL_BOOT"}},
		{args: []string{"extra"}, want: []string{`unexpected argument "extra"`}},
	} {
		_, err := loadConfig(tc.args, env(tc.env), io.Discard)
		if err == nil {
			t.Errorf("%v %v: no error", tc.env, tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v %v: error %q does not mention %q", tc.env, tc.args, err, w)
			}
		}
	}
}

// Every setting has a distinct variable and flag, and a default that
// validates: the table is the single source the README is checked against.
func TestSettingsTable(t *testing.T) {
	envs, flags := map[string]bool{}, map[string]bool{}
	for _, s := range settings {
		if envs[s.env] || flags[s.flag] {
			t.Errorf("duplicate setting %s/--%s", s.env, s.flag)
		}
		envs[s.env], flags[s.flag] = true, true
		if s.help == "" {
			t.Errorf("%s has no help text", s.env)
		}
	}
}

func TestMemoryLimitGrowsWithTheFleet(t *testing.T) {
	m := &memoryLimit{Base: 24 << 20, PerNode: 256}
	if got, want := m.limit(100000, 10<<20, 4<<20), int64(24<<20+25600000); got != want {
		t.Fatalf("limit = %d, want %d", got, want)
	}
}

// A live heap above the configured limit lifts the limit to a half above
// it: the collector gets headroom instead of running without pause, and
// its pace (GOGC=25) starts a collection before the limit binds.
func TestMemoryLimitStaysAboveTheLiveHeap(t *testing.T) {
	m := &memoryLimit{Base: 24 << 20, PerNode: 256}
	if got, want := m.limit(10000, 40<<20, 4<<20), int64(40<<20+20<<20+4<<20); got != want {
		t.Fatalf("limit = %d, want %d (live 40 MiB + a half + 4 MiB outside the heap)", got, want)
	}
	// And it comes back down with the live heap.
	if got, want := m.limit(10000, 8<<20, 4<<20), int64(24<<20+2560000); got != want {
		t.Fatalf("limit = %d, want %d", got, want)
	}
}

// The runtime's own figures: the live heap is what a real allocation
// made it, and the non-heap part is positive.
func TestMemoryLimitReadsTheRuntime(t *testing.T) {
	m := &memoryLimit{}
	keep := make([][]byte, 0, 64)
	for range 64 {
		keep = append(keep, make([]byte, 256<<10))
	}
	runtime.GC()
	live, other := m.read()
	if live < 16<<20 {
		t.Errorf("live heap %d bytes with 16 MiB held; want at least that", live)
	}
	if other == 0 {
		t.Error("no memory outside the heap: the runtime/metrics names are wrong")
	}
	runtime.KeepAlive(keep)
}

// TestMemoryLimitServe: Serve sets the runtime's limit to Base plus the
// fleet's share and the collector's pace to GOGC=25, counts the fleet once
// per nodesEvery, not on every tick, and gives the pace back when it stops.
func TestMemoryLimitServe(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" || os.Getenv("GOGC") != "" {
		t.Fatal("GOMEMLIMIT or GOGC is set in the test environment: Serve would leave the limit or the pace alone")
	}
	pace := gcPercentNow()
	var counts atomic.Int32
	stop := serveMemoryLimit(t, func() int { counts.Add(1); return 1000 })
	time.Sleep(50 * time.Millisecond) // about 50 more ticks
	if got := gcPercentNow(); got != gcPercent {
		t.Errorf("collector's pace %d while serving, want GOGC=%d", got, gcPercent)
	}
	stop()
	if got := gcPercentNow(); got != pace {
		t.Errorf("collector's pace %d after Serve returned, want %d as before", got, pace)
	}
	if n := counts.Load(); n != 1 {
		t.Errorf("the fleet was counted %d times in one nodesEvery; want once", n)
	}
}

// TestMemoryLimitLeavesGOGC: an operator's GOGC wins over the pace Serve
// would set, as GOMEMLIMIT wins over the limit.
func TestMemoryLimitLeavesGOGC(t *testing.T) {
	t.Setenv("GOGC", "80")
	pace := gcPercentNow()
	stop := serveMemoryLimit(t, func() int { return 1000 })
	got := gcPercentNow()
	stop()
	if got != pace {
		t.Errorf("collector's pace %d with GOGC=80 set, want it left at %d", got, pace)
	}
}

// serveMemoryLimit runs Serve with a 512 MiB base and 256 bytes a node
// until the runtime's limit is Base plus nodes' share (the test fails if
// it never gets there); stop ends Serve and checks the limit stayed. The
// runtime's limit is put back when the test ends.
func serveMemoryLimit(t *testing.T, nodes func() int) (stop func()) {
	t.Helper()
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	m := &memoryLimit{Base: 512 << 20, PerNode: 256, Every: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Nodes: nodes}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()
	want := int64(512<<20 + 256*1000)
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != want {
			t.Fatalf("runtime memory limit %d, want %d", got, want)
		}
	}
}

// gcPercentNow reads the collector's pace (debug.SetGCPercent returns the
// one it replaces).
func gcPercentNow() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestEtcdSettingsWithBadgerWarn: PXE_ETCD_* settings given with the
// embedded Badger store do nothing, and opening the store says so, naming
// them (they were ignored without a word, so a mistake in them showed only
// on switching to etcd). Defaults alone say nothing.
func TestEtcdSettingsWithBadgerWarn(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, ""},
		{map[string]string{"PXE_ETCD_TIMEOUT": "banana", "PXE_ETCD_PASSWORD": "secret"}, "PXE_ETCD_TIMEOUT, PXE_ETCD_PASSWORD"},
	} {
		tc.env["DATABASE_PATH"] = t.TempDir()
		c, err := loadConfig(nil, env(tc.env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		st, _, err := openStore(c, slog.New(slog.NewTextHandler(&logs, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		warned := strings.Contains(logs.String(), "PXE_ETCD_* settings do nothing with the embedded Badger store")
		if tc.want == "" && warned || tc.want != "" && (!warned || !strings.Contains(logs.String(), tc.want) || strings.Contains(logs.String(), "secret")) {
			t.Errorf("%v: log\n%s", tc.env, logs.String())
		}
	}
}
