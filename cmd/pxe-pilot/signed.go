package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
	"github.com/pxe-pilot/pxe-pilot/tftpsrv"
)

// files is what the protocol servers hand out.
type files struct {
	ipxe, signed *assets.Binaries
	profiles     *atomic.Pointer[profiles.Set]
	// grub makes GRUB's per-machine script (httpapi's decision), served
	// over TFTP as /grub/node/<MAC>; grubRelayed streams the installer
	// files its plan names, /grub/node/<MAC>.kernel and the like.
	grub        func(mac string, client netip.Addr) ([]byte, bool)
	grubRelayed func(name string, client netip.Addr) (io.Reader, int64, bool)
}

// loadSigned finds the Secure Boot chain and says clearly when it is
// missing: machines with Secure Boot on cannot boot without it, while
// the iPXE path works as before.
func loadSigned(cfg config, log *slog.Logger) (*assets.Binaries, error) {
	signed, err := assets.LoadSigned(assets.SignedOptions{Dir: cfg.SignedDir})
	if err != nil {
		return nil, err
	}
	for _, name := range signed.Found() {
		b, _ := signed.Get(name)
		log.Info("Secure Boot chain file", "file", name, "source", b.Source, "bytes", b.Size)
	}
	missing := signed.Missing()
	var x64 []string
	for _, name := range []string{assets.ShimX64, assets.GRUBX64} {
		if looked, ok := missing[name]; ok {
			x64 = append(x64, name+" (looked in "+strings.Join(looked, ", ")+")")
		}
	}
	if len(x64) > 0 {
		msg := "Secure Boot chain missing: UEFI x86_64 machines with Secure Boot on cannot boot from this appliance; install Debian's shim-signed and grub-efi-amd64-signed, run make assets, or set PXE_SIGNED_DIR. The iPXE path is unaffected"
		if cfg.UEFILoader == "shim" {
			msg += "; PXE_UEFI_LOADER=shim falls back to iPXE until then"
		}
		log.Warn(msg, "missing", strings.Join(x64, "; "))
	}
	for _, name := range []string{assets.ShimAA64, assets.GRUBAA64} {
		if looked, ok := missing[name]; ok {
			log.Debug("Secure Boot chain for arm64 missing (Debian's shim-signed:arm64 and grub-efi-arm64-signed)", "file", name, "looked_in", strings.Join(looked, ", "))
		}
	}
	return signed, nil
}

// shimNames are the shims ProxyDHCP may offer: a shim only counts when
// the GRUB it loads is there too.
func (f files) shimNames() (x64, aa64 string) {
	have := func(n string) bool { _, ok := f.signed.Get(n); return ok }
	if have(assets.ShimX64) && have(assets.GRUBX64) {
		x64 = assets.ShimX64
	}
	if have(assets.ShimAA64) && have(assets.GRUBAA64) {
		aa64 = assets.ShimAA64
	}
	return x64, aa64
}

// signedFiles are the Secure Boot chain for the TFTP server, read on first
// use (assets.LoadSigned says why).
func (f files) signedFiles() map[string]tftpsrv.LazyFile {
	out := map[string]tftpsrv.LazyFile{}
	for _, name := range f.signed.Found() {
		b, _ := f.signed.Get(name)
		out[name] = tftpsrv.LazyFile{Size: b.Size, Load: b.Bytes}
	}
	return out
}

// tftpFiles are grub.cfg (under every GRUB prefix) for the TFTP server.
func (f files) tftpFiles(base string, log *slog.Logger) map[string][]byte {
	out := map[string][]byte{}
	cfg, err := boot.GRUBConfig(base)
	if err != nil {
		log.Warn("no grub.cfg for the Secure Boot chain: GRUB would find no configuration", "err", err)
		return out
	}
	for _, prefix := range assets.GRUBPrefixes {
		out[strings.TrimPrefix(prefix, "/")+"/grub.cfg"] = cfg
	}
	return out
}

// loaderFor is a node's own UEFI loader at DHCP time: the "loader" field
// of the profile the node resolves to (node setting, group, default). A
// machine not yet in the store is resolved by its MAC alone (groups can
// match MAC prefixes). Any failure means "" (PXE_UEFI_LOADER).
func (f files) loaderFor(st store.Backend) func(net.HardwareAddr) string {
	return func(hw net.HardwareAddr) string {
		mac, err := store.ParseMAC(hw.String())
		if err != nil {
			return ""
		}
		n, err := st.Get(mac)
		if errors.Is(err, store.ErrNotFound) {
			n, err = store.Node{MAC: mac}, nil
		}
		if err != nil {
			return ""
		}
		res := f.profiles.Load().Resolve(&n)
		if res.Profile == nil {
			return ""
		}
		return res.Profile.Loader
	}
}
