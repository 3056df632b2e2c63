package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/assets"
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
		s.log.Warn("boot: bad MAC", "mac", truncate(q.Get("mac"), 64), "remote", r.RemoteAddr, "err", err)
		s.writeScript(w, http.StatusBadRequest, assets.ScriptError, errorLines(
			"the boot request has no usable MAC address ("+err.Error()+")",
			"iPXE must call "+s.cfg.BaseURL+"/boot?mac=${mac}",
		))
		return
	}
	ip := s.clientIP(r)
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
	cl := Client{MAC: mac, IP: ip, Platform: facts.Platform}
	now := s.now().UTC()

	var plan Plan
	node, _, err := s.cfg.Store.RecordBoot(mac, store.Sighting{Time: now, IP: ip, Facts: facts}, func(n *store.Node) store.Event {
		plan = Decide(*n, cl, s.cfg.Boot)
		if plan.Install {
			n.StartInstall(now)
		}
		return store.Event{Decision: plan.Decision, Reason: plan.Reason}
	})
	if err != nil {
		s.m.BootRequests.WithLabelValues(store.DecisionError).Inc()
		s.m.StoreErrors.WithLabelValues("record_boot").Inc()
		s.log.Error("boot: store failed", "mac", mac, "ip", ip, "err", err)
		s.writeScript(w, http.StatusInternalServerError, assets.ScriptError, errorLines(
			"the appliance could not record this boot (store error); see its log",
		))
		return
	}
	s.m.BootRequests.WithLabelValues(plan.Decision).Inc()
	s.log.Info("boot", "mac", mac, "ip", ip, "platform", facts.Platform, "decision", plan.Decision,
		"reason", plan.Reason, "state", node.State, "boot_count", node.BootCount)
	s.writeScript(w, http.StatusOK, plan.Script, plan.Data)
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

// echoSafe keeps what iPXE's echo prints literally. iPXE expands "${…}"
// anywhere on a line, and treats "||", "&&" and ";" standing as words as
// command separators and "#" as a comment, so all of "$ { } | & ; # ' \""
// are replaced, except the exact "${mac}" of the "iPXE must call" hint: that
// is a deliberate expansion, and the one setting it could reach is the
// machine's own MAC. (The hint used to switch on keeping every "${" for the
// whole line when the line merely contained the hint's text, which a client
// could put in its own bad MAC.)
func echoSafe(s string) string {
	const keep = " .,:_/=()@+-?%<>"
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "${mac}") {
			b.WriteString("${mac}")
			i += len("${mac}")
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(keep, r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// installed is the installer's call-back (for example an autoinstall
// late-command: curl -X POST <base>/installed?mac=…). It is open like /boot:
// a machine reports on itself.
func (s *Server) installed(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	mac, ok := s.parseMAC(w, r.URL.Query().Get("mac"))
	if !ok {
		return
	}
	n, err := s.cfg.Store.MarkInstalled(mac, s.now().UTC())
	if err != nil {
		s.storeError(w, "mark_installed", mac, err)
		return
	}
	s.m.InstallReports.WithLabelValues("installed").Inc()
	s.log.Info("install reported done", "mac", mac, "ip", s.clientIP(r))
	writeJSON(w, http.StatusOK, n)
}

// binary serves an iPXE build over HTTP: UEFI HTTP Boot firmware is handed
// <base>/ipxe/ipxe.efi instead of a TFTP file name.
func (s *Server) binary(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	name := p.ByName("name")
	label := name
	if !slices.Contains(assets.BinaryNames, name) {
		label = "other"
	}
	var (
		bin assets.Binary
		ok  bool
	)
	if s.cfg.Binaries != nil && label != "other" {
		bin, ok = s.cfg.Binaries.Get(name)
	}
	if !ok {
		s.m.AssetRequests.WithLabelValues(label, "missing").Inc()
		writeError(w, http.StatusNotFound, fmt.Sprintf("no iPXE binary named %q on this appliance (known: %s)",
			truncate(name, 64), strings.Join(assets.BinaryNames, ", ")))
		return
	}
	s.m.AssetRequests.WithLabelValues(label, "served").Inc()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+bin.SHA256+`"`)
	http.ServeContent(w, r, name, startTime, bytes.NewReader(bin.Data))
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
