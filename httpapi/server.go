// Package httpapi is PXE Pilot's HTTP side: the open boot endpoints iPXE
// calls (/chain, /boot, /installed, /ipxe/<binary>), the admin API for people
// and tools (/nodes…), /health and /metrics.
//
// iPXE cares about a few things a browser does not: it runs any body that
// starts with "#!ipxe" whatever the Content-Type, but only after a 2xx
// status; on any other status the "chain" command fails, so every script the
// appliance serves ends in a path that exits to the firmware's next boot
// device, and the /chain script catches a failed /boot the same way.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// Store is what the API needs from the node store. *store.Store implements
// it; another engine can take its place.
type Store interface {
	Get(store.MAC) (store.Node, error)
	List() ([]store.Node, error)
	ListPage(after store.MAC, limit int, f store.Filter) ([]store.Node, store.MAC, error)
	SetReinstall(m store.MAC, on bool, now time.Time) (store.Node, error)
	SetLocalBootScript(m store.MAC, script string, now time.Time) (store.Node, error)
	MarkInstalled(m store.MAC, now time.Time) (store.Node, error)
	Update(m store.MAC, create bool, now time.Time, fn func(n *store.Node) (*store.Event, error)) (store.Node, error)
	Delete(store.MAC) error
	Events(store.MAC) ([]store.Event, error)
	RecordBoot(m store.MAC, sg store.Sighting, decide func(*store.Node) store.Event) (store.Node, store.Event, error)
	Ping() error
}

