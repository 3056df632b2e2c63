// Package boot is the boot decision and its renderers: a pure function from
// (node as stored, the client's request, the resolved profile, the
// configuration) to a Plan, and pure functions from a Plan to the text a
// loader runs (iPXE here; GRUB for the Secure Boot chain). The HTTP side
// records the boot and sends the text; it decides nothing.
//
// The install lifecycle itself (reinstall → installing → installed |
// failed, tokens, the stall timeout) is a set of pure methods on the stored
// record (store.Node.StartInstall, Report, Stall); Sweeper runs the stall
// rule.
package boot

import (
	"fmt"
	"strings"

	"github.com/pxe-pilot/pxe-pilot/profiles"
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

// Config is what the decision depends on besides the node and its profile.
type Config struct {
	// BaseURL is PXE_BASE_URL, no trailing slash: the install URLs hang
	// off it.
	BaseURL   string
	LocalBoot LocalBoot
}

// Loaders that ask for a decision.
const (
	LoaderIPXE = "ipxe"
	LoaderGRUB = "grub"
)

// Client is what the boot request says about the machine.
type Client struct {
	MAC      store.MAC
	IP       string // may be empty
	Platform string // iPXE's ${platform}: "pcbios" or "efi" (may be empty)
	// Loader is who asks: LoaderIPXE (default) or LoaderGRUB.
	Loader string
}

// Initrd is one initrd to load, under the name the kernel is told.
type Initrd struct{ Name, URL string }

// Plan is the outcome of the decision: what the machine boots, with
// everything rendered, ready for a loader's renderer.
type Plan struct {
	Decision string // store.DecisionReinstall, DecisionLocal or DecisionError
	Reason   string // why, in words, for the event log
	MAC      store.MAC
	// Profile and Rule: the profile chosen and the rule that chose it
	// (empty for a plain local boot, which consults no profile).
	Profile string
	Rule    string
	Kind    profiles.Kind
	// Install is true when serving this plan consumes the reinstall flag
	// (Token is then the new install's token).
	Install bool
	Token   string

	// Kind linux.
	Kernel  string
	Initrds []Initrd
	Cmdline string
	// Kind ipxe: the script body (iPXE only).
	Script string
	// Kind efi.
	EFI  string
	Args string
	// Local: the iPXE command (the node's own, or the platform default).
	LocalCommand string
	// Error: what to tell the machine's console, one line each.
	Lines []string
	// Seed: render the seed's reinstall script byte for byte.
	Seed bool
}

// Decide is the boot decision, a pure function of the node (as stored,
// before this boot changes it), the client, the profiles, the
// configuration and the token a new install would get.
func Decide(n store.Node, cl Client, set *profiles.Set, c Config, token string) Plan {
	if n.State != store.StateReinstall {
		return localPlan(n, cl, c, "")
	}
	res := set.Resolve(&n)
	if res.Err != nil {
		return errorPlan(cl, res, fmt.Sprintf("reinstall requested but %v", res.Err),
			string(cl.MAC)+" should reinstall, but "+res.Err.Error(), "The reinstall stays pending")
	}
	p := res.Profile
	if len(p.Missing) > 0 {
		reason := fmt.Sprintf("reinstall requested but %s unset", strings.Join(p.Missing, ", "))
		return errorPlan(cl, res, reason,
			string(cl.MAC)+" should reinstall, but the appliance has no installer configured:",
			"set "+strings.Join(p.Missing, " and ")+" on the appliance. The reinstall stays pending")
	}
	if p.Kind == profiles.KindLocal {
		return localPlan(n, cl, c, fmt.Sprintf("profile %s (%s) boots local: the reinstall stays pending", res.Name, res.Rule))
	}
	d := TemplateData(n, cl, p, c.BaseURL, token)
	render := func(field string, t *profiles.Template) (string, error) {
		s, err := t.Render(d)
		if err != nil {
			return "", fmt.Errorf("profile %s, field %s: %v", p.Name, field, err)
		}
		// Every field but an iPXE script goes on one line of a loader's
		// script: a line break there would start a command of its own.
		if field != "script" && strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", fmt.Errorf("profile %s, field %s rendered to more than one line (or has control characters); keep it on one line", p.Name, field)
		}
		return s, nil
	}
	plan := Plan{Decision: store.DecisionReinstall, Reason: "reinstall requested", MAC: cl.MAC, Profile: res.Name, Rule: res.Rule,
		Kind: p.Kind, Install: true, Token: token, Seed: p.SeedScript}
	var err error
	switch p.Kind {
	case profiles.KindLinux:
		if plan.Kernel, err = render("kernel", p.Kernel); err != nil {
			break
		}
		for i, t := range p.Initrds {
			var u string
			if u, err = render(fmt.Sprintf("initrd[%d]", i), t); err != nil {
				break
			}
			name := "initrd"
			if i > 0 {
				name = fmt.Sprintf("initrd%d", i)
			}
			plan.Initrds = append(plan.Initrds, Initrd{Name: name, URL: u})
		}
		if err == nil {
			plan.Cmdline, err = render("cmdline", p.Cmdline)
		}
	case profiles.KindIPXE:
		plan.Script, err = render("script", p.Script)
	case profiles.KindEFI:
		if plan.EFI, err = render("efi", p.EFI); err == nil {
			plan.Args, err = render("args", p.Args)
		}
	}
	if err != nil {
		return errorPlan(cl, res, "reinstall requested but "+err.Error(),
			string(cl.MAC)+" should reinstall, but its profile did not render: "+err.Error(), "The reinstall stays pending")
	}
	if cl.Loader == LoaderGRUB {
		// GRUB cannot run every plan iPXE can (an iPXE script, https):
		// refuse here, before the flag is consumed.
		if err := GRUBCheck(plan); err != nil {
			return errorPlan(cl, res, "reinstall requested but "+err.Error(),
				string(cl.MAC)+" should reinstall, but "+err.Error(), "The reinstall stays pending")
		}
	}
	return plan
}

