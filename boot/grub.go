package boot

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// GRUB renders a plan as the GRUB script Debian's signed network GRUB runs
// (the Secure Boot chain: shim → GRUB → this). It is the sibling of IPXE:
// the same plan, the same words on the console ("reinstalls now", "boots
// from local disk"), and every script ends by booting the local disk or
// leaving GRUB (grubLeave); a script that ended without it would drop GRUB
// to an empty menu and its prompt.
//
// GRUB script syntax differs from iPXE's: "$" expands variables, ";"
// separates commands, and "'", "\"" and "\\" quote. Every value the plan
// carries (URLs, kernel arguments, messages) is therefore written as one
// single-quoted word per kernel argument (grubWord), in which GRUB gives no
// character a meaning; "ds=nocloud-net;s=http://…/" reaches the kernel
// intact. GRUB's linux and chainloader commands then join the arguments
// into the kernel's command line their own way (grub_create_loader_cmdline
// in Debian's 2.06): an argument with a space is wrapped in double quotes,
// and every '"', "'" and "\\" gets a backslash before it. So the command
// line is split into arguments as the kernel splits it (kernelArgs: double
// quotes group words and are dropped), which GRUB's quoting gives back to
// the kernel as the same values iPXE passes, and a command line with "'" or
// "\\" is refused for GRUB (GRUBCheck): the kernel would get them with a
// backslash (measured by linking Debian's linux.mod).
//
// GRUB fetches files by device, not URL: http://host:port/path becomes
// (http,host:port)/path and tftp://host/path (tftp,host)/path. GRUB has no
// https. Decide refuses, for the GRUB loader, plans GRUB cannot carry out
// (GRUBCheck), so that a reinstall is never consumed by a script that
// cannot boot.
func GRUB(p Plan) ([]byte, error) {
	var b bytes.Buffer
	mac := string(p.MAC)
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	echo := func(msg string) { line("echo %s", grubWord("PXE Pilot: "+msg)) }
	switch {
	case p.Decision == store.DecisionLocal:
		line("# PXE Pilot: %s boots from its local disk (GRUB)", comment(mac))
		echo(mac + " boots from local disk")
		if c := p.LocalCommand; c != "" && c != exitToNext && c != sanbootDisk {
			// The node's own iPXE command has no GRUB form: GRUB boots
			// the first local disk it finds instead.
			echo("this node's local-boot command (" + c + ") is for iPXE; GRUB boots the first local disk instead")
		}
	case p.Decision != store.DecisionReinstall:
		line("# PXE Pilot could not decide how to boot this machine.")
		for _, l := range p.Lines {
			echo(l)
		}
		echo("trying the next boot device")
		line("sleep 3")
	default:
		if err := GRUBCheck(p); err != nil {
			return nil, err
		}
		line("# PXE Pilot: reinstall %s (GRUB)", comment(mac))
		line("# profile %s, chosen by %s", comment(p.Profile), comment(p.Rule))
		switch p.Kind {
		case profiles.KindEFI:
			echo(mac + " chains " + p.EFI + " (profile " + p.Profile + ")")
			dev, _ := grubPath(p.EFI)
			line("chainloader %s", grubArgs(dev, p.Args))
		default:
			echo(mac + " reinstalls now with profile " + p.Profile)
			dev, _ := grubPath(p.Kernel)
			line("linux %s", grubArgs(dev, p.Cmdline))
			if len(p.Initrds) > 0 {
				devs := make([]string, len(p.Initrds))
				for i, in := range p.Initrds {
					devs[i], _ = grubPath(in.URL)
				}
				line("initrd %s", grubArgs(strings.Join(devs, " "), ""))
			}
		}
		line("boot")
		echo("loading profile " + p.Profile + " for " + mac + " failed; trying the next boot device")
		line("sleep 3")
	}
	b.WriteString(grubLeave)
	return b.Bytes(), nil
}

// grubLeave ends every script: boot the first local disk's EFI loader at
// the removable-media path (BOOTX64.EFI, or BOOTAA64.EFI for an arm64 GRUB,
// which ProxyDHCP's shimaa64.efi starts), else leave GRUB. Measured with OVMF: GRUB 2.06's
// "exit" always returns EFI_SUCCESS, which EDK2 answers with its boot
// manager menu instead of the next boot entry (iPXE's "exit 1" has no
// GRUB form), so a plain exit would leave the machine waiting at the menu.
// Under Secure Boot, GRUB chainloads only a signed loader (an installed
// system's shim is). The root is set to the disk first: GRUB's chainloader
// builds the loaded image's device path from $root, and a shim started with
// the network device's path finds no file system next to itself
// ("Failed to find fs: Unsupported", measured).
const grubLeave = `set pxe_pilot_efi=/EFI/BOOT/BOOTX64.EFI
if [ "$grub_cpu" = arm64 ]
then
set pxe_pilot_efi=/EFI/BOOT/BOOTAA64.EFI
fi
if search --no-floppy --file --set=pxe_pilot_disk $pxe_pilot_efi
then
echo 'PXE Pilot: starting the local disk'\''s EFI loader'
set root=$pxe_pilot_disk
chainloader $pxe_pilot_efi
boot
fi
echo 'PXE Pilot: no bootable local disk found; leaving GRUB for the firmware'
exit
`

