package httpapi

import (
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/profiles"
)

// LocalBoot says how a machine is sent to its local disk (PXE_LOCAL_BOOT).
type LocalBoot = boot.LocalBoot

// The PXE_LOCAL_BOOT modes (see boot.LocalBootAuto).
const (
	LocalBootAuto    = boot.LocalBootAuto
	LocalBootSanboot = boot.LocalBootSanboot
	LocalBootExit    = boot.LocalBootExit
)

// BootConfig is the seed's installer configuration: it defines the default
// profile (profiles.SeedProfile) when no profiles file says otherwise.
type BootConfig struct {
	KernelURL      string // PXE_UBUNTU_KERNEL_URL
	InitrdURL      string // PXE_UBUNTU_INITRD_URL
	AutoinstallURL string // PXE_AUTOINSTALL_URL
	KernelArgs     string // PXE_KERNEL_ARGS, appended to the kernel command line
	LocalBoot      LocalBoot
}

// Seed is the configuration as the profiles package takes it.
func (c BootConfig) Seed() profiles.Seed {
	return profiles.Seed{KernelURL: c.KernelURL, InitrdURL: c.InitrdURL, AutoinstallURL: c.AutoinstallURL, KernelArgs: c.KernelArgs}
}

// Missing names the seed's installer settings that are unset.
func (c BootConfig) Missing() []string { return profiles.SeedProfile(c.Seed()).Missing }
