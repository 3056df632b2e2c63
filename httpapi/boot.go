package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/store"
)

const scriptType = "text/plain; charset=utf-8"

// chain serves the script iPXE runs first: it sends the machine's identity
// to /boot. It is the same for every machine, rendered once at start-up.
func (s *Server) chain(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	s.m.ChainRequests.Inc()
	w.Header().Set("Content-Type", scriptType)
	w.Write(s.chainBuf)
}

// boot records the boot and serves the decision as an iPXE script.
func (s *Server) boot(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	mac, err := store.ParseMAC(q.Get("mac"))
	if err != nil {
		s.m.BootRequests.WithLabelValues(store.DecisionError).Inc()
		s.m.LoaderRequests.WithLabelValues(boot.LoaderIPXE, store.DecisionError).Inc()
		s.log.Warn("boot: bad MAC", "mac", truncate(q.Get("mac"), 64), "remote", r.RemoteAddr, "err", err)
		s.writeScript(w, http.StatusBadRequest, assets.ScriptError, boot.ErrorLines(
			"the boot request has no usable MAC address ("+err.Error()+")",
			"iPXE must call "+s.cfg.BaseURL+"/boot?mac=${mac}",
		))
		return
	}
	ip := s.ClientIP(r)
	// What iPXE says it has beats what a NAT shows us. An IPv6 zone
	// ("fe80::1%eth0") is refused: it is free text of any length that
	// would be stored as last_ip and substituted into installer URLs.
	if a, err := ClientAddr(q.Get("ip")); err == nil {
		ip = a.String()
	}
	facts := store.Facts{
		Platform:     fact(q, "platform"),
		BuildArch:    fact(q, "buildarch"),
		UUID:         fact(q, "uuid"),
		Serial:       fact(q, "serial"),
		Manufacturer: fact(q, "manufacturer"),
		Product:      fact(q, "product"),
	}
	cl := boot.Client{MAC: mac, IP: ip, Platform: facts.Platform, Loader: boot.LoaderIPXE}
	plan, node, err := s.decide(cl, facts)
	if err != nil {
		s.m.BootRequests.WithLabelValues(store.DecisionError).Inc()
		s.m.LoaderRequests.WithLabelValues(cl.Loader, store.DecisionError).Inc()
		s.m.StoreErrors.WithLabelValues("record_boot").Inc()
		s.log.Error("boot: store failed", "mac", mac, "ip", ip, "err", err)
		s.writeScript(w, http.StatusInternalServerError, assets.ScriptError, boot.ErrorLines(
			"the appliance could not record this boot (store error); see its log",
		))
		return
	}
	name, data := boot.IPXEScript(plan)
	s.writeScript(w, http.StatusOK, name, data)
	s.logBoot(plan, node, cl)
}

// decide records one boot of cl and decides it (boot.Decide), consuming
// the reinstall flag when the plan serves an installer: the flag is
// consumed on disk before the caller sends anything. Every loader's
// endpoint (iPXE's /boot, GRUB's config) goes through here, so they make
// the same decision and record it the same way.
func (s *Server) decide(cl boot.Client, facts store.Facts) (boot.Plan, store.Node, error) {
	now := s.now().UTC()
	set := s.profiles()
	var plan boot.Plan
	node, _, err := s.cfg.Store.RecordBoot(cl.MAC, store.Sighting{Time: now, IP: cl.IP, Facts: facts}, func(n *store.Node) store.Event {
		token := ""
		if n.State == store.StateReinstall {
			token = newToken()
		}
		plan = boot.Decide(*n, cl, set, s.bootCfg, token)
		if plan.Install && n.StartInstall(now, plan.Profile, plan.Rule, cl.Loader, token) {
			n.Install.NoCallbacks = plan.Seed
		}
		return store.Event{Decision: plan.Decision, Reason: plan.Reason, Profile: plan.Profile, Rule: plan.Rule, Loader: cl.Loader}
	})
	return plan, node, err
}

