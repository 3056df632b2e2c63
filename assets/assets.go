// Package assets holds what PXE Pilot hands to machines as files: the iPXE
// binaries and the iPXE script templates.
//
// iPXE binaries are never committed to this repository. They are found, file
// by file, in this order:
//
//  1. PXE_IPXE_DIR, a folder of the user's own builds (custom embedded
//     script, extra drivers);
//  2. the binary itself, when `make assets` filled assets/ipxe before the
//     build (go:embed; this is how release binaries and the Docker image are
//     self-contained);
//  3. Debian's `ipxe` package, /usr/lib/ipxe.
//
// A missing binary is not fatal: the appliance starts, logs which names are
// missing and where it looked, and TFTP answers those names "file not found".
// The iPXE binaries are read into memory once at start-up (all four come to
// about 1.2 MB), so serving one never touches the disk and a file changed
// underneath the running appliance cannot be served half old, half new.
// The Secure Boot chain (signed.go, about 5 MB) is checked at start-up and
// read on first use, verified against the SHA-256 taken at start-up.
package assets

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/template"
)

// Names of the iPXE binaries the appliance knows. Only these are ever served.
const (
	UndionlyKPXE = "undionly.kpxe"  // BIOS: iPXE over the NIC ROM's UNDI driver
	IPXEEFI      = "ipxe.efi"       // UEFI x86_64 with iPXE's own NIC drivers
	SNPOnlyEFI   = "snponly.efi"    // UEFI x86_64 over the firmware's SNP driver
	ARM64EFI     = "ipxe-arm64.efi" // UEFI arm64; supplied by the user
)

// BinaryNames lists every binary name in a stable order.
var BinaryNames = []string{UndionlyKPXE, IPXEEFI, SNPOnlyEFI, ARM64EFI}

// DebianDir is where Debian's `ipxe` package installs its builds.
const DebianDir = "/usr/lib/ipxe"

//go:embed ipxe signed
var embedded embed.FS

//go:embed scripts/*.tmpl
var scriptFS embed.FS

// Binary is one file the appliance serves: an iPXE build, read into memory
// at start-up, or a file of the Secure Boot chain, read on first use
// (signed.go).
type Binary struct {
	Name   string
	Data   []byte // nil for a file read on first use: call Bytes
	Source string // where it was read from: a path, or "embedded"
	SHA256 string // of the contents checked at start-up
	Size   int

	lazy *lazyFile
}

// Bytes returns the file's contents. A file read on first use is read
// once, checked against the SHA-256 taken at start-up and then kept; a
// file changed on disk since start-up is refused (it could be half
// written), with an error that says to restart the appliance.
func (b Binary) Bytes() ([]byte, error) {
	if b.lazy == nil {
		return b.Data, nil
	}
	return b.lazy.get()
}

// Options says where to look for binaries.
type Options struct {
	// Dir is PXE_IPXE_DIR: looked at first, for every name.
	Dir string
	// ARM64 is PXE_IPXE_ARM64_EFI: an explicit path for the arm64 build.
	ARM64 string
	// SystemDir overrides DebianDir (tests). Empty means DebianDir; "-"
	// means no system folder at all.
	SystemDir string
	// NoEmbedded skips the binaries compiled in (tests).
	NoEmbedded bool
}

// Binaries is the set found at start-up. It is read-only after LoadBinaries
// and safe for concurrent use.
type Binaries struct {
	files   map[string]Binary
	missing map[string][]string // name -> places looked
}

// LoadBinaries finds and reads every known binary. It fails only when a
// location the user named explicitly (Dir, ARM64) cannot be read; a binary
// found nowhere is recorded in Missing.
func LoadBinaries(o Options) (*Binaries, error) {
	if o.Dir != "" {
		st, err := os.Stat(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("PXE_IPXE_DIR=%q: %w", o.Dir, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("PXE_IPXE_DIR=%q is not a directory", o.Dir)
		}
	}
	sys := o.SystemDir
	if sys == "" {
		sys = DebianDir
	}
	b := &Binaries{files: map[string]Binary{}, missing: map[string][]string{}}
	for _, name := range BinaryNames {
		var looked []string
		try := func(path string) bool {
			looked = append(looked, path)
			data, err := os.ReadFile(path)
			if err != nil {
				return false
			}
			b.files[name] = newBinary(name, data, path)
			return true
		}
		if name == ARM64EFI && o.ARM64 != "" {
			data, err := os.ReadFile(o.ARM64)
			if err != nil {
				return nil, fmt.Errorf("PXE_IPXE_ARM64_EFI=%q: %w", o.ARM64, err)
			}
			b.files[name] = newBinary(name, data, o.ARM64)
			continue
		}
		if o.Dir != "" && try(filepath.Join(o.Dir, name)) {
			continue
		}
		if !o.NoEmbedded {
			looked = append(looked, "embedded")
			if data, err := embedded.ReadFile("ipxe/" + name); err == nil {
				b.files[name] = newBinary(name, data, "embedded")
				continue
			}
		}
		if sys != "-" && name != ARM64EFI && try(filepath.Join(sys, name)) {
			continue
		}
		b.missing[name] = looked
	}
	return b, nil
}

func newBinary(name string, data []byte, source string) Binary {
	sum := sha256.Sum256(data)
	return Binary{Name: name, Data: data, Source: source, SHA256: hex.EncodeToString(sum[:]), Size: len(data)}
}

// Get returns the binary called name, if it was found.
func (b *Binaries) Get(name string) (Binary, bool) {
	f, ok := b.files[name]
	return f, ok
}

// Found lists the names found, sorted.
func (b *Binaries) Found() []string {
	out := make([]string, 0, len(b.files))
	for n := range b.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Missing maps each missing name to the places that were searched for it.
func (b *Binaries) Missing() map[string][]string { return b.missing }

// ErrUnknownScript is returned for a template name that does not exist.
var ErrUnknownScript = errors.New("unknown script template")

var scripts = template.Must(template.New("").Option("missingkey=error").ParseFS(scriptFS, "scripts/*.tmpl"))

// Script names, for RenderScript.
const (
	ScriptChain     = "chain.ipxe"     // data: {BaseURL}
	ScriptBoot      = "boot.ipxe"      // data: {BaseURL}
	ScriptAutoexec  = "autoexec.ipxe"  // data: {BaseURL}
	ScriptReinstall = "reinstall.ipxe" // data: {MAC, KernelURL, InitrdURL, Cmdline}
	ScriptLocal     = "local.ipxe"     // data: {MAC, Command}
	ScriptError     = "error.ipxe"     // data: {Lines []string}
	// Profile scripts (package boot renders them from a Plan).
	ScriptLinux = "linux.ipxe"  // data: {MAC, Profile, Rule, Kernel, Initrds [{Name, URL}], Cmdline}
	ScriptEFI   = "efi.ipxe"    // data: {MAC, Profile, Rule, EFI, Args}
	ScriptIPXE  = "script.ipxe" // data: {MAC, Profile, Rule, Script}
)

// RenderScript executes the named script template. The templates are plain
// text/template: callers must pass values that are safe on an iPXE command
// line (the callers validate URLs and MACs before they get here).
func RenderScript(w io.Writer, name string, data any) error {
	t := scripts.Lookup(name + ".tmpl")
	if t == nil {
		return fmt.Errorf("%w: %q", ErrUnknownScript, name)
	}
	return t.Execute(w, data)
}

// Script is RenderScript into a byte slice.
func Script(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := RenderScript(&buf, name, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