func errorPlan(cl Client, res profiles.Resolution, reason string, lines ...string) Plan {
	return Plan{Decision: store.DecisionError, Reason: reason, MAC: cl.MAC, Profile: res.Name, Rule: res.Rule, Lines: lines}
}

func localPlan(n store.Node, cl Client, c Config, why string) Plan {
	cmd, reason := n.LocalBootScript, "node's own local-boot script"
	if cmd == "" {
		cmd, reason = localCommand(c.LocalBoot, cl.Platform)
	}
	if why != "" {
		reason = why + "; " + reason
	}
	return Plan{Decision: store.DecisionLocal, Reason: reason, MAC: cl.MAC, LocalCommand: cmd}
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

// InstallURL is where an install's files and call-backs live:
// <base>/install/<mac>/<token>/.
func InstallURL(base string, mac store.MAC, token string) string {
	return base + "/install/" + string(mac) + "/" + token + "/"
}

// TemplateData is what a profile's templates see (profiles.Variables).
// Facts come from the machine, so they are reduced to characters that can
// break no command line, script or URL.
func TemplateData(n store.Node, cl Client, p *profiles.Profile, base, token string) profiles.Data {
	files := InstallURL(base, n.MAC, token)
	vars := make(map[string]string, len(p.Vars)+len(n.Vars))
	for k, v := range p.Vars {
		vars[k] = v
	}
	for k, v := range n.Vars {
		vars[k] = v
	}
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return profiles.Data{
		"mac": string(n.MAC), "mac_hyphen": n.MAC.Hyphen(), "ip": cl.IP,
		"uuid": safe(n.Facts.UUID), "serial": safe(n.Facts.Serial), "manufacturer": safe(n.Facts.Manufacturer),
		"product": safe(n.Facts.Product), "platform": safe(n.Facts.Platform), "buildarch": safe(n.Facts.BuildArch),
		"hostname": n.DefaultHostname(), "labels": labels, "vars": vars,
		"base_url": base, "profile": p.Name, "token": token, "files_url": files,
		"installed_url": files + "installed", "failed_url": files + "failed", "progress_url": files + "progress",
	}
}

// safe keeps [A-Za-z0-9._:/+=@,-] and turns anything else into '_'.
func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("._:/+=@,-", c) >= 0:
		default:
			b[i] = '_'
		}
	}
	return string(b)
}
