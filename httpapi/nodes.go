package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/store"
)

// startTime is the Last-Modified of the binaries: they are read at start-up.
var startTime = time.Now()

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// parseMAC answers 400 with a JSON error naming the input when raw is not a
// MAC address.
func (s *Server) parseMAC(w http.ResponseWriter, raw string) (store.MAC, bool) {
	mac, err := store.ParseMAC(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return mac, true
}

// listNodes is GET /nodes. Without limit or cursor it is the seed's
// answer, every node as {"nodes":[…]}, streamed page by page so the
// appliance never holds the whole fleet in memory. With ?limit=N (and
// ?cursor= from the previous page) it is one page, {"nodes":[…],
// "next":"<cursor>"} ("next" empty on the last page). Filters, for both:
// state, profile ("-": none assigned), label (key or key=value),
// seen_since (RFC 3339 time or a duration back from now, e.g. 24h), q (a
// substring of MAC, hostname, IP, manufacturer or product).
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	f, err := s.parseFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Has("limit") || q.Has("cursor") {
		s.listPage(w, q, f)
		return
	}
	s.streamNodes(w, f)
}

// pageMax bounds one page (and one chunk of the full stream).
const pageMax = 1000

func (s *Server) listPage(w http.ResponseWriter, q url.Values, f store.Filter) {
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > pageMax {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: give a whole number from 1 to %d", truncate(v, 32), pageMax))
			return
		}
		limit = n
	}
	after, err := decodeCursor(q.Get("cursor"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	nodes, next, err := s.cfg.Store.ListPage(after, limit, f)
	if err != nil {
		s.storeError(w, "list", "", err)
		return
	}
	for i := range nodes {
		nodes[i] = nodes[i].Public()
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes, "next": encodeCursor(next)})
}

// streamNodes writes {"nodes":[…]} a page at a time. An error after the
// first byte cannot change the status any more: the JSON is left
// unterminated, so no client takes a cut list for the whole fleet.
func (s *Server) streamNodes(w http.ResponseWriter, f store.Filter) {
	nodes, next, err := s.cfg.Store.ListPage("", pageMax, f)
	if err != nil {
		s.storeError(w, "list", "", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "{\n  \"nodes\": [")
	first := true
	for {
		for _, n := range nodes {
			b, err := json.MarshalIndent(n.Public(), "    ", "  ")
			if err != nil {
				s.log.Error("GET /nodes: encoding a node failed", "mac", n.MAC, "err", err)
				return
			}
			if !first {
				io.WriteString(w, ",")
			}
			first = false
			io.WriteString(w, "\n    ")
			w.Write(b)
		}
		if next == "" {
			break
		}
		if nodes, next, err = s.cfg.Store.ListPage(next, pageMax, f); err != nil {
			s.m.StoreErrors.WithLabelValues("list").Inc()
			s.log.Error("GET /nodes: store failed mid-stream; the answer is cut", "err", err)
			return
		}
	}
	if first {
		io.WriteString(w, "]\n}\n")
		return
	}
	io.WriteString(w, "\n  ]\n}\n")
}

func (s *Server) parseFilter(q url.Values) (store.Filter, error) {
	f := store.Filter{Profile: q.Get("profile"), Label: q.Get("label"), Query: q.Get("q")}
	if v := q.Get("state"); v != "" {
		f.State = store.State(v)
		if !slices.Contains(store.States, f.State) {
			return f, fmt.Errorf("state %q: use one of %v", truncate(v, 32), store.States)
		}
	}
	if v := q.Get("seen_since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			f.SeenSince = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			f.SeenSince = s.now().Add(-d)
		} else {
			return f, fmt.Errorf("seen_since %q: give an RFC 3339 time (2026-11-30T08:00:00Z) or a duration back from now (24h)", truncate(v, 64))
		}
	}
	return f, nil
}

// Cursors are opaque to clients: the last MAC of the page, base64url.
func encodeCursor(m store.MAC) string {
	if m == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(m))
}

func decodeCursor(c string) (store.MAC, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	m, perr := store.ParseMAC(string(b))
	if err != nil || perr != nil || string(m) != string(b) {
		return "", fmt.Errorf("cursor %q is not one this appliance gave out; start again without it", truncate(c, 64))
	}
	return m, nil
}

// loadNode reads the node the path's :mac names, answering 400 for a bad
// MAC, 404 for an unknown node or 503 for a store failure itself.
func (s *Server) loadNode(w http.ResponseWriter, p httprouter.Params) (store.Node, bool) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return store.Node{}, false
	}
	n, err := s.cfg.Store.Get(mac)
	if err != nil {
		s.storeError(w, "get", mac, err)
		return store.Node{}, false
	}
	return n, true
}

func (s *Server) getNode(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
	n, ok := s.loadNode(w, p)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, n.Public())
}

func (s *Server) deleteNode(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	if err := s.cfg.Store.Delete(mac); err != nil {
		s.storeError(w, "delete", mac, err)
		return
	}
	s.log.Info("node forgotten", "mac", mac)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": string(mac)})
}

func (s *Server) nodeEvents(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	ev, err := s.cfg.Store.Events(mac)
	if err != nil {
		s.storeError(w, "events", mac, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"mac": mac, "events": ev})
}

func (s *Server) setReinstall(on bool) httprouter.Handle {
	action := map[bool]string{true: "set", false: "clear"}[on]
	return func(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
		mac, ok := s.parseMAC(w, p.ByName("mac"))
		if !ok {
			return
		}
		n, err := s.cfg.Store.SetReinstall(mac, on, s.now().UTC())
		if err != nil {
			s.storeError(w, "set_reinstall", mac, err)
			return
		}
		s.m.ReinstallChanges.WithLabelValues(action).Inc()
		s.log.Info("reinstall "+action, "mac", mac, "state", n.State)
		writeJSON(w, http.StatusOK, n.Public())
	}
}

// localBootBody is the JSON body of PUT /nodes/<mac>/local-boot-config.
type localBootBody struct {
	Script *string `json:"script"`
}

func (s *Server) putLocalBoot(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	var body localBootBody
	if err := decodeOneJSON(r, 4<<10, &body); err != nil {
		writeError(w, bodyStatus(err), "body must be JSON like {\"script\": \"sanboot --no-describe --drive 0x80\"}: "+err.Error())
		return
	}
	if body.Script == nil {
		writeError(w, http.StatusBadRequest, `body has no "script" field`)
		return
	}
	script, err := ValidateLocalBootScript(*body.Script)
	if err != nil {
		writeError(w, http.StatusBadRequest, "local-boot script rejected: "+err.Error())
		return
	}
	n, err := s.cfg.Store.SetLocalBootScript(mac, script, s.now().UTC())
	if err != nil {
		s.storeError(w, "set_local_boot", mac, err)
		return
	}
	s.log.Info("local-boot script set", "mac", mac, "script", script)
	writeJSON(w, http.StatusOK, n.Public())
}

func (s *Server) deleteLocalBoot(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	if _, err := s.cfg.Store.Get(mac); err != nil {
		s.storeError(w, "get", mac, err)
		return
	}
	n, err := s.cfg.Store.SetLocalBootScript(mac, "", s.now().UTC())
	if err != nil {
		s.storeError(w, "set_local_boot", mac, err)
		return
	}
	writeJSON(w, http.StatusOK, n.Public())
}

// jsonProblem words a decoding error for a person.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type)
	}
	return err.Error()
}
