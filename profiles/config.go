package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// The profiles file (PXE_PROFILES_FILE), YAML:
//
//	default: ubuntu              # for machines no rule picks (optional)
//	profiles:
//	  ubuntu:
//	    preset: ubuntu-autoinstall
//	    kernel: http://mirror/ubuntu/casper/vmlinuz
//	    initrd: http://mirror/ubuntu/casper/initrd   # or a list
//	    iso: http://mirror/ubuntu/ubuntu-24.04-live-server-amd64.iso
//	    args: console=ttyS0
//	    vars: {password_hash: "$6$…"}
//	    files:                     # override or add installer configs
//	      user-data: |
//	        #cloud-config
//	        …
//	  memtest: {kind: linux, kernel: http://…/memtest64.efi}
//	  menu:    {kind: ipxe, script: "chain --autofree https://boot.netboot.xyz"}
//	  disk:    {kind: local}
//	groups:                        # first match wins, in this order
//	  - name: rack1
//	    profile: debian
//	    match: {mac_prefix: ["52:54:00"], manufacturer: "QEMU*", labels: {rack: r1}}
type rawFile struct {
	Default  string                `yaml:"default"`
	Profiles map[string]rawProfile `yaml:"profiles"`
	Groups   []rawGroup            `yaml:"groups"`
}

type rawProfile struct {
	Kind    string            `yaml:"kind"`
	Preset  string            `yaml:"preset"`
	Kernel  string            `yaml:"kernel"`
	Initrd  stringList        `yaml:"initrd"`
	Cmdline string            `yaml:"cmdline"`
	Args    string            `yaml:"args"`
	Script  string            `yaml:"script"`
	EFI     string            `yaml:"efi"`
	ISO     string            `yaml:"iso"`
	Repo    string            `yaml:"repo"`
	Rootfs  string            `yaml:"rootfs"`
	Mirror  string            `yaml:"mirror"`
	Loader  string            `yaml:"loader"`
	Vars    map[string]string `yaml:"vars"`
	Files   map[string]string `yaml:"files"`
}

type rawGroup struct {
	Name    string      `yaml:"name"`
	Profile string      `yaml:"profile"`
	Match   rawSelector `yaml:"match"`
}

type rawSelector struct {
	MAC          stringList        `yaml:"mac"`
	MACPrefix    stringList        `yaml:"mac_prefix"`
	Manufacturer string            `yaml:"manufacturer"`
	Product      string            `yaml:"product"`
	Platform     string            `yaml:"platform"`
	BuildArch    string            `yaml:"buildarch"`
	Serial       string            `yaml:"serial"`
	Labels       map[string]string `yaml:"labels"`
}

// stringList takes a string or a list of strings.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = []string{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// Seed is the default profile's source: the seed's variables.
type Seed struct {
	KernelURL      string // PXE_UBUNTU_KERNEL_URL
	InitrdURL      string // PXE_UBUNTU_INITRD_URL
	AutoinstallURL string // PXE_AUTOINSTALL_URL
	KernelArgs     string // PXE_KERNEL_ARGS
}

// DefaultName is the name of the profile made from the seed's variables.
const DefaultName = "default"

// SeedProfile is the profile the seed's variables define: the seed's
// autoinstall command line, with ${mac}, ${mac_hyphen} and ${ip}
// substituted in the URLs. Missing lists the variables that are unset.
func SeedProfile(s Seed) *Profile {
	p := &Profile{Name: DefaultName, Kind: KindLinux, Source: "environment", SeedScript: true}
	for _, v := range [...]struct{ name, val string }{
		{"PXE_UBUNTU_KERNEL_URL", s.KernelURL}, {"PXE_UBUNTU_INITRD_URL", s.InitrdURL}, {"PXE_AUTOINSTALL_URL", s.AutoinstallURL},
	} {
		if v.val == "" {
			p.Missing = append(p.Missing, v.name)
		}
	}
	p.Kernel = seedTemplate(s.KernelURL)
	p.Initrds = []*Template{seedTemplate(s.InitrdURL)}
	p.Cmdline = seedTemplate("autoinstall ds=nocloud-net;s=" + s.AutoinstallURL)
	if s.KernelArgs != "" {
		// PXE_KERNEL_ARGS is appended as is: the seed never substituted in
		// it, and any ${…} there is for iPXE.
		p.Cmdline.suffix = " " + s.KernelArgs
	}
	return p
}

