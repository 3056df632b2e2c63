package assets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The Secure Boot chain: a Microsoft-signed shim that loads a
// Debian-signed network GRUB, which then loads the appliance's GRUB
// configuration and a vendor-signed kernel. Firmware that enforces Secure
// Boot with Microsoft's keys refuses Debian's unsigned ipxe.efi ("Access
// Denied"), but runs this chain.
//
// The names are what the chain asks for: shim loads "grubx64.efi" from
// the folder it was itself loaded from (its DEFAULT_LOADER), so both are
// served side by side at the TFTP root and under <base>/shim/ over HTTP.
// They are found, file by file, like the iPXE builds: SignedOptions.Dir
// (PXE_SIGNED_DIR), then the copies `make assets` put in assets/signed
// (embedded), then Debian's packages.
const (
	ShimX64  = "shimx64.efi"  // shim-signed: /usr/lib/shim/shimx64.efi.signed
	GRUBX64  = "grubx64.efi"  // grub-efi-amd64-signed: grubnetx64.efi.signed (prefix /grub)
	ShimAA64 = "shimaa64.efi" // shim-signed:arm64: /usr/lib/shim/shimaa64.efi.signed
	GRUBAA64 = "grubaa64.efi" // grub-efi-arm64-signed: grubnetaa64.efi.signed (prefix /grub)
)

// SignedNames lists the signed chain's names in a stable order.
var SignedNames = []string{ShimX64, GRUBX64, ShimAA64, GRUBAA64}

// SignedPackages names the Debian packages that carry the chain, for
// operators' messages.
const SignedPackages = "shim-signed and grub-efi-amd64-signed (grub-efi-arm64-signed on arm64)"

// debianSigned is where Debian's packages put each file, in the order
// tried. grubnetx64.efi.signed has the built-in prefix "/grub"; the d-i
// netboot pair (debian-installer-12-netboot-amd64: bootnetx64.efi =
// the same shim, grubx64.efi = grubnetx64-installer.efi.signed) has
// "/debian-installer/amd64/grub". The appliance serves its grub.cfg under
// both prefixes, so either GRUB works.
var debianSigned = map[string][]string{
	ShimX64: {"/usr/lib/shim/shimx64.efi.signed",
		"/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/bootnetx64.efi"},
	GRUBX64: {"/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
		"/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/grubx64.efi"},
	ShimAA64: {"/usr/lib/shim/shimaa64.efi.signed"},
	GRUBAA64: {"/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"},
}

// GRUBPrefixes are the built-in prefixes of the GRUB builds above: GRUB
// reads <prefix>/grub.cfg from the server it was loaded from.
var GRUBPrefixes = []string{"/grub", "/debian-installer/amd64/grub"}

// SignedOptions says where to look for the signed chain.
type SignedOptions struct {
	// Dir is PXE_SIGNED_DIR: looked at first, for every name.
	Dir string
	// System replaces Debian's paths (tests): name -> paths. Nil means
	// Debian's; an empty map means none.
	System map[string][]string
	// NoEmbedded skips the files compiled in (tests).
	NoEmbedded bool
}

// LoadSigned finds the signed chain and streams each file once through
// SHA-256, to check it can be read; the contents are read into memory on
// first use (Binary.Bytes): they come to about 5 MB (GRUB alone is 3.8 MB),
// which an appliance whose machines never ask for the chain would
// otherwise hold for nothing, and which the garbage collector's target
// would count once more on top. It fails only when Dir is set and cannot
// be read; a file found nowhere is recorded in Missing.
func LoadSigned(o SignedOptions) (*Binaries, error) {
	if o.Dir != "" {
		st, err := os.Stat(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("PXE_SIGNED_DIR=%q: %w", o.Dir, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("PXE_SIGNED_DIR=%q is not a directory", o.Dir)
		}
	}
	sys := o.System
	if sys == nil {
		sys = debianSigned
	}
	b := &Binaries{files: map[string]Binary{}, missing: map[string][]string{}}
	for _, name := range SignedNames {
		var places []string
		if o.Dir != "" {
			places = append(places, filepath.Join(o.Dir, name))
		}
		if !o.NoEmbedded {
			places = append(places, "embedded")
		}
		places = append(places, sys[name]...)
		found := false
		for _, p := range places {
			sum, size, err := hashFile(p, name)
			if err == nil {
				b.files[name] = Binary{Name: name, Source: p, SHA256: sum, Size: size,
					lazy: &lazyFile{path: p, name: name, sha256: sum}}
				found = true
				break
			}
		}
		if !found {
			b.missing[name] = places
		}
	}
	return b, nil
}

// hashFile streams one file of the chain through SHA-256, so start-up
// never holds it in memory.
func hashFile(path, name string) (string, int, error) {
	f, err := openSigned(path, name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), int(n), nil
}

// openSigned opens one file of the chain where LoadSigned found it: a
// path, or "embedded".
func openSigned(path, name string) (io.ReadCloser, error) {
	if path == "embedded" {
		return embedded.Open("signed/" + name)
	}
	return os.Open(path)
}

// lazyFile is a file of the signed chain, read on first use and kept.
type lazyFile struct {
	path   string // a path, or "embedded"
	name   string
	sha256 string // taken at start-up

	mu   sync.Mutex
	data []byte
}

func (l *lazyFile) get() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.data != nil {
		return l.data, nil
	}
	f, err := openSigned(l.path, l.name)
	var data []byte
	if err == nil {
		data, err = io.ReadAll(f)
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%s was readable at start-up but no longer is (%w); put it back, or restart pxe-pilot to look for it again", l.path, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != l.sha256 {
		return nil, fmt.Errorf("%s changed since start-up (SHA-256 %.16s…, was %.16s…) and may be half written; restart pxe-pilot to serve the new file", l.path, got, l.sha256)
	}
	l.data = data
	return data, nil
}
