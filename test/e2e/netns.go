//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The test LAN. 203.0.113.0/24 (TEST-NET-3) and 2001:db8::/64 are
// documentation prefixes; 192.0.2.0/24 is the real host network on the CI
// machines and must never appear here.
const (
	routerIP    = "203.0.113.1"
	applianceIP = "203.0.113.2"
	filesIP     = "203.0.113.3"
	routerIP6   = "2001:db8::1"
	filesPort   = "8080"
	appPort     = "8000"
)

// network is one private L2 segment made of network namespaces:
//
//	lan:    bridge br0, the QEMU taps, tcpdump
//	rtr:    eth0 203.0.113.1 + 2001:db8::1, the router dnsmasq
//	app:    eth0 203.0.113.2, pxe-pilot (or the reference proxy dnsmasq)
//	files:  eth0 203.0.113.3, the test's own HTTP server (kernel, initrd,
//	        autoinstall, reference boot script) and its API client
//
// Namespace names carry the test binary's PID so parallel runs and other
// helpers on the machine never collide.
type network struct {
	prefix string
	lan    string
	rtr    string
	app    string
	files  string
	taps   int
}

func newNetwork(prefix string) (*network, error) {
	n := &network{
		prefix: prefix,
		lan:    prefix + "-lan",
		rtr:    prefix + "-rtr",
		app:    prefix + "-app",
		files:  prefix + "-files",
	}
	steps := [][]string{
		{"netns", "add", n.lan},
		{"netns", "add", n.rtr},
		{"netns", "add", n.app},
		{"netns", "add", n.files},
		{"-n", n.lan, "link", "set", "lo", "up"},
		{"-n", n.rtr, "link", "set", "lo", "up"},
		{"-n", n.app, "link", "set", "lo", "up"},
		{"-n", n.files, "link", "set", "lo", "up"},
		{"-n", n.lan, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		// No multicast snooping: the bridge must flood DHCP, RS/RA alike.
		{"-n", n.lan, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"-n", n.lan, "link", "set", "br0", "up"},
	}
	for _, peer := range []struct{ ns, port, addr string }{
		{n.rtr, "vrtr", routerIP + "/24"},
		{n.app, "vapp", applianceIP + "/24"},
		{n.files, "vfiles", filesIP + "/24"},
	} {
		steps = append(steps,
			[]string{"-n", n.lan, "link", "add", peer.port, "type", "veth", "peer", "name", "eth0", "netns", peer.ns},
			[]string{"-n", n.lan, "link", "set", peer.port, "master", "br0", "up"},
			[]string{"-n", peer.ns, "addr", "add", peer.addr, "dev", "eth0"},
			[]string{"-n", peer.ns, "link", "set", "eth0", "up"},
		)
	}
	// nodad: the router must be able to send RAs from its address at once.
	steps = append(steps, []string{"-n", n.rtr, "addr", "add", routerIP6 + "/64", "dev", "eth0", "nodad"})
	for _, s := range steps {
		if err := ip(s...); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// ip runs one iproute2 command.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addTap creates a fresh tap on the bridge for one VM.
func (n *network) addTap() (string, error) {
	n.taps++
	name := "tap" + strconv.Itoa(n.taps)
	if err := ip("-n", n.lan, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
		return "", err
	}
	if err := ip("-n", n.lan, "link", "set", name, "master", "br0", "up"); err != nil {
		return "", err
	}
	return name, nil
}

func (n *network) delTap(name string) { _ = ip("-n", n.lan, "link", "del", name) }

// close deletes the namespaces; the veths and taps go with them. Processes
// inside must have been stopped first.
func (n *network) close() {
	for _, ns := range []string{n.files, n.app, n.rtr, n.lan} {
		_ = ip("netns", "del", ns)
	}
}

// removeStaleNamespaces deletes namespaces left by an earlier run of this
// suite that died before cleaning up (a panic, a kill -9), recognised by the
// prefix and a PID that no longer runs. Namespaces of live runs are kept.
func removeStaleNamespaces(base string) {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+"-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || processAlive(pid) {
			continue
		}
		_ = ip("netns", "del", e.Name())
	}
}

// processAlive reads /proc/<pid>/status: kill -0 succeeds on zombies, which
// scripts on these machines leave around for a while.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			return !strings.Contains(v, "Z")
		}
	}
	return true
}

// inNetns runs fn on an OS thread that has joined the named namespace, so
// sockets fn creates live there for good. The thread goes back to the
// original namespace afterwards; if that fails it stays locked and dies
// with the goroutine, never serving other goroutines from the wrong
// namespace. (Go >= 1.10 never clones new threads from a locked one.)
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := setns(int(target.Fd())); err != nil {
			errc <- fmt.Errorf("entering netns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := setns(int(orig.Fd())); err != nil {
			errc <- fmt.Errorf("leaving netns %s: %w", ns, err)
			return // thread stays locked and exits with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(fd int) error { return unix.Setns(fd, unix.CLONE_NEWNET) }

// listenIn opens a TCP listener inside a namespace.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// dialerIn returns a DialContext that connects from inside a namespace.
func dialerIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() error {
			var err error
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
