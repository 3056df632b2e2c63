package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// The relay: Debian's signed GRUB fetches only over TFTP (it has no http
// module), while profiles name their kernels and initrds by http(s) URL,
// as iPXE wants them. So a GRUB plan's URLs are handed to GRUB as files
// of the appliance's TFTP folder (/grub/node/<MAC>.kernel, .initrd0, …,
// .efi), and the appliance fetches each URL when GRUB asks for it. Only
// the URLs of the plan just served to that machine are fetched: the relay
// is no open proxy.

// relayTTL is how long a plan's files stay fetchable (and a fetched body
// cached) after the script was served: an install's kernel and initrd are
// read within seconds of the script.
const relayTTL = 10 * time.Minute

// relayMax bounds one relayed file (an installer initrd is tens of MB).
const relayMax = 1 << 30

type relayEntry struct {
	urls    map[string]string // file suffix -> URL
	bodies  map[string][]byte
	expires time.Time
}

type relay struct {
	mu      sync.Mutex
	entries map[store.MAC]*relayEntry
	client  *http.Client
}

// relayPlan rewrites a GRUB reinstall plan's http(s) URLs into relayed
// TFTP paths and remembers them for mac.
func (s *Server) relayPlan(p boot.Plan) boot.Plan {
	if p.Decision != store.DecisionReinstall {
		return p
	}
	urls := map[string]string{}
	swap := func(u, suffix string) string {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return u
		}
		urls[suffix] = u
		return "/" + boot.GRUBNodeFolder + string(p.MAC) + "." + suffix
	}
	p.Kernel = swap(p.Kernel, "kernel")
	p.EFI = swap(p.EFI, "efi")
	initrds := make([]boot.Initrd, len(p.Initrds))
	for i, in := range p.Initrds {
		initrds[i] = boot.Initrd{Name: in.Name, URL: swap(in.URL, "initrd"+strconv.Itoa(i))}
	}
	p.Initrds = initrds
	if len(urls) == 0 {
		return p
	}
	now := s.now()
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	for mac, e := range s.relay.entries {
		if now.After(e.expires) {
			delete(s.relay.entries, mac)
		}
	}
	s.relay.entries[p.MAC] = &relayEntry{urls: urls, bodies: map[string][]byte{}, expires: now.Add(relayTTL)}
	return p
}

// relayed fetches "<MAC>.<suffix>" for GRUB, if the plan served to that
// MAC named it.
func (s *Server) relayed(name string) ([]byte, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return nil, false
	}
	mac, err := store.ParseMAC(name[:i])
	if err != nil {
		return nil, false
	}
	suffix := name[i+1:]
	s.relay.mu.Lock()
	e := s.relay.entries[mac]
	if e == nil || s.now().After(e.expires) {
		s.relay.mu.Unlock()
		return nil, false
	}
	u, ok := e.urls[suffix]
	body, cached := e.bodies[suffix]
	s.relay.mu.Unlock()
	if !ok {
		return nil, false
	}
	if cached {
		return body, true
	}
	start := time.Now()
	body, err = s.fetch(u)
	if err != nil {
		// GRUB then gets "file not found" (counted by the TFTP server
		// as not_found) and the script falls through to the local disk.
		s.log.Warn("grub: relaying an installer file failed", "mac", mac, "file", suffix, "url", u, "err", err)
		return nil, false
	}
	s.log.Info("grub: relayed an installer file over TFTP", "mac", mac, "file", suffix, "url", u, "bytes", len(body),
		"fetch", time.Since(start).Round(time.Millisecond).String())
	s.relay.mu.Lock()
	e.bodies[suffix] = body
	s.relay.mu.Unlock()
	return body, true
}

func (s *Server) fetch(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.relay.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, relayMax+1))
	if err == nil && len(b) > relayMax {
		err = fmt.Errorf("GET %s: larger than %d bytes", u, relayMax)
	}
	return b, err
}
