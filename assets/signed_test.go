package assets

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadSignedOrder: PXE_SIGNED_DIR first, then Debian's paths; a file
// found nowhere is listed with every place looked.
func TestLoadSignedOrder(t *testing.T) {
	dir, sys := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, ShimX64), "own shim")
	write(filepath.Join(sys, "shim.signed"), "debian shim")
	write(filepath.Join(sys, "grub.signed"), "debian grub")
	system := map[string][]string{
		ShimX64: {filepath.Join(sys, "shim.signed")},
		GRUBX64: {filepath.Join(sys, "nope"), filepath.Join(sys, "grub.signed")},
	}
	b, err := LoadSigned(SignedOptions{Dir: dir, System: system, NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := b.Get(ShimX64); !ok || string(f.Data) != "own shim" {
		t.Errorf("shim = %q from %q, want the PXE_SIGNED_DIR copy", f.Data, f.Source)
	}
	if f, ok := b.Get(GRUBX64); !ok || string(f.Data) != "debian grub" {
		t.Errorf("grub = %q from %q, want Debian's second path", f.Data, f.Source)
	}
	if looked := b.Missing()[ShimAA64]; len(looked) != 1 || looked[0] != filepath.Join(dir, ShimAA64) {
		t.Errorf("missing arm64 shim looked in %q", looked)
	}
	if _, err := LoadSigned(SignedOptions{Dir: filepath.Join(dir, "absent")}); err == nil {
		t.Error("an unreadable PXE_SIGNED_DIR was accepted")
	}
}
