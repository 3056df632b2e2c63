package assets

import (
	"os"
	"path/filepath"
	"strings"
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
	bytesOf := func(f Binary) string {
		data, err := f.Bytes()
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		return string(data)
	}
	if f, ok := b.Get(ShimX64); !ok || bytesOf(f) != "own shim" || f.Size != len("own shim") {
		t.Errorf("shim = %q (size %d) from %q, want the PXE_SIGNED_DIR copy", bytesOf(f), f.Size, f.Source)
	}
	if f, ok := b.Get(GRUBX64); !ok || bytesOf(f) != "debian grub" {
		t.Errorf("grub = %q from %q, want Debian's second path", bytesOf(f), f.Source)
	}
	if looked := b.Missing()[ShimAA64]; len(looked) != 1 || looked[0] != filepath.Join(dir, ShimAA64) {
		t.Errorf("missing arm64 shim looked in %q", looked)
	}
	if _, err := LoadSigned(SignedOptions{Dir: filepath.Join(dir, "absent")}); err == nil {
		t.Error("an unreadable PXE_SIGNED_DIR was accepted")
	}
}

// TestSignedReadOnFirstUse: the chain is checked at start-up but held in
// memory only from its first use; a file that changed on disk in between
// is refused with the way out, and served again once it is put back.
func TestSignedReadOnFirstUse(t *testing.T) {
	dir := t.TempDir()
	shim, grub := filepath.Join(dir, ShimX64), filepath.Join(dir, GRUBX64)
	for p, s := range map[string]string{shim: "shim at start", grub: "grub at start"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := LoadSigned(SignedOptions{Dir: dir, System: map[string][]string{}, NoEmbedded: true})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := b.Get(ShimX64)
	g, _ := b.Get(GRUBX64)
	if s.Data != nil || g.Data != nil {
		t.Fatal("the chain was kept in memory at start-up")
	}
	// GRUB is read on first use and kept: removing it afterwards changes
	// nothing.
	if data, err := g.Bytes(); err != nil || string(data) != "grub at start" {
		t.Fatalf("grub: %q, %v", data, err)
	}
	if err := os.Remove(grub); err != nil {
		t.Fatal(err)
	}
	if data, err := g.Bytes(); err != nil || string(data) != "grub at start" {
		t.Fatalf("grub after removal: %q, %v; want the copy read on first use", data, err)
	}
	// The shim changed on disk before its first use: refused, not kept.
	if err := os.WriteFile(shim, []byte("shim half writt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := s.Bytes(); err == nil || !strings.Contains(err.Error(), "changed since start-up") || !strings.Contains(err.Error(), "restart pxe-pilot") {
		t.Fatalf("changed shim: %q, %v; want a refusal that says to restart", data, err)
	}
	if err := os.Remove(shim); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bytes(); err == nil || !strings.Contains(err.Error(), "no longer is") {
		t.Fatalf("removed shim: %v", err)
	}
	if err := os.WriteFile(shim, []byte("shim at start"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := s.Bytes(); err != nil || string(data) != "shim at start" {
		t.Fatalf("shim put back: %q, %v", data, err)
	}
}
