package console

import (
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/pxe-pilot/pxe-pilot/assets"
)

// health is one line of the appliance page's health table.
type health struct {
	Name, Status, Detail string
	OK, On               bool
	Counters             []counter
}

type counter struct {
	Name  string
	Value float64
}

type binaryView struct {
	Name, Source, SHA256 string
	Found                bool
	Looked               string
	Bytes                int
}

type applianceData struct {
	Health   []health
	Binaries []binaryView
	Warnings []string
	Chart    chart
	Checked  string
}

// metricSums reads every counter of the registry, summed over its labels
// per family name (and per "name{label=value}" for the labels asked for).
func (c *Console) metricSums() map[string]float64 {
	out := map[string]float64{}
	mfs, err := c.cfg.Metrics.Registry.Gather()
	if err != nil {
		c.log.Warn("console: reading the metrics failed", "err", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			out[mf.GetName()] += v
			for _, l := range m.GetLabel() {
				out[mf.GetName()+"{"+l.GetName()+"="+l.GetValue()+"}"] += v
			}
		}
	}
	return out
}

func (c *Console) appliancePage(w http.ResponseWriter, r *http.Request) {
	sums := c.metricSums()
	pick := func(names ...string) []counter {
		out := make([]counter, 0, len(names)/2)
		for i := 0; i+1 < len(names); i += 2 {
			out = append(out, counter{Name: names[i], Value: sums[names[i+1]]})
		}
		return out
	}
	d := &applianceData{Warnings: c.cfg.Warnings, Chart: c.activity.chart(), Checked: c.now().UTC().Format(time.RFC3339)}

	start := time.Now()
	st := health{Name: "Store", On: true, OK: true, Status: "healthy"}
	if err := c.cfg.Store.Ping(); err != nil {
		st.OK, st.Status, st.Detail = false, "failing", err.Error()
	} else {
		st.Detail = "answered a ping in " + time.Since(start).Round(time.Microsecond).String()
	}
	st.Counters = pick("store errors", "pxe_pilot_store_errors_total")
	d.Health = append(d.Health, st)

	d.Health = append(d.Health, health{Name: "HTTP", On: true, OK: true, Status: "on", Detail: listenDetail(c.cfg.HTTPAddr),
		Counters: pick("boot requests", "pxe_pilot_boot_requests_total",
			"reinstalls served", "pxe_pilot_boot_requests_total{decision=reinstall}",
			"boot errors", "pxe_pilot_boot_requests_total{decision=error}",
			"chain requests", "pxe_pilot_chain_requests_total",
			"installer call-backs", "pxe_pilot_install_reports_total")})
	var svcs []Service
	if c.cfg.Services != nil {
		svcs = c.cfg.Services()
	}
	for _, s := range svcs {
		h := health{Name: s.Name, On: s.Enabled, OK: true, Status: "off", Detail: s.Detail}
		if s.Enabled {
			h.Status = "on"
		}
		switch s.Name {
		case "TFTP":
			h.Counters = pick("transfers started", "pxe_pilot_tftp_transfers_total{result=started}",
				"completed", "pxe_pilot_tftp_transfers_total{result=completed}",
				"failed", "pxe_pilot_tftp_transfers_total{result=failed}",
				"rejected", "pxe_pilot_tftp_rejected_total")
		case "ProxyDHCP":
			h.Counters = pick("packets", "pxe_pilot_dhcp_packets_total", "offers", "pxe_pilot_dhcp_offers_total",
				"ignored", "pxe_pilot_dhcp_ignored_total", "send errors", "pxe_pilot_dhcp_send_errors_total")
		}
		d.Health = append(d.Health, h)
	}
	d.Binaries = binaries(c.cfg.Binaries)
	c.render(w, r, http.StatusOK, "appliance", &pageData{Title: "Appliance", Nav: "appliance", Session: sessionOf(r),
		Flash: c.sessions.takeFlash(sessionOf(r).id), Data: d})
}

func binaries(b *assets.Binaries) []binaryView {
	if b == nil {
		return nil
	}
	var out []binaryView
	for _, name := range b.Found() {
		f, _ := b.Get(name)
		out = append(out, binaryView{Name: name, Source: f.Source, SHA256: f.SHA256[:16], Found: true, Bytes: f.Size})
	}
	var missing []string
	for name := range b.Missing() {
		missing = append(missing, name)
	}
	sort.Strings(missing)
	for _, name := range missing {
		out = append(out, binaryView{Name: name, Looked: strings.Join(b.Missing()[name], ", ")})
	}
	return out
}

// listenDetail words a listen address ("" host: every interface).
func listenDetail(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return "listening on " + addr
	case host == "" || host == "0.0.0.0" || host == "::":
		return "listening on port " + port + ", every interface"
	}
	return "listening on " + addr
}
