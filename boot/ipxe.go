package boot

import (
	"strings"
	"unicode/utf8"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// IPXE renders a plan as the iPXE script the machine runs. Every script
// ends in a path that leaves iPXE for the firmware's next boot device. The
// default profile made from the seed's variables renders exactly the
// seed's script; other profiles say in a comment which rule chose them.
func IPXE(p Plan) ([]byte, error) {
	name, data := IPXEScript(p)
	return assets.Script(name, data)
}

// IPXEScript is the template and data IPXE renders.
func IPXEScript(p Plan) (string, any) {
	mac := string(p.MAC)
	switch {
	case p.Decision == store.DecisionLocal:
		return assets.ScriptLocal, struct{ MAC, Command string }{mac, p.LocalCommand}
	case p.Decision != store.DecisionReinstall:
		return assets.ScriptError, ErrorLines(p.Lines...)
	case p.Seed && len(p.Initrds) == 1:
		return assets.ScriptReinstall, struct{ MAC, KernelURL, InitrdURL, Cmdline string }{mac, p.Kernel, p.Initrds[0].URL, p.Cmdline}
	}
	head := struct {
		MAC, Profile, Rule, Kernel, Cmdline, Script, EFI, Args string
		Initrds                                                []Initrd
	}{mac, p.Profile, echoSafe(p.Rule), p.Kernel, p.Cmdline, p.Script, p.EFI, p.Args, p.Initrds}
	switch p.Kind {
	case "ipxe":
		return assets.ScriptIPXE, head
	case "efi":
		return assets.ScriptEFI, head
	}
	return assets.ScriptLinux, head
}

// ErrorData is an error script's data.
type ErrorData struct{ Lines []string }

// ErrorLines builds an error script's data. iPXE's echo expands "${…}" and
// treats "||", "&&", ";" and "#" as script syntax, so every line is reduced
// to characters it prints literally (echoSafe) here, where error lines are
// made, whatever their source.
func ErrorLines(lines ...string) ErrorData {
	safe := make([]string, len(lines))
	for i, l := range lines {
		safe[i] = echoSafe(l)
	}
	return ErrorData{Lines: safe}
}

// echoSafe keeps what iPXE's echo prints literally. iPXE expands "${…}"
// anywhere on a line, and treats "||", "&&" and ";" standing as words as
// command separators and "#" as a comment, so all of "$ { } | & ; # ' \""
// are replaced, except the exact "${mac}" of the "iPXE must call" hint: that
// is a deliberate expansion, and the one setting it could reach is the
// machine's own MAC. (The hint used to switch on keeping every "${" for the
// whole line when the line merely contained the hint's text, which a client
// could put in its own bad MAC.)
func echoSafe(s string) string {
	const keep = " .,:_/=()@+-?%<>"
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "${mac}") {
			b.WriteString("${mac}")
			i += len("${mac}")
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(keep, r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
