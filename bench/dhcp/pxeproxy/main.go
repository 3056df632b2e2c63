// Command pxeproxy runs dhcpproxy alone, in the foreground, for the
// benchmark (run.sh) and for firmware captures: the same New+Serve the
// appliance runs, without the HTTP or TFTP parts.
//
//	pxeproxy -interface veth0 -base-url http://203.0.113.2:8000 [-debug]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pxe-pilot/pxe-pilot/dhcpproxy"
)

func main() {
	iface := flag.String("interface", "", "interface to serve (default: the default route's)")
	base := flag.String("base-url", "", "PXE_BASE_URL")
	efi := flag.String("efi-binary", "ipxe.efi", "ipxe.efi or snponly.efi")
	debug := flag.Bool("debug", false, "log every decision")
	flag.Parse()
	lvl := slog.LevelInfo
	if *debug {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	s, err := dhcpproxy.New(dhcpproxy.Config{Interface: *iface, BaseURL: *base, EFIBinary: *efi, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pxeproxy:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pxeproxy:", err)
		os.Exit(1)
	}
}