// GRUBCheck says why GRUB cannot carry out a reinstall plan, or nil.
func GRUBCheck(p Plan) error {
	var urls []string
	switch p.Kind {
	case profiles.KindIPXE:
		return fmt.Errorf("profile %s is an iPXE script, which GRUB (the Secure Boot loader) cannot run; give this machine a linux or efi profile, or the ipxe loader", p.Profile)
	case profiles.KindEFI:
		urls = []string{p.EFI}
	case profiles.KindLinux:
		urls = []string{p.Kernel}
		for _, in := range p.Initrds {
			urls = append(urls, in.URL)
		}
	}
	for _, u := range urls {
		if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
			continue // relayed by the appliance (Debian's GRUB has no http)
		}
		if _, err := grubPath(u); err != nil {
			return fmt.Errorf("profile %s: %v", p.Profile, err)
		}
	}
	for _, s := range append(urls, p.Cmdline, p.Args) {
		if strings.Contains(s, "${") {
			return fmt.Errorf("profile %s uses an iPXE setting in %q, which GRUB cannot expand; use the template variables instead", p.Profile, Redact(s))
		}
	}
	for _, s := range []string{p.Cmdline, p.Args} {
		if strings.ContainsAny(s, `'\`) {
			return fmt.Errorf("profile %s: GRUB puts a backslash before every ' and \\ of a kernel argument, so %q would reach the kernel changed; write it without them, or give this machine the ipxe loader", p.Profile, Redact(s))
		}
		if strings.Count(s, `"`)%2 != 0 {
			return fmt.Errorf("profile %s: %q has an unbalanced double quote", p.Profile, Redact(s))
		}
	}
	return nil
}

// kernelArgs splits a command line into arguments as the Linux kernel does
// (next_arg in kernel/params.c): at white space outside double quotes, the
// quotes themselves dropped. key="a b" and "key=a b" are both the argument
// key=a b, which GRUB hands the kernel as "key=a b": the value a b, as iPXE
// passes it.
func kernelArgs(s string) []string {
	var (
		args   []string
		cur    strings.Builder
		quoted bool
		any    bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quoted, any = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if any {
				args = append(args, cur.String())
				cur.Reset()
				any = false
			}
		default:
			cur.WriteRune(r)
			any = true
		}
	}
	if any {
		args = append(args, cur.String())
	}
	return args
}

// userinfo matches the password of a URL written anywhere in a text.
var userinfo = regexp.MustCompile(`(://[^/@\s:'"]*):[^/@\s'"]*@`)

// Redact hides the passwords of the URLs in s (a URL, or a command line
// holding some), as url.URL.Redacted does, for messages and events.
func Redact(s string) string {
	return userinfo.ReplaceAllString(s, "${1}:xxxxx@")
}

// grubPath turns a URL into GRUB's (proto,host)/path. An absolute path
// ("/grub/node/…", the appliance's relay) stays a path on GRUB's root, the
// server GRUB was loaded from. https:// has no GRUB form: the HTTP side
// relays such URLs (and http:// ones, since Debian's signed GRUB has no
// http module) before rendering.
func grubPath(raw string) (string, error) {
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") && !strings.ContainsAny(raw, " '\n") {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tftp") || u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("GRUB can only boot http(s):// and tftp:// URLs with a host, not %q", Redact(raw))
	}
	if u.Scheme == "https" {
		return "", fmt.Errorf("GRUB has no https; %q must be relayed (the appliance's /grub/node/ folder)", Redact(raw))
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return "(" + u.Scheme + "," + u.Host + ")" + p, nil
}

// grubArgs quotes each word of first (white-space-separated devices for
// initrd) and each kernel argument of rest (kernelArgs).
func grubArgs(first, rest string) string {
	words := strings.Fields(first)
	words = append(words, kernelArgs(rest)...)
	for i, w := range words {
		words[i] = grubWord(w)
	}
	return strings.Join(words, " ")
}

// grubWord is s as one GRUB word: single-quoted (nothing inside is
// special), a single quote written as '\” and control characters dropped.
func grubWord(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'':
			b.WriteString(`'\''`)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// comment keeps a value on its comment line.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}
