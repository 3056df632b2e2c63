package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/pxe-pilot/pxe-pilot/assets"
	"github.com/pxe-pilot/pxe-pilot/boot"
	"github.com/pxe-pilot/pxe-pilot/store"
)

// The Secure Boot chain over HTTP: GRUB's per-machine script (/grub), the
// static grub.cfg under GRUB's built-in prefixes, and shim and GRUB
// themselves over HTTP (/shim/<name>: shim fetches grubx64.efi
// from the folder it was loaded from).

// routesGRUB adds the GRUB routes.
func (s *Server) routesGRUB(open func(method, path string, h httprouter.Handle)) {
	open(http.MethodGet, boot.GRUBConfigPath, s.grub)
	for _, prefix := range assets.GRUBPrefixes {
		open(http.MethodGet, prefix+"/grub.cfg", s.grubCfg)
	}
	open(http.MethodGet, "/shim/:name", s.signed)
	open(http.MethodHead, "/shim/:name", s.signed)
	open(http.MethodGet, "/"+boot.GRUBNodeFolder+":name", s.grubNode)
}

// grubNode serves the TFTP folder /grub/node/ over HTTP too, for a GRUB
// loaded over HTTP (its root is the appliance's HTTP server): the
// grub.cfg served here sources /grub/node/$net_default_mac, and the
// script names its relayed files /grub/node/<MAC>.kernel and the like.
func (s *Server) grubNode(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	name := p.ByName("name")
	var client netip.Addr
	if a, err := netip.ParseAddr(s.ClientIP(r)); err == nil {
		client = a
	}
	w.Header().Set("Cache-Control", "no-store")
	if body, ok := s.GRUBScript(name, client); ok {
		w.Header().Set("Content-Type", scriptType)
		w.Write(body)
		return
	}
	rd, size, ok := s.GRUBRelayed(name, client)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no file %q in /%s: the folder holds each machine's GRUB script (<MAC>) and, for a few minutes after it was served, the installer files it names", truncate(name, 64), boot.GRUBNodeFolder))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	// Sent at the mirror's pace: the server's write timeout (5 minutes)
	// would cut a slow mirror's initrd, which the relay fetches for up to
	// relayFetchTimeout.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(relayFetchTimeout))
	if n, err := io.Copy(w, rd); err != nil {
		s.log.Warn("grub: relaying an installer file over HTTP failed", "file", name, "bytes", n, "err", err)
	}
}

// grub records the boot and serves the decision as a GRUB script. It is
// /boot for GRUB: the same s.decide, so the reinstall flag is consumed
// exactly as for iPXE, and the event and metrics name the loader "grub".
// A GRUB with an http module sends mac=$net_default_mac&ip=$net_default_ip
// &platform=$grub_platform&buildarch=$grub_cpu; Debian's signed GRUB has
// none and asks over TFTP instead (GRUBScript).
func (s *Server) grub(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	ip := s.ClientIP(r)
	if a, err := ClientAddr(q.Get("ip")); err == nil {
		ip = a.String()
	}
	code, body := s.grubFor(q.Get("mac"), ip, store.Facts{Platform: fact(q, "platform"), BuildArch: fact(q, "buildarch")})
	w.Header().Set("Content-Type", scriptType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(body)
}

// GRUBScript is the TFTP side of /grub (tftpsrv.Generator): Debian's
// signed GRUB has no http module, so its grub.cfg sources
// /grub/node/$net_default_mac from the appliance over TFTP, and this
// makes that file: the same decision, recorded the same way, with the
// TFTP client's address as the machine's IP. It always answers (an error
// script for a bad MAC), so GRUB never waits on "file not found".
func (s *Server) GRUBScript(mac string, client netip.Addr) ([]byte, bool) {
	if strings.Contains(mac, ".") {
		return nil, false // an installer file of the plan just served: GRUBRelayed
	}
	ip := ""
	if client.IsValid() {
		ip = client.Unmap().String()
	}
	_, body := s.grubFor(mac, ip, store.Facts{Platform: "efi"})
	return body, true
}

// grubFor decides for one GRUB request and renders the answer.
func (s *Server) grubFor(rawMAC, ip string, facts store.Facts) (int, []byte) {
	mac, err := store.ParseMAC(rawMAC)
	if err != nil {
		s.m.BootRequests.WithLabelValues(store.DecisionError).Inc()
		s.m.LoaderRequests.WithLabelValues(boot.LoaderGRUB, store.DecisionError).Inc()
		s.log.Warn("grub: bad MAC", "mac", truncate(rawMAC, 64), "ip", ip, "err", err)
		return s.renderGRUB(http.StatusBadRequest, boot.Plan{Decision: store.DecisionError, Lines: []string{
			"the GRUB request has no usable MAC address (" + truncate(err.Error(), 120) + ")",
			"GRUB must ask for /grub/node/$net_default_mac (TFTP) or " + s.cfg.BaseURL + boot.GRUBConfigPath + "?mac=$net_default_mac",
		}})
	}
	cl := boot.Client{MAC: mac, IP: ip, Platform: facts.Platform, Loader: boot.LoaderGRUB}
	plan, node, err := s.decide(cl, facts)
	if err != nil {
		s.m.BootRequests.WithLabelValues(store.DecisionError).Inc()
		s.m.LoaderRequests.WithLabelValues(boot.LoaderGRUB, store.DecisionError).Inc()
		s.m.StoreErrors.WithLabelValues("record_boot").Inc()
		s.log.Error("grub: store failed", "mac", mac, "ip", ip, "err", err)
		return s.renderGRUB(http.StatusInternalServerError, boot.Plan{Decision: store.DecisionError, MAC: mac, Lines: []string{
			"the appliance could not record this boot (store error); see its log",
		}})
	}
	code, body := s.renderGRUB(http.StatusOK, s.relayPlan(plan))
	s.logBoot(plan, node, cl)
	return code, body
}

// renderGRUB renders a plan with boot.GRUB. Decide only hands GRUB plans
// it passed boot.GRUBCheck, so a rendering error is an internal one.
func (s *Server) renderGRUB(code int, plan boot.Plan) (int, []byte) {
	body, err := boot.GRUB(plan)
	if err != nil {
		s.log.Error("grub: rendering the script failed", "mac", plan.MAC, "err", err)
		return http.StatusInternalServerError, []byte("echo 'PXE Pilot: internal error rendering the GRUB script; see the appliance log'\nsleep 3\nexit\n")
	}
	return code, body
}

// grubCfg serves the static grub.cfg (GRUB loaded over HTTP Boot reads its
// prefix from the appliance too).
func (s *Server) grubCfg(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if s.grubCfgBuf == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no grub.cfg: PXE_BASE_URL %s is not a plain http:// URL GRUB can use", s.cfg.BaseURL))
		return
	}
	w.Header().Set("Content-Type", scriptType)
	w.Write(s.grubCfgBuf)
}

// signed serves shim and GRUB over HTTP, for a GRUB build that can boot
// over HTTP (ProxyDHCP does not offer Debian's chain to HTTP Boot clients).
func (s *Server) signed(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	s.serveAsset(w, r, p.ByName("name"), assets.SignedNames, s.cfg.Signed, func(name string) string {
		return fmt.Sprintf("no signed boot file named %q on this appliance (known: %s; from Debian's %s)",
			name, strings.Join(assets.SignedNames, ", "), assets.SignedPackages)
	})
}
