// Package profiles says what a machine boots when it reinstalls: named boot
// recipes (profiles), groups that pick one by the machine's MAC, hardware
// facts or labels, and a default.
//
// A profile is data: a kind plus templates.
//
//	linux  a kernel URL, one or more initrd URLs and a command line
//	ipxe   an iPXE script (chain to netboot.xyz, a menu, …)
//	efi    an EFI binary (a UKI, a vendor tool) chained with load options
//	local  boot the disk: a reinstall of such a machine stays pending
//
// Any profile can also carry installer configs (Files: user-data,
// preseed.cfg, ks.cfg, ignition.json, …), rendered per node and served by
// the appliance under <base>/install/<mac>/<token>/<name>. Presets fill a
// profile from a few URLs (presets.go). Every template is parsed, and every
// variable it names checked, when the profiles load (ParseTemplate), so a
// typo is a start-up error naming the file, line, profile and field, never
// a boot failure.
//
// Which profile a node gets (Set.Resolve), first rule that applies:
//
//  1. the node's own setting (PUT /nodes/<mac>/profile, pxe-pilot profile);
//  2. the first group, in file order, whose selector matches;
//  3. the default: the file's "default:", else the profile built from the
//     seed's variables (PXE_UBUNTU_KERNEL_URL, PXE_UBUNTU_INITRD_URL,
//     PXE_AUTOINSTALL_URL, PXE_KERNEL_ARGS), named "default".
//
// The rule that won is recorded in the boot event and shown in the script.
package profiles

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// Kind is what a profile boots.
type Kind string

// The profile kinds.
const (
	KindLinux Kind = "linux"
	KindIPXE  Kind = "ipxe"
	KindEFI   Kind = "efi"
	KindLocal Kind = "local"
)

// Kinds lists every kind.
var Kinds = []Kind{KindLinux, KindIPXE, KindEFI, KindLocal}

// Loaders a UEFI machine can be given (PXE_UEFI_LOADER, profile "loader").
const (
	LoaderIPXE = "ipxe"
	LoaderShim = "shim"
)

// Profile is one boot recipe. Build profiles with Load or SeedProfile.
type Profile struct {
	Name   string
	Kind   Kind
	Preset string // the preset it was made from, if any
	// Source says where it was defined: "profiles.yaml:12" or "environment".
	Source string

	// linux
	Kernel  *Template
	Initrds []*Template
	Cmdline *Template
	// ipxe: the script body, without the #!ipxe line.
	Script *Template
	// efi: the binary and its load options.
	EFI  *Template
	Args *Template

	// Files are installer configs served under files_url, by name.
	Files map[string]*Template
	// Vars are the profile's own template values (.vars), under the
	// node's.
	Vars map[string]string
	// Loader for UEFI x86_64 machines: "" (the appliance's default),
	// LoaderIPXE or LoaderShim.
	Loader string

	// Missing names the seed variables the default profile lacks; a
	// profile with Missing set cannot be served (the reinstall stays
	// pending and the machine is told why).
	Missing []string
	// SeedScript marks the default profile made from the seed's
	// variables: its iPXE script is the seed's, byte for byte.
	SeedScript bool
}