// Load builds a Set: the seed's default profile plus, when path is not
// empty, the profiles file. Every error names the file and line and says
// what to change.
func Load(path string, seed Seed) (*Set, error) {
	set := &Set{Profiles: map[string]*Profile{DefaultName: SeedProfile(seed)}, Default: DefaultName}
	if path == "" {
		return set, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profiles file %s cannot be read (check PXE_PROFILES_FILE): %w", path, err)
	}
	if err := parseFile(set, path, data); err != nil {
		return nil, err
	}
	set.Path = path
	return set, nil
}

// Parse is Load from bytes (name stands for the file in errors).
func Parse(name string, data []byte, seed Seed) (*Set, error) {
	set := &Set{Profiles: map[string]*Profile{DefaultName: SeedProfile(seed)}, Default: DefaultName, Path: name}
	if err := parseFile(set, name, data); err != nil {
		return nil, err
	}
	return set, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)

func parseFile(set *Set, file string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %v", file, cleanYAML(err))
	}
	var raw rawFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %v (see the profiles file format in the README)", file, cleanYAML(err))
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return fmt.Errorf("%s: a second YAML document (after ---) is not read, and it does not parse either: %v; put everything in one document", file, cleanYAML(err))
	default:
		return fmt.Errorf("%s:%d: a second YAML document (after ---) is not read: put everything in one document", file, more.Line)
	}
	lines := lineIndex(&doc)
	at := func(keys ...string) string { return fmt.Sprintf("%s:%d", file, lines[strings.Join(keys, "/")]) }

	var errs []string
	names := make([]string, 0, len(raw.Profiles))
	for n := range raw.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		where := at("profiles", name)
		if !nameRE.MatchString(name) {
			errs = append(errs, fmt.Sprintf("%s: profile name %q: use 1 to 63 lowercase letters, digits, '.', '_' or '-'", where, name))
			continue
		}
		if name == DefaultName {
			errs = append(errs, fmt.Sprintf("%s: profile name %q is taken by the profile the PXE_UBUNTU_* variables define; pick another name and point \"default:\" at it", where, name))
			continue
		}
		p, err := build(name, raw.Profiles[name])
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: profile %s: %v", where, name, err))
			continue
		}
		p.Source = where
		set.Profiles[name] = p
	}
	if raw.Default != "" {
		if set.Profiles[raw.Default] == nil {
			errs = append(errs, fmt.Sprintf("%s: default: profile %q is not defined (defined: %s)", at("default"), raw.Default, strings.Join(set.Names(), ", ")))
		}
		set.Default = raw.Default
	}
	seen := map[string]bool{}
	for i, g := range raw.Groups {
		where := at("groups", fmt.Sprint(i))
		grp, err := buildGroup(g, set)
		if err == nil && seen[g.Name] {
			err = fmt.Errorf("the name %q is used twice", g.Name)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: group %d (%s): %v", where, i+1, g.Name, err))
			continue
		}
		seen[g.Name] = true
		grp.Source = where
		set.Groups = append(set.Groups, grp)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	set.index()
	return nil
}

func cleanYAML(err error) string { return strings.TrimPrefix(err.Error(), "yaml: ") }