// Config builds a Server.
type Config struct {
	// Addr is the listen address, host:port ("" host: all interfaces).
	Addr string
	// BaseURL is how machines reach this API (PXE_BASE_URL), no trailing slash.
	BaseURL string
	// Boot is the seed's installer configuration and PXE_LOCAL_BOOT; the
	// seed's variables define the default profile.
	Boot BootConfig
	// Profiles returns the profiles in force (PXE_PROFILES_FILE, reloaded
	// on SIGHUP). Nil means the default profile from Boot alone.
	Profiles func() *profiles.Set
	// AdminKey is ADMIN_API_KEY; empty leaves the admin API open.
	AdminKey string
	// KeyGuard limits wrong admin keys per client address (shared with
	// the console's sign-in); nil: no limit.
	KeyGuard *keyguard.Guard
	// TrustedProxies may set X-Forwarded-For (PXE_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// ShutdownTimeout bounds how long Serve waits for in-flight requests.
	ShutdownTimeout time.Duration

	Store    Store
	Binaries *assets.Binaries // nil: /ipxe/<name> answers 404
	Signed   *assets.Binaries // the Secure Boot chain; nil: /shim/<name> answers 404
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Extra, when set, serves every path under /ui/ (the web console,
	// which does its own authentication); /ui redirects there.
	Extra http.Handler
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics.Metrics
	now      func() time.Time
	keyHash  [32]byte
	ln       net.Listener
	handler  http.Handler
	chainBuf []byte
	// grubCfgBuf is the static grub.cfg (nil when PXE_BASE_URL is not a
	// URL GRUB can use, e.g. https).
	grubCfgBuf []byte
	relay      relay // GRUB's installer files over TFTP (grubrelay.go)
	bootCfg    boot.Config
	profiles   func() *profiles.Set
}

// New validates cfg, binds the listener and builds the routes.
func New(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API cannot listen on %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	return s, nil
}

// NewHandler builds the routes without binding a socket (for tests and for
// embedding in another server).
func NewHandler(cfg Config) (http.Handler, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.handler, nil
}

func newServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("httpapi: Config.Store is nil")
	}
	if cfg.Metrics == nil {
		return nil, errors.New("httpapi: Config.Metrics is nil")
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("httpapi: Config.BaseURL is empty")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Boot.LocalBoot == "" {
		cfg.Boot.LocalBoot = LocalBootAuto
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, now: cfg.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.AdminKey != "" {
		s.keyHash = sha256.Sum256([]byte(cfg.AdminKey))
	}
	s.bootCfg = boot.Config{BaseURL: cfg.BaseURL, LocalBoot: cfg.Boot.LocalBoot}
	s.profiles = cfg.Profiles
	if s.profiles == nil {
		set, err := profiles.Load("", cfg.Boot.Seed())
		if err != nil {
			return nil, err
		}
		s.profiles = func() *profiles.Set { return set }
	}
	chain, err := assets.Script(assets.ScriptChain, struct{ BaseURL string }{cfg.BaseURL})
	if err != nil {
		return nil, fmt.Errorf("httpapi: rendering the chain script: %w", err)
	}
	s.chainBuf = chain
	s.grubCfgBuf, _ = boot.GRUBConfig(cfg.BaseURL)
	s.relay = relay{entries: map[store.MAC]*relayEntry{}, bodies: map[string]*relayBody{}, client: &http.Client{}, ttl: relayTTL, maxCache: relayCacheMax}
	s.handler = s.routes()
	return s, nil
}

func (s *Server) routes() http.Handler {
	r := httprouter.New()
	open := func(method, path string, h httprouter.Handle) { r.Handle(method, path, s.instrument(path, h)) }
	cop := http.NewCrossOriginProtection()
	admin := func(method, path string, h httprouter.Handle) {
		r.Handle(method, path, s.instrument(path, sameOrigin(cop, s.requireAdmin(h))))
	}

	open(http.MethodGet, "/chain", s.chain)
	open(http.MethodGet, "/boot", s.boot)
	open(http.MethodPost, "/installed", s.installed)
	open(http.MethodGet, installPath, s.installFile)
	open(http.MethodPost, installPath, s.installReport)
	// UEFI HTTP Boot (OVMF measured) sends HEAD first to learn the size;
	// a 405 there makes it stall the download that follows.
	open(http.MethodGet, "/ipxe/:name", s.binary)
	open(http.MethodHead, "/ipxe/:name", s.binary)
	s.routesGRUB(open)
	open(http.MethodGet, "/health", s.health)
	metricsHandler := s.m.Handler()
	open(http.MethodGet, "/metrics", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		metricsHandler.ServeHTTP(w, r)
	})

	admin(http.MethodGet, "/nodes", s.listNodes)
	admin(http.MethodGet, "/nodes/:mac", s.getNode)
	admin(http.MethodDelete, "/nodes/:mac", s.deleteNode)
	admin(http.MethodGet, "/nodes/:mac/events", s.nodeEvents)
	admin(http.MethodPost, "/nodes/:mac/reinstall", s.setReinstall(true))
	admin(http.MethodDelete, "/nodes/:mac/reinstall", s.setReinstall(false))
	admin(http.MethodPut, "/nodes/:mac/local-boot-config", s.putLocalBoot)
	admin(http.MethodDelete, "/nodes/:mac/local-boot-config", s.deleteLocalBoot)
	admin(http.MethodPatch, "/nodes/:mac", s.patchNode)
	admin(http.MethodPut, "/nodes/:mac/profile", s.putProfile)
	admin(http.MethodDelete, "/nodes/:mac/profile", s.deleteProfile)
	admin(http.MethodGet, "/nodes/:mac/decision", s.decision)
	admin(http.MethodGet, "/profiles", s.listProfiles)
	admin(http.MethodGet, "/backup", s.backup)

	if s.cfg.Extra != nil {
		extra := s.instrument("/ui/", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { s.cfg.Extra.ServeHTTP(w, r) })
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			r.Handle(m, "/ui/*path", extra)
		}
	}

	notFound := s.instrument("not_found", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { notFound(w, req, nil) })
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed on this endpoint")
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.log.Error("http: handler panicked", "path", req.URL.Path, "panic", v)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	return r
}

// Addr is the bound listen address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler returns the routes.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves until ctx ends, then stops accepting, waits up to
// Config.ShutdownTimeout for in-flight requests and returns.
func (s *Server) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // a slow firmware pulling ipxe.efi
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("HTTP API stopped: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		srv.Close()
		return fmt.Errorf("HTTP API: in-flight requests did not finish within %s: %w", s.cfg.ShutdownTimeout, err)
	}
	return nil
}

