package dhcpproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// routeTable is the calling thread's view of the IPv4 routes. Not
// /proc/net/route: that follows /proc/self, the thread group leader, which
// is in another network namespace than a thread that switched with setns.
const routeTable = "/proc/thread-self/net/route"

// DefaultInterface returns the interface that holds the IPv4 default route
// and its first IPv4 address: where the LAN's PXE clients are, on a typical
// single-homed appliance. cmd uses it to derive PXE_BASE_URL.
func DefaultInterface() (name string, ip net.IP, err error) {
	name, err = defaultRouteInterface(routeTable)
	if err != nil {
		return "", nil, err
	}
	ip, err = InterfaceIPv4(name)
	if err != nil {
		return "", nil, err
	}
	return name, ip, nil
}

// defaultRouteInterface reads the kernel's IPv4 routing table as text:
// "Iface Destination Gateway Flags ..." with hex fields; the default route
// has destination 00000000 and mask 00000000. The lowest metric wins.
func defaultRouteInterface(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the routing table to find the default interface (set PXE_DHCP_INTERFACE): %w", err)
	}
	defer f.Close()
	best, bestMetric := "", -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] == "Iface" {
			continue
		}
		// Flags must include RTF_UP (0x1).
		if fields[1] != "00000000" || fields[7] != "00000000" {
			continue
		}
		var flags, metric int
		if _, err := fmt.Sscanf(fields[3], "%x", &flags); err != nil || flags&1 == 0 {
			continue
		}
		if _, err := fmt.Sscanf(fields[6], "%d", &metric); err != nil {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = fields[0], metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if best == "" {
		return "", errors.New("no IPv4 default route, so no default interface for ProxyDHCP: set PXE_DHCP_INTERFACE")
	}
	return best, nil
}

// InterfaceIPv4 returns the first IPv4 address of the named interface; cmd
// uses it to derive PXE_BASE_URL from PXE_DHCP_INTERFACE.
func InterfaceIPv4(name string) (net.IP, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("PXE_DHCP_INTERFACE=%q: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("cannot list the addresses of interface %q: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip4 := n.IP.To4(); ip4 != nil {
				return ip4, nil
			}
		}
	}
	return nil, fmt.Errorf("interface %q has no IPv4 address; ProxyDHCP needs one for next-server", name)
}

// listenUDP binds 0.0.0.0:port pinned to ifname. The wildcard address is
// needed to receive broadcasts; SO_BINDTODEVICE keeps us to one interface,
// so a DHCP server on another interface of the host (libvirt's dnsmasq, a
// router daemon) keeps its traffic. SO_REUSEADDR lets such a server, bound
// the same way to its own interface, share the port.
func listenUDP(ctx context.Context, ifname string, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				serr = fmt.Errorf("SO_REUSEADDR: %w", serr)
				return
			}
			if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				serr = fmt.Errorf("SO_BROADCAST: %w", serr)
				return
			}
			if serr = unix.BindToDevice(s, ifname); serr != nil {
				serr = fmt.Errorf("SO_BINDTODEVICE %q (needs CAP_NET_RAW on kernels before 5.7): %w", ifname, serr)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("cannot bind UDP port %d on %s (needs root or CAP_NET_BIND_SERVICE): %w", port, ifname, err)
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("UDP port %d on %s is in use by another program (another DHCP server?): %w", port, ifname, err)
		}
		return nil, fmt.Errorf("cannot bind UDP port %d on %s: %w", port, ifname, err)
	}
	return pc.(*net.UDPConn), nil
}