// lineIndex maps "profiles/<name>", "groups/<i>" and "default" to lines.
func lineIndex(doc *yaml.Node) map[string]int {
	out := map[string]int{}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return out
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		out[k.Value] = k.Line
		switch {
		case k.Value == "profiles" && v.Kind == yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				out["profiles/"+v.Content[j].Value] = v.Content[j].Line
			}
		case k.Value == "groups" && v.Kind == yaml.SequenceNode:
			for j, g := range v.Content {
				out[fmt.Sprintf("groups/%d", j)] = g.Line
			}
		}
	}
	return out
}

func build(name string, r rawProfile) (*Profile, error) {
	p := &Profile{Name: name, Preset: r.Preset, Vars: r.Vars, Files: map[string]*Template{}}
	for k, v := range r.Vars {
		if err := store.ValidateLabel(k, v); err != nil {
			if k == "password_hash" && !strings.ContainsAny(v, " \t\n'\"\\") {
				continue // crypt(3) hashes have '$'; they go into config files, not command lines
			}
			return nil, fmt.Errorf("vars: %v", err)
		}
	}
	switch r.Loader {
	case "", LoaderIPXE, LoaderShim:
		p.Loader = r.Loader
	default:
		return nil, fmt.Errorf("loader %q: use %q or %q (or leave it out for PXE_UEFI_LOADER)", r.Loader, LoaderIPXE, LoaderShim)
	}
	field := func(f string) string { return fmt.Sprintf("field %s", f) }
	if err := unusedFields(r); err != nil {
		return nil, err
	}
	urls := []struct{ name, src string }{{"kernel", r.Kernel}, {"efi", r.EFI}, {"iso", r.ISO}, {"repo", r.Repo}, {"rootfs", r.Rootfs}}
	for i, u := range r.Initrd {
		urls = append(urls, struct{ name, src string }{fmt.Sprintf("initrd[%d]", i), u})
	}
	for _, u := range urls {
		if err := checkURL(u.src); err != nil {
			return nil, fmt.Errorf("%s: %v", field(u.name), err)
		}
	}
	var cmdline string
	var files map[string]string
	if r.Preset != "" {
		pr, ok := Presets[r.Preset]
		if !ok {
			return nil, fmt.Errorf("preset %q is not known (known: %s)", r.Preset, strings.Join(PresetNames(), ", "))
		}
		if r.Kind != "" && r.Kind != string(KindLinux) {
			return nil, fmt.Errorf("kind %q does not go with a preset (presets are kind linux); leave kind out", r.Kind)
		}
		if r.Cmdline != "" {
			return nil, fmt.Errorf("cmdline is set by preset %s; put extra arguments in args", r.Preset)
		}
		var err error
		cmdline, files, err = pr.build(Params{Kernel: r.Kernel, Initrd: r.Initrd, ISO: r.ISO, Repo: r.Repo, Rootfs: r.Rootfs, Mirror: r.Mirror, Args: r.Args})
		if err != nil {
			return nil, fmt.Errorf("preset %s: %v", r.Preset, err)
		}
		if pr.needsPassword && r.Vars["password_hash"] == "" && !overridesAll(r.Files, files) {
			return nil, fmt.Errorf("preset %s: set vars.password_hash (a crypt(3) hash: openssl passwd -6) or give your own files (%s)", r.Preset, strings.Join(sortedKeys(files), ", "))
		}
		r.Kind = string(KindLinux)
	} else {
		cmdline = r.Cmdline
		if r.Args != "" && r.Kind == string(KindLinux) {
			cmdline = strings.TrimSpace(cmdline + " " + r.Args)
		}
	}
	p.Kind = Kind(r.Kind)
	var err error
	switch p.Kind {
	case KindLinux:
		if r.Kernel == "" {
			return nil, errors.New("kernel is required for kind linux (the kernel's URL)")
		}
		if r.Script != "" || r.EFI != "" {
			return nil, errors.New("script and efi do not go with kind linux")
		}
		if p.Kernel, err = ParseTemplate(field("kernel"), r.Kernel); err != nil {
			return nil, err
		}
		for i, u := range r.Initrd {
			t, err := ParseTemplate(field(fmt.Sprintf("initrd[%d]", i)), u)
			if err != nil {
				return nil, err
			}
			p.Initrds = append(p.Initrds, t)
		}
		if p.Cmdline, err = ParseTemplate(field("cmdline"), cmdline); err != nil {
			return nil, err
		}
	case KindIPXE:
		if r.Script == "" {
			return nil, errors.New("script is required for kind ipxe (the iPXE commands to run)")
		}
		if p.Script, err = ParseTemplate(field("script"), strings.TrimPrefix(r.Script, "#!ipxe\n")); err != nil {
			return nil, err
		}
	case KindEFI:
		if r.EFI == "" {
			return nil, errors.New("efi is required for kind efi (the EFI binary's URL)")
		}
		if p.EFI, err = ParseTemplate(field("efi"), r.EFI); err != nil {
			return nil, err
		}
		if p.Args, err = ParseTemplate(field("args"), r.Args); err != nil {
			return nil, err
		}
	case KindLocal:
	case "":
		return nil, fmt.Errorf("give a preset (%s) or a kind (linux, ipxe, efi, local)", strings.Join(PresetNames(), ", "))
	default:
		return nil, fmt.Errorf("kind %q is not known: use linux, ipxe, efi or local", r.Kind)
	}
	for k, v := range r.Files {
		if files == nil {
			files = map[string]string{}
		}
		files[k] = v
	}
	for name, src := range files {
		if !fileNameRE.MatchString(name) {
			return nil, fmt.Errorf("files: name %q: use 1 to 64 letters, digits, '.', '_' or '-' (it becomes a URL path part)", name)
		}
		t, err := ParseTemplate(field("files."+name), src)
		if err != nil {
			return nil, err
		}
		p.Files[name] = t
	}
	return p, nil
}

