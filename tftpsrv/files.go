package tftpsrv

import (
	"fmt"
	"strings"
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
		if err := checkFileName(name); err != nil {
			return err
		}
		if _, dup := s.files[name]; dup {
			return fmt.Errorf("tftpsrv: extra file %q is already served", name)
		}
		s.files[name] = file{name: name, data: data}
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

// clean is CleanName, except that an exact served path with folders
// ("/grub/grub.cfg") is accepted.
func (s *Server) clean(name string) (string, *RequestError) {
	if n := strings.TrimPrefix(name, "/"); len(name) <= MaxNameLen && strings.Contains(n, "/") {
		if _, ok := s.files[n]; ok {
			return n, nil
		}
	}
	return CleanName(name)
}
