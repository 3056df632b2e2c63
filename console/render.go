package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// pageNames are the full pages; each is templates/<name>.html over
// templates/layout.html.
var pageNames = []string{"login", "fleet", "node", "appliance", "confirm", "problem"}

type pages map[string]*template.Template

func parsePages() (pages, error) {
	p := pages{}
	for _, name := range pageNames {
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p[name] = t
	}
	return p, nil
}

// pageData is what every page template gets.
type pageData struct {
	Title   string
	Nav     string // "fleet", "appliance": the current section
	Session session
	Open    bool // no admin key: the banner says so
	Flash   flash
	Version string
	Data    any
}

// CSRF is the session's form token (the hidden field of every form).
func (p *pageData) CSRF() string { return p.Session.csrf }

// SignedIn: show the sign-out button.
func (p *pageData) SignedIn() bool { return p.Session.authed && !p.Open }

// render writes a page; the page is rendered to a buffer first, so a
// template error is a clean 500, not half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, d *pageData) {
	d.Open = c.open()
	d.Version = c.cfg.Version
	if d.Session.id == "" {
		d.Session = sessionOf(r)
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		c.log.Error("console: rendering a page failed", "page", name, "err", err)
		http.Error(w, "the console failed to render this page; the log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// renderPart renders one named part (a table row, a timeline entry) for
// the live stream.
func (c *Console) renderPart(name string, data any) (string, error) {
	var buf bytes.Buffer
	err := c.pages["fleet"].ExecuteTemplate(&buf, name, data)
	return buf.String(), err
}

// problem shows an error page with the status code.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, code int, msg string) {
	se, _ := c.cookieSession(r)
	if s := sessionOf(r); s.id != "" {
		se = s
	}
	c.render(w, r, code, "problem", &pageData{Title: http.StatusText(code), Session: se, Data: msg})
}

// redirectFlash ends an action: the message is kept for the page the
// browser is sent to (POST, redirect, GET).
func (c *Console) redirectFlash(w http.ResponseWriter, r *http.Request, to, msg string, isErr bool) {
	c.sessions.setFlash(sessionOf(r).id, flash{Msg: msg, Error: isErr})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.PathValue("file"))
	data, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := "text/css; charset=utf-8"
	if strings.HasSuffix(name, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(data)
}

func ago(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// nodeURL is the node page's path.
func nodeURL(m store.MAC) string { return Prefix + "nodes/" + string(m) }