var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func overridesAll(user, preset map[string]string) bool {
	for k := range preset {
		if _, ok := user[k]; !ok && k != "meta-data" && k != "vendor-data" {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

func buildGroup(g rawGroup, set *Set) (Group, error) {
	if !nameRE.MatchString(g.Name) {
		return Group{}, fmt.Errorf("name %q: use 1 to 63 lowercase letters, digits, '.', '_' or '-'", g.Name)
	}
	if set.Profiles[g.Profile] == nil {
		return Group{}, fmt.Errorf("profile %q is not defined (defined: %s)", g.Profile, strings.Join(set.Names(), ", "))
	}
	m := g.Match
	lc := strings.ToLower // patterns compare case-insensitively; lowered once here
	sel := Selector{Manufacturer: lc(m.Manufacturer), Product: lc(m.Product), Platform: lc(m.Platform), BuildArch: lc(m.BuildArch), Serial: lc(m.Serial), Labels: m.Labels}
	for _, raw := range m.MAC {
		mac, err := store.ParseMAC(raw)
		if err != nil {
			return Group{}, fmt.Errorf("match.mac: %v", err)
		}
		sel.MACs = append(sel.MACs, mac)
	}
	for _, raw := range m.MACPrefix {
		p, err := macPrefix(raw)
		if err != nil {
			return Group{}, err
		}
		sel.MACPrefixes = append(sel.MACPrefixes, p)
	}
	for _, pat := range []string{m.Manufacturer, m.Product, m.Platform, m.BuildArch, m.Serial} {
		if _, err := path.Match(pat, ""); err != nil {
			return Group{}, fmt.Errorf("match: pattern %q is malformed: %v", pat, err)
		}
	}
	for k, v := range m.Labels {
		if v == "*" { // any value; the key must still be one a node can carry
			v = ""
		}
		if err := store.ValidateLabel(k, v); err != nil {
			return Group{}, fmt.Errorf("match.labels: %v", err)
		}
	}
	if sel.Empty() {
		return Group{}, errors.New("match is empty, so it would take every machine; say what to match (mac, mac_prefix, manufacturer, product, platform, buildarch, serial, labels) or use default:")
	}
	return Group{Name: g.Name, Profile: g.Profile, Match: sel}, nil
}

var prefixRE = regexp.MustCompile(`^[0-9a-f]{2}([:-][0-9a-f]{2}){0,5}$`)

// macPrefix normalises "52:54:00", "52-54-00" (any case) to "52:54:00".
func macPrefix(raw string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(raw))
	if !prefixRE.MatchString(p) {
		return "", fmt.Errorf("match.mac_prefix %q: give whole bytes, e.g. 52:54:00", raw)
	}
	return strings.ReplaceAll(p, "-", ":"), nil
}

// urlRE is what a URL field's text outside its {{…}} actions must look
// like: a scheme iPXE fetches (http, https, tftp, ftp, nfs, file), then no white space.
var urlRE = regexp.MustCompile(`^(?i:https?|tftp|ftp|nfs|file)://[^\s]+$`)

// checkURL refuses a URL field that cannot be fetched whatever the node
// (no scheme, a space): the boot would consume the reinstall flag on a
// script that cannot load its kernel. A field that starts with an action
// ("{{.vars.kernel}}") is left to the node's values.
func checkURL(src string) error {
	if src == "" || strings.HasPrefix(src, "{{") {
		return nil
	}
	text := actionRE.ReplaceAllString(src, "x")
	if !urlRE.MatchString(text) {
		return fmt.Errorf("%q is not a URL that can be fetched: give an absolute URL (http://, https://, tftp://, ftp://, nfs:// or file://), without spaces (a {{…}} variable may fill in parts)", src)
	}
	return nil
}

// actionRE matches a template action, for checkURL.
var actionRE = regexp.MustCompile(`\{\{.*?\}\}`)

// unusedFields refuses a field the profile's kind or preset does not read:
// loaded and ignored, it looked like a setting that took effect (a kind efi
// profile's cmdline, a preset's param another preset reads, iPXE's script
// with loader shim, which GRUB cannot run).
func unusedFields(r rawProfile) error {
	set := map[string]bool{"kernel": r.Kernel != "", "initrd": len(r.Initrd) > 0, "cmdline": r.Cmdline != "", "args": r.Args != "",
		"script": r.Script != "", "efi": r.EFI != "", "iso": r.ISO != "", "repo": r.Repo != "", "rootfs": r.Rootfs != "", "mirror": r.Mirror != ""}
	used := map[string]bool{}
	what := ""
	if pr, ok := Presets[r.Preset]; ok {
		what = "preset " + r.Preset
		for _, f := range []string{"kernel", "initrd", "args", "cmdline", pr.param} { // cmdline: refused below, with its own words
			used[f] = true
		}
	} else {
		what = "kind " + r.Kind
		switch Kind(r.Kind) {
		case KindLinux:
			used["kernel"], used["initrd"], used["cmdline"], used["args"] = true, true, true, true
		case KindIPXE:
			used["script"] = true
			if r.Loader == LoaderShim {
				return fmt.Errorf("loader shim does not go with kind ipxe: Secure Boot runs GRUB, which cannot run an iPXE script; use loader ipxe or another kind")
			}
		case KindEFI:
			used["efi"], used["args"] = true, true
		case KindLocal:
		default:
			return nil // the kind itself is refused later, with the kinds known
		}
	}
	var unused []string
	for _, f := range []string{"kernel", "initrd", "cmdline", "args", "script", "efi", "iso", "repo", "rootfs", "mirror"} {
		if set[f] && !used[f] {
			unused = append(unused, f)
		}
	}
	if len(unused) > 0 {
		return fmt.Errorf("%s does not read %s: remove %s, or pick the kind or preset that uses %s", what, strings.Join(unused, ", "), plural(len(unused), "it", "them"), plural(len(unused), "it", "them"))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
