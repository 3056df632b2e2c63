package httpapi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// LocalBoot says how a machine is sent to its local disk.
type LocalBoot string

// The PXE_LOCAL_BOOT modes.
const (
	// LocalBootAuto: sanboot on BIOS, "exit 1" on UEFI. Measured with OVMF
	// and Debian's iPXE: "sanboot --drive 0x80" fails under EFI ("No such
	// device"), and a plain "exit" (EFI_SUCCESS) leaves EDK2 in its boot
	// manager menu; only a non-zero exit hands the machine back to the
	// firmware's boot order. On BIOS, "exit" hangs some firmware, while
	// INT 13h drive 0x80 is the first hard disk everywhere.
	LocalBootAuto    LocalBoot = "auto"
	LocalBootSanboot LocalBoot = "sanboot"
	LocalBootExit    LocalBoot = "exit"
)

const (
	sanbootDisk = "sanboot --no-describe --drive 0x80"
	exitToNext  = "exit 1"
)

// BootConfig is what the boot decision depends on besides the node.
type BootConfig struct {
	KernelURL      string // PXE_UBUNTU_KERNEL_URL
	InitrdURL      string // PXE_UBUNTU_INITRD_URL
	AutoinstallURL string // PXE_AUTOINSTALL_URL
	KernelArgs     string // PXE_KERNEL_ARGS, appended to the kernel command line
	LocalBoot      LocalBoot
}

// Missing names the reinstall settings that are unset.
func (c BootConfig) Missing() []string {
	var m []string
	if c.KernelURL == "" {
		m = append(m, "PXE_UBUNTU_KERNEL_URL")
	}
	if c.InitrdURL == "" {
		m = append(m, "PXE_UBUNTU_INITRD_URL")
	}
	if c.AutoinstallURL == "" {
		m = append(m, "PXE_AUTOINSTALL_URL")
	}
	return m
}

// Client is what the boot request says about the machine.
type Client struct {
	MAC      store.MAC
	IP       string // may be empty
	Platform string // iPXE's ${platform}: "pcbios" or "efi" (may be empty)
}

// Plan is the outcome of the boot decision: which script, with what data.
type Plan struct {
	Decision string // store.DecisionReinstall, DecisionLocal or DecisionError
	Reason   string // why, in words, for the event log
	Script   string // an assets.Script* name
	Data     any
	// Install is true when serving this plan consumes the reinstall flag.
	Install bool
}

type reinstallData struct{ MAC, KernelURL, InitrdURL, Cmdline string }
type localData struct{ MAC, Command string }
type errorData struct{ Lines []string }

// errorLines builds an error script's data. iPXE's echo expands "${…}" and
// treats "||", "&&", ";" and "#" as script syntax, so every line is reduced
// to characters it prints literally (echoSafe) here, where error lines are
// made, whatever their source.
func errorLines(lines ...string) errorData {
	safe := make([]string, len(lines))
	for i, l := range lines {
		safe[i] = echoSafe(l)
	}
	return errorData{Lines: safe}
}

// Decide is the boot decision: a pure function of the node (as stored,
// before this boot changes it), the client and the configuration.
func Decide(n store.Node, cl Client, c BootConfig) Plan {
	if n.State == store.StateReinstall {
		if missing := c.Missing(); len(missing) > 0 {
			reason := fmt.Sprintf("reinstall requested but %s unset", strings.Join(missing, ", "))
			return Plan{Decision: store.DecisionError, Reason: reason, Script: assets.ScriptError, Data: errorLines(
				string(cl.MAC)+" should reinstall, but the appliance has no installer configured:",
				"set "+strings.Join(missing, " and ")+" on the appliance. The reinstall stays pending")}
		}
		cmdline := "autoinstall ds=nocloud-net;s=" + Substitute(c.AutoinstallURL, cl)
		if c.KernelArgs != "" {
			cmdline += " " + c.KernelArgs
		}
		return Plan{Decision: store.DecisionReinstall, Reason: "reinstall requested", Script: assets.ScriptReinstall, Install: true,
			Data: reinstallData{MAC: string(cl.MAC), KernelURL: Substitute(c.KernelURL, cl), InitrdURL: Substitute(c.InitrdURL, cl), Cmdline: cmdline}}
	}
	cmd, reason := n.LocalBootScript, "node's own local-boot script"
	if cmd == "" {
		cmd, reason = localCommand(c.LocalBoot, cl.Platform)
	}
	return Plan{Decision: store.DecisionLocal, Reason: reason, Script: assets.ScriptLocal, Data: localData{MAC: string(cl.MAC), Command: cmd}}
}

func localCommand(mode LocalBoot, platform string) (cmd, reason string) {
	switch mode {
	case LocalBootSanboot:
		return sanbootDisk, "PXE_LOCAL_BOOT=sanboot"
	case LocalBootExit:
		return exitToNext, "PXE_LOCAL_BOOT=exit"
	}
	if platform == "efi" {
		return exitToNext, "UEFI: exit to the firmware's boot order"
	}
	return sanbootDisk, "BIOS: sanboot the first disk"
}

// Substitute replaces ${mac}, ${mac_hyphen} and ${ip} in an installer URL
// with the client's values, URL-encoded. Every other ${…} is left for iPXE
// to expand on the machine (${uuid}, ${serial}, …). An unknown IP becomes
// the empty string.
//
// Replacing is repeated until no placeholder is left: an empty ${ip} can
// glue its neighbours into a new one ("${${ip}mac}" becomes "${mac}").
// Every pass that changes something removes at least one "$" and the values
// put in contain none ("$" is escaped too, which url.PathEscape leaves), so
// the loop ends.
func Substitute(raw string, cl Client) string {
	if !strings.Contains(raw, "${") {
		return raw
	}
	esc := func(v string) string { return strings.ReplaceAll(url.PathEscape(v), "$", "%24") }
	r := strings.NewReplacer(
		"${mac}", esc(string(cl.MAC)),
		"${mac_hyphen}", esc(cl.MAC.Hyphen()),
		"${ip}", esc(cl.IP),
	)
	for {
		out := r.Replace(raw)
		if out == raw {
			return out
		}
		raw = out
	}
}
