package tftpsrv

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Extra files (Config.Files): the Secure Boot chain and GRUB's generated
// configuration. Unlike the iPXE names, these may sit in folders, because
// that is where the loaders look: shim asks for grubx64.efi next to
// itself, and GRUB reads <prefix>/grub.cfg with its built-in prefix, a path
// with a leading slash ("/grub/grub.cfg"). Each is an exact key: a request
// matches it, after the one leading '/' the server always tolerates, or it
// is refused by CleanName's rules as before. Nothing here walks a folder.

// addFiles adds cfg.Files to the served table. Keys are checked like a
// request would be, so a name that could never be asked for is an error at
// start-up rather than a silent "file not found" at boot time.
func (s *Server) addFiles(files map[string][]byte) error {
	for name, data := range files {
		if err := s.addExtra(file{name: name, data: data, size: len(data)}); err != nil {
			return err
		}
	}
	return nil
}

// addExtra adds one extra file, checking its name and that it is new.
func (s *Server) addExtra(f file) error {
	if err := checkFileName(f.name); err != nil {
		return err
	}
	if _, dup := s.files[f.name]; dup {
		return fmt.Errorf("tftpsrv: extra file %q is already served", f.name)
	}
	s.files[f.name] = f
	return nil
}

// LazyFile is an extra file whose contents are read on first use.
type LazyFile struct {
	Size int // at start-up: sizes the transfer deadline
	Load func() ([]byte, error)
}

func (s *Server) addLazyFiles(files map[string]LazyFile) error {
	for name, f := range files {
		if f.Load == nil {
			return fmt.Errorf("tftpsrv: extra file %q has no contents", name)
		}
		if err := s.addExtra(file{name: name, load: f.Load, size: f.Size}); err != nil {
			return err
		}
	}
	return nil
}

func checkFileName(name string) error {
	if name == "" || len(name) > MaxNameLen-1 || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return fmt.Errorf("tftpsrv: extra file name %q: want a relative path without '\\', at most %d bytes", name, MaxNameLen-1)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || strings.HasPrefix(part, ".") {
			return fmt.Errorf("tftpsrv: extra file name %q: empty or dot-led path element", name)
		}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("tftpsrv: extra file name %q contains control characters", name)
		}
	}
	return nil
}

// Generator makes the files of one folder per request: GRUB's script for
// the machine named in the file name ("grub/node/52:54:00:12:34:56").
// Make gets the rest of the name (one plain element) and the client's
// address, and says false for a name it does not know. Stream, when set,
// is asked first, for a file sent as it comes (a relayed installer file:
// the transfer starts once its length is known, not once it is all here);
// it returns the reader, the file's length (the transfer's tsize; the
// reader must give exactly that many bytes or fail) and whether it knows
// the name. The metrics label of every generated file is Prefix.
type Generator struct {
	Prefix string // "folder/", no leading slash
	Make   func(rest string, client netip.Addr) ([]byte, bool)
	Stream func(rest string, client netip.Addr) (io.Reader, int64, bool)
}

func (s *Server) setGenerator(g Generator) error {
	if g.Make == nil {
		return nil
	}
	if !strings.HasSuffix(g.Prefix, "/") || checkFileName(strings.TrimSuffix(g.Prefix, "/")) != nil {
		return fmt.Errorf("tftpsrv: generated folder %q: want a relative path ending in '/'", g.Prefix)
	}
	s.gen = g
	s.m.TFTPTransfers.WithLabelValues(g.Prefix, "started")
	return nil
}

// socketNames are the names the socket filter passes to pin/tftp: the
// served files, and the generated folder.
func (s *Server) socketNames() []string {
	names := s.names()
	if s.gen.Make != nil {
		names = append(names, s.gen.Prefix)
	}
	return names
}

// lookup finds a served file, or makes a generated one.
func (s *Server) lookup(name string, client netip.Addr) (file, bool) {
	if f, ok := s.files[name]; ok {
		return f, true
	}
	if rest, ok := s.generated(name); ok {
		if s.gen.Stream != nil {
			if r, size, ok := s.gen.Stream(rest, client); ok {
				return file{name: s.gen.Prefix, stream: r, size: int(size)}, true
			}
		}
		if data, ok := s.gen.Make(rest, client); ok {
			return file{name: s.gen.Prefix, data: data}, true
		}
	}
	return file{}, false
}

// generated says whether name (cleaned) is in the generated folder, and
// the rest of it.
func (s *Server) generated(name string) (string, bool) {
	if s.gen.Make == nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(name, s.gen.Prefix)
	if !ok || rest == "" || strings.ContainsAny(rest, "/\\") || strings.HasPrefix(rest, ".") {
		return "", false
	}
	return rest, true
}

// clean is CleanName, except that an exact served path with folders
// ("/grub/grub.cfg") and a name in the generated folder are accepted.
func (s *Server) clean(name string) (string, *RequestError) {
	if n := strings.TrimPrefix(name, "/"); len(name) <= MaxNameLen && strings.Contains(n, "/") {
		if _, ok := s.files[n]; ok {
			return n, nil
		}
		if _, ok := s.generated(n); ok && checkFileName(n) == nil {
			return n, nil
		}
	}
	return CleanName(name)
}

// deadlineFor is a transfer's deadline: sized from its own file, so that a
// slow client holds its slot for 34 s on undionly.kpxe and 82 s on
// ipxe.efi, not for the 4.4 minutes the Secure Boot chain's grubx64.efi
// needs; or Config.TransferDeadline when set, longer for a generated file
// that needs more (a relayed installer initrd).
func (s *Server) deadlineFor(f file, size int) time.Duration {
	if s.deadline == 0 {
		return transferDeadline(size)
	}
	if s.gen.Make == nil || f.name != s.gen.Prefix {
		return s.deadline
	}
	return max(s.deadline, transferDeadline(size))
}

// deadlineText describes the deadline for the start-up log.
func (s *Server) deadlineText() string {
	if s.deadline == 0 {
		return fmt.Sprintf("%v + the file's size at %d KiB/s", deadlineSlack, slowRate>>10)
	}
	return s.deadline.String()
}
