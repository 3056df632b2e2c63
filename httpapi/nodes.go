package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

func (s *Server) listNodes(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	nodes, err := s.cfg.Store.List()
	if err != nil {
		s.storeError(w, "list", "", err)
		return
	}
	for i := range nodes {
		nodes[i] = nodes[i].Public()
	}
	writeJSON(w, http.StatusOK, map[string][]store.Node{"nodes": nodes})
}

func (s *Server) getNode(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	n, err := s.cfg.Store.Get(mac)
	if err != nil {
		s.storeError(w, "get", mac, err)
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
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body must be JSON like {\"script\": \"sanboot --no-describe --drive 0x80\"}: "+jsonProblem(err))
		return
	}
	// Only white space may follow the object. (dec.More reports false
	// before a stray "}" or "]", so it would let `{…}}` through.)
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body must hold exactly one JSON object")
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
