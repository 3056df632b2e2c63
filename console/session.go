package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pxe-pilot/pxe-pilot/internal/keyguard"
)

const (
	cookieName = "pxe_pilot_session"
	// maxSessions bounds the memory sessions take; signed-out browsers
	// asking for the login page make anonymous ones.
	maxSessions = 4096
	// anonTTL is the life of a session that never signed in.
	anonTTL = time.Hour
)

// session is one browser: a random ID (the cookie), the CSRF token its
// forms carry, whether it signed in, and the message the next page shows.
type session struct {
	id      string
	csrf    string
	authed  bool
	expires time.Time
	flash   flash
}

// flash is the result of an action, shown once by the page the action
// redirects to.
type flash struct {
	Msg   string
	Error bool
}

// sessions is the server-side session table, in memory: a restart signs
// everyone out.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	now func() time.Time
	ttl time.Duration
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, now: now, ttl: ttl}
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create adds a session, making room when the table is full.
func (s *sessions) create(authed bool) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= maxSessions {
		s.sweepLocked(now)
	}
	if len(s.m) >= maxSessions {
		s.evictLocked()
	}
	ttl := anonTTL
	if authed {
		ttl = s.ttl
	}
	se := &session{id: randomID(), csrf: randomID(), authed: authed, expires: now.Add(ttl)}
	s.m[se.id] = se
	return se
}

// get returns a copy of the live session with this ID.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok || !s.now().Before(se.expires) {
		return session{}, false
	}
	return *se, true
}

// takeFlash returns and clears the session's message.
func (s *sessions) takeFlash(id string) flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return flash{}
	}
	f := se.flash
	se.flash = flash{}
	return f
}

func (s *sessions) setFlash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if se, ok := s.m[id]; ok {
		se.flash = f
	}
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

func (s *sessions) sweep() {
	s.mu.Lock()
	s.sweepLocked(s.now())
	s.mu.Unlock()
}

// evictLocked drops the session closest to its end, preferring browsers
// that never signed in (anyone can make those; signed-in ones need the key).
func (s *sessions) evictLocked() {
	var victim *session
	for _, se := range s.m {
		if victim == nil || (victim.authed && !se.authed) ||
			(victim.authed == se.authed && se.expires.Before(victim.expires)) {
			victim = se
		}
	}
	if victim != nil {
		delete(s.m, victim.id)
	}
}

func (s *sessions) sweepLocked(now time.Time) {
	for id, se := range s.m {
		if !now.Before(se.expires) {
			delete(s.m, id)
		}
	}
}

type ctxKey struct{}

// sessionOf is the session requireSession found for r.
func sessionOf(r *http.Request) session {
	se, _ := r.Context().Value(ctxKey{}).(session)
	return se
}

// cookieSession is the live session r's cookie names.
func (c *Console) cookieSession(r *http.Request) (session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return session{}, false
	}
	return c.sessions.get(ck.Value)
}

func (c *Console) open() bool { return c.cfg.AdminKey == "" }

// clientIP is the address the key guard counts r's tries under.
func (c *Console) clientIP(r *http.Request) string {
	if c.cfg.ClientIP != nil {
		return c.cfg.ClientIP(r)
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().String()
	}
	return r.RemoteAddr
}

// keyOK compares a key with ADMIN_API_KEY as the JSON API does: both
// hashed, then compared in constant time (which also hides the length).
func (c *Console) keyOK(key string) bool {
	got := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(got[:], c.keyHash[:]) == 1
}

// setCookie hands the browser its session ID.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, se *session) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: se.id, Path: Prefix, Expires: se.expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.overTLS(r),
	})
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.overTLS(r)})
}

// overTLS: the request came over TLS, or a trusted proxy says it did.
func (c *Console) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range c.cfg.TrustedProxies {
		if p.Contains(peer.Addr().Unmap()) {
			return strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
		}
	}
	return false
}

