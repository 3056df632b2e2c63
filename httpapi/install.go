package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// newToken makes an install token: 128 random bits, hex.
func newToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never on Linux ≥ 3.17
	}
	return hex.EncodeToString(b[:])
}

// Install routes. Everything an installer needs hangs off the install URL
// the appliance put into what it served, <base>/install/<mac>/<token>/:
//
//	GET  …/<file>      an installer config of the node's profile, rendered
//	POST …/progress    "still going" (restarts the stall clock), ?message=
//	POST …/installed   done: the node boots local from now on
//	POST …/failed      failed, ?reason= (or a form field, or the body)
//
// The token is this install's: a stale or wrong one gets 403 and changes
// nothing. POST /installed?mac=<mac>&token=<token> is the older form of
// …/installed; with the admin key instead of a token it marks any node.
const installPath = "/install/:mac/:token/:name"

// reportKinds are the call-backs by their path name.
var reportKinds = map[string]string{"installed": store.EventInstalled, "failed": store.EventFailed, "progress": store.EventProgress}

// installFile serves one rendered installer config.
func (s *Server) installFile(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	name, token := p.ByName("name"), p.ByName("token")
	n, err := s.cfg.Store.Get(mac)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.storeError(w, "get", mac, err)
		return
	}
	if err != nil || !n.TokenOK(token) {
		s.m.InstallFiles.WithLabelValues("refused").Inc()
		s.log.Warn("install file refused: wrong or stale token", "mac", mac, "file", truncate(name, 64), "ip", s.ClientIP(r))
		writeError(w, http.StatusForbidden, "this install URL is not valid (wrong or stale token); the node gets a new one with its next install")
		return
	}
	set := s.profiles()
	prof := set.Profiles[n.Install.Profile]
	var tmpl *profiles.Template
	if prof != nil {
		tmpl = prof.Files[name]
	}
	if tmpl == nil {
		s.m.InstallFiles.WithLabelValues("missing").Inc()
		known := "none"
		if prof != nil && len(prof.Files) > 0 {
			known = strings.Join(prof.FileNames(), ", ")
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("profile %q has no file %q (it has: %s)", n.Install.Profile, truncate(name, 64), known))
		return
	}
	cl := boot.Client{MAC: mac, IP: n.LastIP, Platform: n.Facts.Platform}
	text, err := tmpl.Render(boot.TemplateData(n, cl, prof, s.cfg.BaseURL, token))
	if err != nil {
		s.m.InstallFiles.WithLabelValues("error").Inc()
		s.log.Error("install file did not render", "mac", mac, "profile", prof.Name, "file", name, "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("profile %s, file %s did not render: %v", prof.Name, name, err))
		return
	}
	s.m.InstallFiles.WithLabelValues("served").Inc()
	s.log.Info("install file served", "mac", mac, "profile", prof.Name, "file", name, "bytes", len(text))
	// Fetching a config is a sign of life: restart the stall clock.
	now := s.now().UTC()
	if _, err := s.cfg.Store.Update(mac, false, now, func(n *store.Node) (*store.Event, error) {
		if n.State != store.StateInstalling || !n.TokenOK(token) {
			return nil, nil
		}
		t := now
		n.Install.LastWord = &t
		n.Install.Downloads++
		return nil, nil
	}); err != nil {
		s.log.Warn("install file: recording the download failed", "mac", mac, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, text)
}

// installReport is the token-authenticated call-back …/<kind>.
func (s *Server) installReport(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	kind, ok := reportKinds[p.ByName("name")]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no call-back %q: use installed, failed or progress", truncate(p.ByName("name"), 64)))
		return
	}
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	s.report(w, r, mac, kind, p.ByName("token"))
}

// installed is the older call-back, POST /installed?mac=<mac>&token=<t>,
// or with the admin key and no token.
func (s *Server) installed(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	mac, ok := s.parseMAC(w, q.Get("mac"))
	if !ok {
		return
	}
	s.report(w, r, mac, store.EventInstalled, q.Get("token"))
}

// report applies one call-back and answers with the node.
func (s *Server) report(w http.ResponseWriter, r *http.Request, mac store.MAC, kind, token string) {
	admin, answered := s.adminKey(w, r)
	if answered {
		return
	}
	msg := reportText(r, kind)
	reporter := clean(r.FormValue("reporter"), 64)
	if reporter == "" {
		reporter = "installer"
	}
	if admin && token == "" {
		reporter = "admin"
	}
	n, err := s.cfg.Store.Update(mac, false, s.now().UTC(), func(n *store.Node) (*store.Event, error) {
		ev, err := n.Report(kind, admin, token, reporter, msg, s.now().UTC())
		if err != nil {
			return nil, err
		}
		ev.IP = s.ClientIP(r)
		return &ev, nil
	})
	switch {
	case errors.Is(err, store.ErrBadToken), errors.Is(err, store.ErrNotFound) && !admin:
		s.m.InstallReports.WithLabelValues("refused").Inc()
		s.log.Warn("install call-back refused: no valid token", "mac", mac, "kind", kind, "ip", s.ClientIP(r))
		writeError(w, http.StatusForbidden, "install call-back refused: the token is missing, wrong or stale (use the URL the appliance served with this install, or the admin key); nothing was changed")
		return
	case errors.Is(err, store.ErrNotInstalling):
		s.m.InstallReports.WithLabelValues("refused").Inc()
		writeError(w, http.StatusConflict, fmt.Sprintf("node %s: %v; nothing was changed", mac, err))
		return
	case err != nil:
		s.storeError(w, "report", mac, err)
		return
	}
	s.m.InstallReports.WithLabelValues(kind).Inc()
	if kind != store.EventProgress {
		s.m.InstallTransitions.WithLabelValues(string(n.State)).Inc()
	}
	s.log.Info("install "+kind, "mac", mac, "reporter", reporter, "message", msg, "state", n.State, "ip", s.ClientIP(r))
	writeJSON(w, http.StatusOK, n.Public())
}

// reportText is the call-back's words: ?message= / ?reason=, a form field
// of that name, or a short plain body (an installer's log line). Reduced to
// printable ASCII, at most 200 characters.
func reportText(r *http.Request, kind string) string {
	key := "message"
	if kind == store.EventFailed {
		key = "reason"
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if v := r.FormValue(key); v != "" {
		return clean(v, 200)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" || strings.HasPrefix(ct, "text/plain") || strings.HasPrefix(ct, "application/json") {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4<<10))
		if len(b) > 0 {
			if v, err := url.QueryUnescape(string(b)); err == nil {
				return clean(v, 200)
			}
			return clean(string(b), 200)
		}
	}
	return ""
}

// clean keeps printable ASCII, at most max characters.
func clean(s string, max int) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= max {
			break
		}
		if c >= 0x20 && c < 0x7f {
			b.WriteRune(c)
		} else if c == '\n' || c == '\t' {
			b.WriteByte(' ')
		}
	}
	return strings.TrimSpace(b.String())
}
