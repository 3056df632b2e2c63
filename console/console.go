// Package console is PXE Pilot's web console: server-rendered pages under
// /ui/ over the same store, profiles and boot decision the JSON API uses
// (there is no second source of truth), live updates by Server-Sent Events
// fed from the store's change feed, and sign-in with the admin key.
//
// Every asset is embedded: html/template pages, one CSS file and one small
// script (no inline script, no CDN, no build step). The console never
// imports httpapi; both sit on the store, boot and profiles packages.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
	"github.com/pxe-pilot/pxe-pilot/metrics"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css static/console.js
var staticFS embed.FS

// Prefix is where the console lives on the appliance's HTTP port.
const Prefix = "/ui/"

// Service is one of the appliance's servers as the appliance page shows it.
type Service struct {
	Name    string // "TFTP", "ProxyDHCP"
	Enabled bool
	// Detail says where it listens ("interface eth0", ":69").
	Detail string
}

// Config builds a Console.
type Config struct {
	Store store.Backend
	// Profiles returns the profiles in force (as the JSON API's does); nil
	// means none are known, so pages show no resolved profile or decision.
	Profiles func() *profiles.Set
	// Boot is what the decision depends on besides node and profile.
	Boot boot.Config
	// AdminKey is ADMIN_API_KEY; empty leaves the console open (a banner
	// says so on every page).
	AdminKey string
	// TrustedProxies may say X-Forwarded-Proto (the session cookie is
	// Secure when the request came over TLS).
	TrustedProxies []netip.Prefix
	// KeyGuard limits wrong admin keys per client address (the JSON API
	// shares it); nil: no limit. ClientIP names the client as the API does
	// (through trusted proxies); nil: the connection's peer.
	KeyGuard *keyguard.Guard
	ClientIP func(*http.Request) string
	Metrics  *metrics.Metrics
	Binaries *assets.Binaries // nil: the appliance page lists none
	// Services describes TFTP and ProxyDHCP (called per request; nil: none).
	Services func() []Service
	// HTTPAddr is the API's listen address, for the appliance page.
	HTTPAddr string
	// Warnings are the configuration problems the log warned about at start.
	Warnings []string
	Version  string
	Logger   *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time

	// SessionTTL is how long a sign-in lasts (default 12h).
	SessionTTL time.Duration
	// MaxLive bounds the browsers following live updates (default 64).
	MaxLive int
	// Heartbeat is the interval of the live stream's keep-alive (default 15s).
	Heartbeat time.Duration
	// PageSize is the number of nodes per fleet page (default 100).
	PageSize int
}

// Console serves the web console. Build it with New, mount Handler under
// Prefix, and run Serve (the activity chart and the live streams end with
// its context).
type Console struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	keyHash  [32]byte
	pages    pages
	sessions *sessions
	activity *activity
	metrics  *consoleMetrics
	live     chan struct{} // a token per live stream
	done     chan struct{} // closed when Serve returns
	handler  http.Handler
}

// New validates cfg and builds the routes.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil {
		return nil, errors.New("console: Config.Store is nil")
	}
	if cfg.Metrics == nil {
		return nil, errors.New("console: Config.Metrics is nil")
	}
	if cfg.Boot.LocalBoot == "" {
		cfg.Boot.LocalBoot = boot.LocalBootAuto
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxLive <= 0 {
		cfg.MaxLive = 64
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100
	}
	c := &Console{cfg: cfg, log: cfg.Logger, now: cfg.Now, live: make(chan struct{}, cfg.MaxLive), done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.AdminKey != "" {
		c.keyHash = sha256.Sum256([]byte(cfg.AdminKey))
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.metrics, err = newConsoleMetrics(cfg.Metrics.Registry); err != nil {
		return nil, err
	}
	c.sessions = newSessions(c.now, cfg.SessionTTL)
	c.activity = newActivity(6*60, c.now)
	c.handler = c.routes()
	return c, nil
}

// Handler serves every path under Prefix.
func (c *Console) Handler() http.Handler { return c.handler }

// ServeHTTP makes the Console an http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// Serve follows the change feed for the boot-activity chart until ctx
// ends; then it ends every live stream, so the HTTP server's shutdown is
// not held up by browsers that never hang up.
func (c *Console) Serve(ctx context.Context) error {
	defer close(c.done)
	sub := c.cfg.Store.Subscribe(1024)
	defer sub.Close()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			c.sessions.sweep()
		case ch, ok := <-sub.C:
			if !ok {
				return nil // the store closed
			}
			if sub.Lagged() {
				c.activity.lost()
			}
			if ch.Event != nil && ch.Event.Type == store.EventBoot {
				c.activity.add(ch.Event.Time)
			}
		}
	}
}

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	page := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, c.secure(c.requireSession(h))) }
	act := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, c.secure(c.requireSession(c.checkCSRF(h))))
	}

	mux.Handle("GET /ui/static/{file}", c.secure(http.HandlerFunc(c.static)))
	mux.Handle("GET /ui/login", c.secure(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST /ui/login", c.secure(http.HandlerFunc(c.login)))
	act("POST /ui/logout", c.logout)

	page("GET /ui/{$}", c.fleet)
	page("GET /ui/events", c.stream)
	page("GET /ui/nodes/{mac}", c.nodePage)
	page("GET /ui/appliance", c.appliancePage)
	act("POST /ui/nodes/{mac}/reinstall", c.actReinstall)
	act("POST /ui/nodes/{mac}/cancel", c.actCancel)
	act("POST /ui/nodes/{mac}/forget", c.actForget)
	act("POST /ui/nodes/{mac}/profile", c.actProfile)
	act("POST /ui/nodes/{mac}/local-boot", c.actLocalBoot)
	mux.Handle("/ui/", c.secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.problem(w, r, http.StatusNotFound, "There is no console page at "+r.URL.Path+".")
	})))
	return mux
}
