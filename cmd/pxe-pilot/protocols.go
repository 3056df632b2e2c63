package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/dhcpproxy"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/tftpsrv"
)

// protocolServers builds the TFTP and ProxyDHCP servers the configuration
// enables. Each binds its sockets here, so a port in use stops start-up with
// a clear error instead of surfacing later.
func protocolServers(cfg config, st store.Backend, f files, m *metrics.Metrics, log *slog.Logger) (map[string]server, error) {
	bins := f.ipxe
	out := map[string]server{}
	if cfg.TFTPEnabled {
		// The loop breaker is for routers that hand iPXE the binary's name
		// again. With ProxyDHCP, iPXE gets /chain by DHCP and never asks
		// TFTP again, so the breaker would only hand the script to the
		// next power-on's firmware.
		window := cfg.TFTPLoopWindow
		if cfg.DHCPEnabled || window == 0 {
			window = -1
		}
		t, err := tftpsrv.New(tftpsrv.Config{
			Addr:            cfg.TFTPAddr,
			Binaries:        bins,
			BaseURL:         cfg.BaseURL,
			Files:           f.tftpFiles(cfg.BaseURL, log),
			LazyFiles:       f.signedFiles(),
			Generate:        tftpsrv.Generator{Prefix: boot.GRUBNodeFolder, Make: f.grub, Stream: f.grubRelayed},
			LoopWindow:      window,
			ShutdownTimeout: cfg.ShutdownTimeout,
			Metrics:         m,
			Logger:          log,
		})
		if err != nil {
			return nil, fmt.Errorf("TFTP (PXE_TFTP_ADDR=%s): %w", cfg.TFTPAddr, err)
		}
		out["tftp"] = t
	}
	if cfg.DHCPEnabled {
		var known func(net.HardwareAddr) (bool, error)
		if cfg.DHCPOnlyKnown {
			known = func(hw net.HardwareAddr) (bool, error) {
				mac, err := store.ParseMAC(hw.String())
				if err != nil {
					return false, nil // not Ethernet: not one of ours
				}
				_, err = st.Get(mac)
				if errors.Is(err, store.ErrNotFound) {
					return false, nil
				}
				return err == nil, err
			}
		}
		arm64 := ""
		if _, ok := bins.Get(assets.ARM64EFI); ok {
			arm64 = assets.ARM64EFI
		}
		shim, shimARM := f.shimNames()
		d, err := dhcpproxy.New(dhcpproxy.Config{
			Interface:   cfg.DHCPInterface,
			BaseURL:     cfg.BaseURL,
			EFIBinary:   cfg.EFIBinary,
			ARM64Binary: arm64,
			UEFILoader:  cfg.UEFILoader,
			ShimX64:     shim,
			ShimAA64:    shimARM,
			LoaderFor:   f.loaderFor(st),
			KnownMAC:    known,
			Metrics:     m,
			Logger:      log,
		})
		if err != nil {
			return nil, fmt.Errorf("ProxyDHCP (PXE_DHCP_INTERFACE=%q): %w", cfg.DHCPInterface, err)
		}
		log.Info("ProxyDHCP listening", "interface", d.Interface(), "server_ip", d.ServerIP().String(), "only_known", cfg.DHCPOnlyKnown, "efi_binary", cfg.EFIBinary, "uefi_loader", cfg.UEFILoader)
		out["dhcp"] = d
	}
	return out, nil
}