// requireSession lets signed-in browsers through (and, when no admin key
// is set, every browser, each with its own session for the CSRF token);
// others go to the sign-in page.
func (c *Console) requireSession(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		se, ok := c.cookieSession(r)
		if ok && !se.authed && c.open() {
			ok = false
		}
		if !ok && c.open() {
			ns := c.sessions.create(true)
			c.setCookie(w, r, ns)
			se, ok = *ns, true
		}
		if !ok || !se.authed {
			if r.Method != http.MethodGet || r.URL.Path == Prefix+"events" {
				c.problem(w, r, http.StatusUnauthorized, "Sign in first: this console needs the admin key.")
				return
			}
			http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, se)))
	}
}

// checkCSRF refuses, with 403 and no change, a form whose csrf field is
// not the session's token.
func (c *Console) checkCSRF(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			c.problem(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
			return
		}
		if !tokenOK(r.PostForm.Get("csrf"), sessionOf(r).csrf) {
			c.metrics.refused.Inc()
			c.log.Warn("console: state change refused: CSRF token missing or wrong", "path", r.URL.Path, "remote", r.RemoteAddr)
			c.problem(w, r, http.StatusForbidden, "This form is stale or did not come from this console (CSRF token missing or wrong); nothing was changed. Reload the page and try again.")
			return
		}
		h(w, r)
	}
}

func tokenOK(got, want string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return want != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// secure sets the headers every console response carries.
func (c *Console) secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.open() {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	se, ok := c.cookieSession(r)
	if ok && se.authed {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	if !ok {
		ns := c.sessions.create(false)
		c.setCookie(w, r, ns)
		se = *ns
	}
	c.render(w, r, http.StatusOK, "login", &pageData{Title: "Sign in", Session: se,
		Flash: c.sessions.takeFlash(se.id), Data: safeNext(r.URL.Query().Get("next"))})
}

// login checks the admin key; a good one replaces the browser's session
// with a new signed-in one (a fresh ID, so a planted cookie is useless).
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.open() {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.problem(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	se, ok := c.cookieSession(r)
	if !ok || !tokenOK(r.PostForm.Get("csrf"), se.csrf) {
		c.metrics.logins.WithLabelValues("refused").Inc()
		c.problem(w, r, http.StatusForbidden, "The sign-in form is stale or cookies are off; reload the sign-in page (cookies must be allowed for this site).")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	ip := c.clientIP(r)
	ok, wait, exhausted := c.cfg.KeyGuard.Check(ip, func() bool { return c.keyOK(r.PostForm.Get("key")) })
	if wait > 0 {
		secs := keyguard.Seconds(wait)
		c.metrics.logins.WithLabelValues("limited").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.render(w, r, http.StatusTooManyRequests, "login", &pageData{Title: "Sign in", Session: se,
			Flash: flash{Msg: fmt.Sprintf("Too many wrong admin keys from %s: try again in %d s (%s).", ip, secs, c.cfg.KeyGuard.Policy()), Error: true}, Data: next})
		return
	}
	if !ok {
		c.metrics.logins.WithLabelValues("wrong_key").Inc()
		c.log.Warn("console: sign-in refused (wrong admin key)", "remote", ip)
		if exhausted {
			c.log.Warn("console: one address spent all its tries on wrong admin keys; it waits before the next", "remote", ip, "policy", c.cfg.KeyGuard.Policy())
		}
		c.render(w, r, http.StatusUnauthorized, "login", &pageData{Title: "Sign in", Session: se,
			Flash: flash{Msg: "Wrong admin key. Use the value of ADMIN_API_KEY the appliance was started with.", Error: true}, Data: next})
		return
	}
	c.sessions.remove(se.id)
	ns := c.sessions.create(true)
	c.setCookie(w, r, ns)
	c.metrics.logins.WithLabelValues("ok").Inc()
	c.log.Info("console: signed in", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.remove(sessionOf(r).id)
	c.clearCookie(w, r)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}