func (s *Server) logBoot(plan boot.Plan, node store.Node, cl boot.Client) {
	s.m.BootRequests.WithLabelValues(plan.Decision).Inc()
	s.m.LoaderRequests.WithLabelValues(cl.Loader, plan.Decision).Inc()
	if plan.Install {
		s.m.InstallTransitions.WithLabelValues(string(store.StateInstalling)).Inc()
	}
	// One line per boot, built without boxing its fields (LogAttrs), and
	// not at all when Info is off.
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "boot", slog.String("mac", string(cl.MAC)), slog.String("ip", cl.IP),
		slog.String("platform", cl.Platform), slog.String("loader", cl.Loader), slog.String("decision", plan.Decision),
		slog.String("reason", plan.Reason), slog.String("profile", plan.Profile), slog.String("rule", plan.Rule),
		slog.String("state", string(node.State)), slog.Uint64("boot_count", node.BootCount))
}

// fact reads one hardware fact: at most 128 printable ASCII characters.
// Firmware fills SMBIOS strings with anything, including padding and
// control bytes.
func fact(q url.Values, key string) string {
	v := q.Get(key)
	var b strings.Builder
	for _, r := range v {
		if b.Len() >= 128 {
			break
		}
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// writeScript renders a script template.
func (s *Server) writeScript(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := assets.RenderScript(&buf, name, data); err != nil {
		s.log.Error("boot: rendering script failed", "script", name, "err", err)
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("#!ipxe\necho PXE Pilot: internal error rendering the boot script\nexit 1\n")
	}
	w.Header().Set("Content-Type", scriptType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// binary serves an iPXE build over HTTP: UEFI HTTP Boot firmware is handed
// <base>/ipxe/ipxe.efi instead of a TFTP file name.
func (s *Server) binary(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	s.serveAsset(w, r, p.ByName("name"), assets.BinaryNames, s.cfg.Binaries, func(name string) string {
		return fmt.Sprintf("no iPXE binary named %q on this appliance (known: %s)", name, strings.Join(assets.BinaryNames, ", "))
	})
}

// serveAsset serves one of names from set (nil: none found), counted in
// pxe_pilot_asset_requests_total under its name, or "other" for a name
// that is not one of names (never a client's free text).
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, name string, names []string, set *assets.Binaries, missing func(name string) string) {
	label := name
	if !slices.Contains(names, name) {
		label = "other"
	}
	var (
		bin assets.Binary
		ok  bool
	)
	if set != nil && label != "other" {
		bin, ok = set.Get(name)
	}
	if !ok {
		s.m.AssetRequests.WithLabelValues(label, "missing").Inc()
		writeError(w, http.StatusNotFound, missing(truncate(name, 64)))
		return
	}
	data, err := bin.Bytes()
	if err != nil {
		s.m.AssetRequests.WithLabelValues(label, "unreadable").Inc()
		s.log.Error("file cannot be served", "file", name, "err", err)
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s cannot be read on the appliance: %v", name, err))
		return
	}
	s.m.AssetRequests.WithLabelValues(label, "served").Inc()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+bin.SHA256+`"`)
	http.ServeContent(w, r, name, startTime, bytes.NewReader(data))
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if err := s.cfg.Store.Ping(); err != nil {
		s.m.StoreErrors.WithLabelValues("ping").Inc()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "store: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK"})
}

// storeError maps a store failure to an HTTP answer.
func (s *Server) storeError(w http.ResponseWriter, op string, mac store.MAC, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("node %s is not known", mac))
		return
	}
	s.m.StoreErrors.WithLabelValues(op).Inc()
	s.log.Error("store failed", "op", op, "mac", mac, "err", err)
	code := http.StatusServiceUnavailable
	if errors.Is(err, store.ErrDiskFull) {
		code = http.StatusInsufficientStorage
	}
	writeError(w, code, "store unavailable: "+err.Error()+"; nothing was changed")
}
