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
	"golang.org/x/sync/singleflight"
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
	expires time.Time
}

// relayBody is a fetched file, kept for the relay's TTL after the fetch or
// after the newest plan naming it, whichever is later.
type relayBody struct {
	body    []byte
	expires time.Time
}

type relay struct {
	mu      sync.Mutex
	entries map[store.MAC]*relayEntry
	// bodies are by URL: the machines installing one profile share its
	// kernel and initrd, tens of MB each.
	bodies map[string]*relayBody
	// fetches are by URL too: GRUB retransmits its request while a big
	// initrd is being fetched, and other machines may ask for the same
	// file meanwhile; all of them wait for one fetch.
	fetches singleflight.Group
	client  *http.Client
	ttl     time.Duration // relayTTL; tests shorten it
}

// prune forgets the plans and bodies that expired by now. Called with mu
// held.
func (r *relay) prune(now time.Time) {
	for mac, e := range r.entries {
		if now.After(e.expires) {
			delete(r.entries, mac)
		}
	}
	for u, b := range r.bodies {
		if now.After(b.expires) {
			delete(r.bodies, u)
		}
	}
}

// pruneLater prunes again once what was just added may have expired, so
// a relayed initrd does not stay in memory when no GRUB asks for anything
// after it.
func (s *Server) pruneLater() {
	time.AfterFunc(s.relay.ttl+time.Second, func() {
		s.relay.mu.Lock()
		defer s.relay.mu.Unlock()
		s.relay.prune(s.now())
	})
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
	expires := now.Add(s.relay.ttl)
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	s.relay.prune(now)
	s.relay.entries[p.MAC] = &relayEntry{urls: urls, expires: expires}
	for _, u := range urls {
		if b := s.relay.bodies[u]; b != nil {
			b.expires = expires
		}
	}
	s.pruneLater()
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
	s.relay.prune(s.now())
	var u string
	var cached *relayBody
	e := s.relay.entries[mac]
	if e != nil {
		u = e.urls[suffix]
		cached = s.relay.bodies[u]
	}
	s.relay.mu.Unlock()
	switch {
	case u == "":
		return nil, false
	case cached != nil:
		return cached.body, true
	}
	v, err, _ := s.relay.fetches.Do(u, func() (any, error) {
		start := time.Now()
		body, err := s.fetch(u)
		if err != nil {
			return nil, err
		}
		s.log.Info("grub: relayed an installer file over TFTP", "mac", mac, "file", suffix, "url", u, "bytes", len(body),
			"fetch", time.Since(start).Round(time.Millisecond).String())
		s.relay.mu.Lock()
		defer s.relay.mu.Unlock()
		s.relay.bodies[u] = &relayBody{body: body, expires: s.now().Add(s.relay.ttl)}
		s.pruneLater()
		return body, nil
	})
	if err != nil {
		// GRUB then gets "file not found" (counted by the TFTP server
		// as not_found) and the script falls through to the local disk.
		s.log.Warn("grub: relaying an installer file failed", "mac", mac, "file", suffix, "url", u, "err", err)
		return nil, false
	}
	return v.([]byte), true
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