// statusWriter records the status code for the metrics middleware.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument times a route under its pattern (never the raw path, which
// would let clients create series without bound).
func (s *Server) instrument(route string, h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r, p)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.m.HTTPDuration.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	}
}

// requireAdmin enforces ADMIN_API_KEY. Both sides are hashed first so the
// constant-time compare also hides the key's length.
// sameOrigin refuses an admin change a browser sends on behalf of a page
// of another site (CSRF): without ADMIN_API_KEY the API is open, and any
// web page a LAN user visits could otherwise POST /nodes/<mac>/reinstall
// to it (a cross-site form or fetch needs no preflight). Browsers mark such
// requests (Sec-Fetch-Site, Origin); tools (curl, the CLI, installers) send
// neither and pass, as do reads (GET, HEAD).
func sameOrigin(cop *http.CrossOriginProtection, h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
		if err := cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "refused: a browser sent this change for a page of another site (Sec-Fetch-Site or Origin), nothing was changed; call the API from a tool (curl, pxe-pilot nodes …) or use the console at /ui/: "+err.Error())
			return
		}
		h(w, r, p)
	}
}

func (s *Server) requireAdmin(h httprouter.Handle) httprouter.Handle {
	if s.cfg.AdminKey == "" {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
		admin, answered := s.adminKey(w, r)
		if answered {
			return
		}
		if !admin {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pxe-pilot"`)
			msg := "missing Authorization: Bearer <ADMIN_API_KEY>"
			if _, ok := bearer(r); ok {
				msg = "wrong API key"
			}
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		h(w, r, p)
	}
}

// adminKey checks the request's bearer key under the key guard: admin
// reports the right key (or no key set). A client out of tries gets 429
// and a Retry-After, without its key being compared (answered); a wrong
// key spends one of its tries. A request without a key spends none.
func (s *Server) adminKey(w http.ResponseWriter, r *http.Request) (admin, answered bool) {
	if s.cfg.AdminKey == "" {
		return true, false
	}
	if _, sent := bearer(r); !sent {
		return false, false
	}
	ip := s.ClientIP(r)
	ok, wait, exhausted := s.cfg.KeyGuard.Check(ip, func() bool { return s.isAdmin(r) })
	switch {
	case wait > 0:
		s.m.AdminKeyRefusals.WithLabelValues("limited").Inc()
		secs := keyguard.Seconds(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many wrong API keys from %s: try again in %d s (%s); nothing was changed", ip, secs, s.cfg.KeyGuard.Policy()))
		return false, true
	case ok:
		return true, false
	}
	s.m.AdminKeyRefusals.WithLabelValues("wrong_key").Inc()
	if exhausted {
		s.log.Warn("admin API: one address spent all its tries on wrong API keys; it waits before the next", "ip", ip, "policy", s.cfg.KeyGuard.Policy())
	}
	return false, false
}

// isAdmin reports whether r carries the admin key (always true when no
// key is set). Both sides are hashed first so the constant-time compare
// also hides the key's length.
func (s *Server) isAdmin(r *http.Request) bool {
	if s.cfg.AdminKey == "" {
		return true
	}
	token, ok := bearer(r)
	got := sha256.Sum256([]byte(token))
	return ok && subtle.ConstantTimeCompare(got[:], s.keyHash[:]) == 1
}

// bearer is the token of an "Authorization: Bearer <token>" header. RFC
// 7235: the scheme is case-insensitive, and one or more spaces separate it
// from the token.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// ClientIP is the address the request came from: the connection's peer,
// or, when that peer is a trusted proxy, the right-most X-Forwarded-For
// entry that is not itself a trusted proxy. Every address passes
// ClientAddr; the walk stops at the first hop that does not (a zone, an
// over-long or unspecified entry), as it does at garbage. The peer's zone,
// if any, names our own interface (the kernel's, not the client's words)
// and is dropped before the check.
//
// Exported for the console, which counts wrong admin keys per client as
// the API does.
func (s *Server) ClientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	addr, err := ClientAddr(peer.Addr().WithZone("").String())
	if err != nil {
		return ""
	}
	if !s.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := ClientAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !s.trusted(a) {
			return a.String()
		}
		addr = a
	}
	return addr.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
