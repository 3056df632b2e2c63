package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
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
// .efi), and the appliance fetches each URL as soon as it has served the
// script, and hands it on as it arrives (GRUB gives up opening a file
// after 31.6 s: a transfer starts once the file's length is known). Only
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

// relayBody is a file being fetched or fetched, shared by every transfer of
// it: the transfers read it as it arrives (GRUB gives up opening a file
// after 31.6 s, so a big initrd from a slow mirror cannot wait to be all
// here), and it is kept for the relay's TTL after the fetch or after the
// newest plan naming it, whichever is later.
type relayBody struct {
	mu      sync.Mutex
	grew    chan struct{} // closed (and replaced) when buf grows, size is known, or done
	buf     []byte
	size    int64 // from Content-Length; -1 until the answer's headers came
	done    bool
	err     error // the fetch failed: readers get it after what came
	expires time.Time
}

func newRelayBody(expires time.Time) *relayBody {
	return &relayBody{size: -1, expires: expires, grew: make(chan struct{})}
}

// changed wakes the waiting readers. Called with mu held.
func (b *relayBody) changed() {
	close(b.grew)
	b.grew = make(chan struct{})
}

// relayOpenWait bounds the wait for a file's headers: GRUB has given up
// opening it after 31.6 s anyway, and the TFTP transfer slot is free again.
const relayOpenWait = 45 * time.Second

// opened waits until the transfer can start: the length is known (the
// answer's Content-Length), or the fetch ended. It returns the length, or
// why nothing can be sent.
func (b *relayBody) opened() (int64, error) {
	timeout := time.After(relayOpenWait)
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.size < 0 && !b.done {
		grew := b.grew
		b.mu.Unlock()
		select {
		case <-grew:
		case <-timeout:
			b.mu.Lock()
			return 0, fmt.Errorf("no answer from the server within %v (the fetch goes on for the next request)", relayOpenWait)
		}
		b.mu.Lock()
	}
	switch {
	case b.err != nil:
		return 0, b.err
	case b.size >= 0:
		return b.size, nil
	}
	return int64(len(b.buf)), nil // no Content-Length: all of it is here
}

// reader reads the body from its start, waiting for what has not come yet.
func (b *relayBody) reader() io.Reader { return &relayReader{b: b} }

type relayReader struct {
	b   *relayBody
	off int
}

// Read waits at most a second for more of the file, then returns nothing
// (and no error): the TFTP server's reader, which reads again, checks its
// transfer deadline and the server's shutdown between reads.
func (r *relayReader) Read(p []byte) (int, error) {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.off >= len(b.buf) && !b.done {
		grew := b.grew
		b.mu.Unlock()
		select {
		case <-grew:
		case <-time.After(time.Second):
		}
		b.mu.Lock()
	}
	if r.off < len(b.buf) {
		n := copy(p, b.buf[r.off:])
		r.off += n
		return n, nil
	}
	if !b.done {
		return 0, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return 0, io.EOF
}

type relay struct {
	mu      sync.Mutex
	entries map[store.MAC]*relayEntry
	// bodies are by URL, fetched once: the machines installing one
	// profile share its kernel and initrd, tens of MB each, and GRUB
	// retransmits its request while a fetch is under way.
	bodies   map[string]*relayBody
	client   *http.Client
	ttl      time.Duration // relayTTL; tests shorten it
	maxCache int           // relayCacheMax; tests shorten it
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
		b.mu.Lock()
		old := b.done && now.After(b.expires)
		b.mu.Unlock()
		if old {
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
		// Fetched from now on, while GRUB reads the script and the
		// kernel: the initrd has a head start.
		s.relayBodyLocked(u, expires)
	}
	s.pruneLater()
	return p
}

// relayBodyLocked returns u's body, starting its fetch if there is none,
// and keeps it until expires at least. Called with s.relay.mu held.
func (s *Server) relayBodyLocked(u string, expires time.Time) *relayBody {
	b := s.relay.bodies[u]
	if b == nil {
		b = newRelayBody(expires)
		s.relay.bodies[u] = b
		go s.fetch(u, b)
		return b
	}
	b.mu.Lock()
	if expires.After(b.expires) {
		b.expires = expires
	}
	b.mu.Unlock()
	return b
}

// GRUBRelayed is an installer file of the plan just served to a machine,
// "<MAC>.<suffix>" (tftpsrv.Generator.Stream): a reader that gives the file
// as the appliance fetches it, and its length. GRUB gets "file not found"
// for a name no plan named, or whose fetch failed before anything could
// be sent (counted by the TFTP server as not_found), and the script falls
// through to the local disk.
func (s *Server) GRUBRelayed(name string, _ netip.Addr) (io.Reader, int64, bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return nil, 0, false
	}
	mac, err := store.ParseMAC(name[:i])
	if err != nil {
		return nil, 0, false
	}
	suffix := name[i+1:]
	s.relay.mu.Lock()
	now := s.now()
	s.relay.prune(now)
	var b *relayBody
	u := ""
	if e := s.relay.entries[mac]; e != nil {
		if u = e.urls[suffix]; u != "" {
			b = s.relayBodyLocked(u, now.Add(s.relay.ttl)) // again if a failed fetch was pruned
		}
	}
	s.relay.mu.Unlock()
	if b == nil {
		return nil, 0, false
	}
	size, err := b.opened()
	if err != nil {
		s.log.Warn("grub: relaying an installer file failed", "mac", mac, "file", suffix, "url", boot.Redact(u), "err", err)
		return nil, 0, false
	}
	return b.reader(), size, true
}

