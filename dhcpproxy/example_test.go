package dhcpproxy_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/dhcpproxy"
	"github.com/pxe-pilot/pxe-pilot/metrics"
)

// The wiring cmd/pxe-pilot does for PXE_DHCP_PROXY_ENABLED: find the
// interface (PXE_DHCP_INTERFACE or the default route's), derive the base
// URL from its address, bind, serve until a signal.
func Example() {
	ifname, ip, err := dhcpproxy.DefaultInterface()
	if err != nil {
		slog.Error("ProxyDHCP disabled", "err", err)
		return
	}
	srv, err := dhcpproxy.New(dhcpproxy.Config{
		Interface: ifname,
		ServerIP:  ip,
		BaseURL:   "http://" + net.JoinHostPort(ip.String(), "8000"),
		EFIBinary: assets.IPXEEFI,
		// PXE_DHCP_ONLY_KNOWN: answer only machines the store knows.
		KnownMAC: func(mac net.HardwareAddr) (bool, error) { return true, nil },
		Metrics:  metrics.New("dev"),
	})
	if err != nil {
		slog.Error("ProxyDHCP", "err", err) // e.g. port 67 in use, no privilege
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	_ = srv.Serve(ctx)
}
