package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/profiles"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// profileView is a profile as GET /profiles shows it.
type profileView struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Preset  string   `json:"preset,omitempty"`
	Source  string   `json:"source"`
	Loader  string   `json:"loader,omitempty"`
	Files   []string `json:"files,omitempty"`
	Missing []string `json:"missing,omitempty"`
}

type groupView struct {
	Name    string            `json:"name"`
	Profile string            `json:"profile"`
	Source  string            `json:"source"`
	Match   profiles.Selector `json:"match"`
}

func (s *Server) listProfiles(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	set := s.profiles()
	out := struct {
		Default  string        `json:"default"`
		File     string        `json:"file,omitempty"`
		Profiles []profileView `json:"profiles"`
		Groups   []groupView   `json:"groups"`
	}{Default: set.Default, File: set.Path, Profiles: []profileView{}, Groups: []groupView{}}
	for _, name := range set.Names() {
		p := set.Profiles[name]
		out.Profiles = append(out.Profiles, profileView{Name: name, Kind: string(p.Kind), Preset: p.Preset, Source: p.Source,
			Loader: p.Loader, Files: p.FileNames(), Missing: p.Missing})
	}
	for _, g := range set.Groups {
		out.Groups = append(out.Groups, groupView{g.Name, g.Profile, g.Source, g.Match})
	}
	writeJSON(w, http.StatusOK, out)
}

// decision answers what the node would get if it booted now (nothing is
// recorded or consumed): GET /nodes/<mac>/decision?platform=efi.
func (s *Server) decision(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	n, ok := s.loadNode(w, p)
	if !ok {
		return
	}
	mac := n.MAC
	platform := r.URL.Query().Get("platform")
	if platform == "" {
		platform = n.Facts.Platform
	}
	cl := boot.Client{MAC: mac, IP: n.LastIP, Platform: platform, Loader: boot.LoaderIPXE}
	render, field := boot.IPXE, "ipxe"
	if r.URL.Query().Get("loader") == boot.LoaderGRUB {
		// ?loader=grub: what the Secure Boot chain's GRUB would get.
		cl.Loader, render, field = boot.LoaderGRUB, boot.GRUB, "grub"
	}
	plan := boot.Decide(n, cl, s.profiles(), s.bootCfg, "TOKEN")
	script, err := render(plan)
	if err != nil {
		script = []byte("rendering failed: " + err.Error())
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"mac": mac, "state": n.State, "decision": plan.Decision, "reason": plan.Reason,
		"profile": plan.Profile, "rule": plan.Rule, "kind": plan.Kind, field: string(script),
	})
}

// settingsBody is PATCH /nodes/<mac>: each field present replaces the
// node's; "profile": "" clears the assignment, "labels": {} clears labels.
type settingsBody struct {
	Profile  *string            `json:"profile"`
	Hostname *string            `json:"hostname"`
	Labels   *map[string]string `json:"labels"`
	Vars     *map[string]string `json:"vars"`
}

func (s *Server) patchNode(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	var b settingsBody
	if err := decodeOneJSON(r, 64<<10, &b); err != nil {
		writeError(w, bodyStatus(err), `body must be JSON like {"profile": "debian", "hostname": "web1", "labels": {"rack": "r1"}, "vars": {"disk": "/dev/sda"}}: `+err.Error())
		return
	}
	if err := s.checkSettings(b); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := s.cfg.Store.Update(mac, true, s.now().UTC(), func(n *store.Node) (*store.Event, error) {
		var changed []string
		if b.Profile != nil {
			n.Profile = *b.Profile
			changed = append(changed, "profile="+*b.Profile)
		}
		if b.Hostname != nil {
			n.Hostname = *b.Hostname
			changed = append(changed, "hostname="+*b.Hostname)
		}
		if b.Labels != nil {
			n.Labels = nilIfEmpty(*b.Labels)
			changed = append(changed, "labels")
		}
		if b.Vars != nil {
			n.Vars = nilIfEmpty(*b.Vars)
			changed = append(changed, "vars")
		}
		return &store.Event{Type: store.EventAdmin, Reason: "settings: " + strings.Join(changed, ", ")}, nil
	})
	if err != nil {
		s.storeError(w, "update", mac, err)
		return
	}
	s.log.Info("node settings changed", "mac", mac, "profile", n.Profile, "hostname", n.Hostname)
	writeJSON(w, http.StatusOK, n.Public())
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func (s *Server) checkSettings(b settingsBody) error {
	if b.Profile != nil && *b.Profile != "" {
		if err := s.checkProfile(*b.Profile); err != nil {
			return err
		}
	}
	if b.Hostname != nil {
		if err := store.ValidateHostname(*b.Hostname); err != nil {
			return err
		}
	}
	for what, m := range map[string]*map[string]string{"labels": b.Labels, "vars": b.Vars} {
		if m == nil {
			continue
		}
		if len(*m) > 64 {
			return fmt.Errorf("%s: at most 64 entries", what)
		}
		for k, v := range *m {
			if err := store.ValidateLabel(k, v); err != nil {
				return fmt.Errorf("%s: %v", what, err)
			}
		}
	}
	return nil
}

// checkProfile refuses a profile name the loaded set does not define.
func (s *Server) checkProfile(name string) error {
	set := s.profiles()
	if set.Profiles[name] == nil {
		return fmt.Errorf("profile %q is not defined (defined: %s)", name, strings.Join(set.Names(), ", "))
	}
	return nil
}

// putProfile is PUT /nodes/<mac>/profile {"profile": "debian"}.
func (s *Server) putProfile(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	var b struct {
		Profile *string `json:"profile"`
	}
	err := decodeOneJSON(r, 4<<10, &b)
	if err != nil || b.Profile == nil || *b.Profile == "" {
		msg := `body must be JSON like {"profile": "debian"} (DELETE clears the assignment)`
		if err != nil {
			msg += ": " + err.Error()
		}
		writeError(w, bodyStatus(err), msg)
		return
	}
	s.setProfile(w, p, *b.Profile)
}

func (s *Server) deleteProfile(w http.ResponseWriter, _ *http.Request, p httprouter.Params) {
	s.setProfile(w, p, "")
}

func (s *Server) setProfile(w http.ResponseWriter, p httprouter.Params, name string) {
	mac, ok := s.parseMAC(w, p.ByName("mac"))
	if !ok {
		return
	}
	if name != "" {
		if err := s.checkProfile(name); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	n, err := s.cfg.Store.Update(mac, name != "", s.now().UTC(), store.AssignProfile(name))
	if err != nil {
		s.storeError(w, "update", mac, err)
		return
	}
	s.log.Info("node profile set", "mac", mac, "profile", name)
	writeJSON(w, http.StatusOK, n.Public())
}