// relayFetchTimeout bounds one fetch: a 100 MB initrd at 2 Mbit/s.
const relayFetchTimeout = 10 * time.Minute

// fetch fills b from u. A failed fetch leaves b done with its error, and
// out of the cache: the next request fetches again.
func (s *Server) fetch(u string, b *relayBody) {
	start := time.Now()
	n, err := s.fetchInto(u, b)
	// Done and trimmed in one step under the relay's lock, so the cache is
	// within its bound whenever the relay is looked at.
	s.relay.mu.Lock()
	b.mu.Lock()
	b.done, b.err = true, err
	if err == nil && b.size < 0 {
		b.size = int64(len(b.buf))
	}
	b.expires = s.now().Add(s.relay.ttl)
	b.changed()
	b.mu.Unlock()
	if err != nil {
		if s.relay.bodies[u] == b {
			delete(s.relay.bodies, u)
		}
	} else {
		s.relay.trim(u)
	}
	s.relay.mu.Unlock()
	if err != nil {
		s.log.Warn("grub: fetching an installer file to relay failed", "url", boot.Redact(u), "bytes", n, "err", err)
		return
	}
	s.log.Info("grub: fetched an installer file to relay over TFTP", "url", boot.Redact(u), "bytes", n,
		"fetch", time.Since(start).Round(time.Millisecond).String())
	s.pruneLater()
}

// relayCacheMax bounds the fetched files the relay keeps for later requests
// (a profile's kernel and initrds, shared by the machines installing it).
// Past it the files kept longest are dropped, the newest never: a later
// request fetches a dropped one again, and a transfer under way keeps
// reading the copy it has.
const relayCacheMax = 512 << 20

// trim drops fetched bodies, oldest expiry first, until those kept hold at
// most maxCache bytes; keep is never dropped. Called with mu held.
func (r *relay) trim(keep string) {
	type kept struct {
		url     string
		n       int
		expires time.Time
	}
	var done []kept
	total := 0
	for u, b := range r.bodies {
		b.mu.Lock()
		if b.done {
			done = append(done, kept{u, len(b.buf), b.expires})
			total += len(b.buf)
		}
		b.mu.Unlock()
	}
	sort.Slice(done, func(i, j int) bool { return done[i].expires.Before(done[j].expires) })
	for _, k := range done {
		if total <= r.maxCache {
			return
		}
		if k.url != keep {
			delete(r.bodies, k.url)
			total -= k.n
		}
	}
}

func (s *Server) fetchInto(u string, b *relayBody) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), relayFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.relay.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", boot.Redact(u), resp.Status)
	}
	if resp.ContentLength > relayMax {
		return 0, fmt.Errorf("GET %s: %d bytes, more than the %d a relayed file may have", boot.Redact(u), resp.ContentLength, relayMax)
	}
	if resp.ContentLength >= 0 {
		b.mu.Lock()
		b.size = resp.ContentLength
		b.buf = make([]byte, 0, min(resp.ContentLength, 64<<20)) // grown as it comes past that
		b.changed()
		b.mu.Unlock()
	}
	var n int64
	chunk := make([]byte, 64<<10)
	for {
		k, rerr := resp.Body.Read(chunk)
		if k > 0 {
			n += int64(k)
			if n > relayMax || (resp.ContentLength >= 0 && n > resp.ContentLength) {
				return n, fmt.Errorf("GET %s: more than %d bytes", boot.Redact(u), max(resp.ContentLength, 0))
			}
			b.mu.Lock()
			b.buf = append(b.buf, chunk[:k]...)
			b.changed()
			b.mu.Unlock()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, fmt.Errorf("GET %s: cut after %d bytes: %w", boot.Redact(u), n, rerr)
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET %s: %d bytes of the %d announced", boot.Redact(u), n, resp.ContentLength)
	}
	return n, nil
}
