package dhcpproxy

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testLAN is an Ethernet segment built from network namespaces: a bridge
// in its own namespace and one namespace per host, each joined to the
// bridge by a veth pair. Addresses come from 203.0.113.0/24 (TEST-NET-3).
type testLAN struct {
	t      testing.TB
	prefix string
	bridge string   // namespace holding br0
	hosts  []string // namespaces created, for cleanup
	procs  []*exec.Cmd
}

// requireRoot fails (not skips) the test when it cannot build namespaces
// or lacks a tool: CI runs as root with every package installed.
func requireRoot(t testing.TB, tools map[string]string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test builds network namespaces and binds port 67: run it as root (CI does)")
	}
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian package %q", tool, pkg)
		}
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newTestLAN creates the bridge namespace. Names carry the PID and a tag so
// parallel test binaries and helpers never collide.
func newTestLAN(t testing.TB, tag string) *testLAN {
	requireRoot(t, map[string]string{"ip": "iproute2"})
	l := &testLAN{t: t, prefix: fmt.Sprintf("px%s%d", tag, os.Getpid())}
	l.bridge = l.prefix + "-lan"
	t.Cleanup(l.close)
	l.addNS(l.bridge)
	run(t, "ip", "-n", l.bridge, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.bridge, "link", "set", "br0", "up")
	return l
}

func (l *testLAN) addNS(name string) {
	run(l.t, "ip", "netns", "add", name)
	l.hosts = append(l.hosts, name)
	run(l.t, "ip", "-n", name, "link", "set", "lo", "up")
}

// host adds a namespace with interface eth0 on the bridge, addressed cidr
// ("" = no address). It returns the namespace name.
func (l *testLAN) host(name, cidr string) string {
	ns := l.prefix + "-" + name
	l.addNS(ns)
	port := "p" + name
	run(l.t, "ip", "-n", l.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run(l.t, "ip", "-n", l.bridge, "link", "set", port, "master", "br0")
	run(l.t, "ip", "-n", l.bridge, "link", "set", port, "up")
	if cidr != "" {
		run(l.t, "ip", "-n", ns, "addr", "add", cidr, "dev", "eth0")
	}
	run(l.t, "ip", "-n", ns, "link", "set", "eth0", "up")
	return ns
}

// start runs a command inside ns in the background; close kills it by PID.
func (l *testLAN) start(ns string, stderr io.Writer, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("starting %v: %v", args, err)
	}
	l.procs = append(l.procs, cmd)
	return cmd
}

func (l *testLAN) close() {
	for _, c := range l.procs {
		// ip netns exec execs the command, so the PID is the daemon's.
		_ = c.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	for i := len(l.hosts) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", l.hosts[i]).Run()
	}
}

// inNetns runs f on an OS thread switched into namespace ns. Sockets made
// in f stay in ns after the thread switches back, so New can bind there
// and Serve can run on any goroutine.
func inNetns(t testing.TB, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("setns %s: %v", ns, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread is in the wrong namespace: do not let
			// the runtime reuse it.
			panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
		}
	}()
	f()
}

// lockedBuffer collects a child's output; the child writes while a test
// may read.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