// FileNames lists the profile's files, sorted.
func (p *Profile) FileNames() []string {
	names := make([]string, 0, len(p.Files))
	for n := range p.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Selector matches nodes. Every field given must match (AND); within a
// list, any entry (OR). Text fields are shell patterns (path.Match: "Dell*",
// "PowerEdge R?40"), compared case-insensitively with the facts iPXE
// reported.
type Selector struct {
	MACs         []store.MAC       `json:"mac,omitempty"`
	MACPrefixes  []string          `json:"mac_prefix,omitempty"` // "52:54:00", lowercase, colons
	Manufacturer string            `json:"manufacturer,omitempty"`
	Product      string            `json:"product,omitempty"`
	Platform     string            `json:"platform,omitempty"`
	BuildArch    string            `json:"buildarch,omitempty"`
	Serial       string            `json:"serial,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// Empty reports whether the selector has no condition (it would match all).
func (s Selector) Empty() bool {
	return len(s.MACs) == 0 && len(s.MACPrefixes) == 0 && s.Manufacturer == "" && s.Product == "" &&
		s.Platform == "" && s.BuildArch == "" && s.Serial == "" && len(s.Labels) == 0
}

// Match reports whether n satisfies every condition of s.
func (s Selector) Match(n *store.Node) bool { return s.match(n, lowerFacts(n.Facts)) }

// lowerFacts is the facts in lower case, computed once per resolution.
func lowerFacts(f store.Facts) [5]string {
	return [5]string{strings.ToLower(f.Manufacturer), strings.ToLower(f.Product), strings.ToLower(f.Platform),
		strings.ToLower(f.BuildArch), strings.ToLower(f.Serial)}
}

func (s Selector) match(n *store.Node, facts [5]string) bool {
	if len(s.MACs) > 0 && !containsMAC(s.MACs, n.MAC) {
		return false
	}
	if len(s.MACPrefixes) > 0 {
		ok := false
		for _, p := range s.MACPrefixes {
			if strings.HasPrefix(string(n.MAC), p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i, pat := range [...]string{s.Manufacturer, s.Product, s.Platform, s.BuildArch, s.Serial} {
		if pat == "" {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(pat), facts[i]); !ok {
			return false
		}
	}
	for k, v := range s.Labels {
		got, ok := n.Labels[k]
		if !ok {
			return false
		}
		if v != "*" && v != got {
			return false
		}
	}
	return true
}

func containsMAC(list []store.MAC, m store.MAC) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// Group gives the profile Profile to the nodes its selector matches.
type Group struct {
	Name    string
	Profile string
	Match   Selector
	Source  string // "profiles.yaml:30"
	macs    map[store.MAC]struct{}
}

// Set is a loaded, validated profile configuration. It is immutable; a
// reload builds a new Set.
type Set struct {
	Profiles map[string]*Profile
	Groups   []Group
	Default  string // the default profile's name
	// Path is the file the set was loaded from ("" when none).
	Path string
}

// Rules for Resolution.Rule.
const (
	RuleNode    = "node setting"
	RuleDefault = "default"
)

// Resolution is which profile a node gets and why.
type Resolution struct {
	Profile *Profile // nil when the chosen name is not defined (Err)
	Name    string
	// Rule: RuleNode, "group <name> (<file>:<line>)" or RuleDefault.
	Rule string
	// Err says why no profile could be used (a node set to a profile the
	// file no longer defines).
	Err error
}

// Resolve picks n's profile; see the package doc for the order.
func (s *Set) Resolve(n *store.Node) Resolution {
	if n.Profile != "" {
		return s.named(n.Profile, RuleNode)
	}
	facts := lowerFacts(n.Facts)
	for i := range s.Groups {
		if g := &s.Groups[i]; g.matches(n, facts) {
			return s.named(g.Profile, g.rule())
		}
	}
	return s.named(s.Default, RuleDefault)
}

// matches is Match with the group's MAC list as a set (a group may list
// thousands of machines).
func (g *Group) matches(n *store.Node, facts [5]string) bool {
	if g.macs != nil {
		if _, ok := g.macs[n.MAC]; !ok {
			return false
		}
		sel := g.Match
		sel.MACs = nil
		return sel.match(n, facts)
	}
	return g.Match.match(n, facts)
}

func (g *Group) rule() string { return fmt.Sprintf("group %s (%s)", g.Name, g.Source) }

func (s *Set) named(name, rule string) Resolution {
	p := s.Profiles[name]
	if p == nil {
		return Resolution{Name: name, Rule: rule, Err: fmt.Errorf("profile %q (chosen by %s) is not defined; define it in %s or assign another profile", name, rule, s.where())}
	}
	return Resolution{Profile: p, Name: name, Rule: rule}
}

func (s *Set) where() string {
	if s.Path == "" {
		return "a profiles file (PXE_PROFILES_FILE)"
	}
	return s.Path
}

// Names lists the profile names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.Profiles))
	for n := range s.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// index turns long MAC lists into sets.
func (s *Set) index() {
	for i := range s.Groups {
		g := &s.Groups[i]
		if len(g.Match.MACs) > 4 {
			g.macs = make(map[store.MAC]struct{}, len(g.Match.MACs))
			for _, m := range g.Match.MACs {
				g.macs[m] = struct{}{}
			}
		}
	}
}
