// Package metrics owns PXE Pilot's one Prometheus registry and every
// collector the appliance exports.
//
// Names follow <project>_<subsystem>_<name>_<unit> and every label has a
// small, bounded set of values: a label fed from the network (a file name, a
// packet type) must be mapped onto a fixed set by the caller before it gets
// here, or a hostile client could create series without end. The global
// default registry is never used, so tests can build as many independent
// Metrics values as they like.
package metrics

import (
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "pxe_pilot"

// Metrics holds the registry and all collectors. Build it with New; the zero
// value is not usable.
type Metrics struct {
	Registry *prometheus.Registry

	// HTTP API.
	BootRequests *prometheus.CounterVec // decision="reinstall|local|error"
	// LoaderRequests: the same requests by loader="ipxe|grub" and decision.
	LoaderRequests   *prometheus.CounterVec
	ChainRequests    prometheus.Counter     //
	ReinstallChanges *prometheus.CounterVec // action="set|clear"
	InstallReports   *prometheus.CounterVec // result="installed|failed|progress|refused"
	// InstallTransitions counts lifecycle moves by the state entered:
	// installing (installer served), installed, failed (reported or
	// stalled).
	InstallTransitions *prometheus.CounterVec   // state
	InstallStalls      prometheus.Counter       // installs failed by PXE_INSTALL_TIMEOUT
	NodesForgotten     prometheus.Counter       // idle nodes forgotten by PXE_NODE_RETENTION
	InstallFiles       *prometheus.CounterVec   // result="served|missing|refused|error"
	HTTPDuration       *prometheus.HistogramVec // route, code
	AssetRequests      *prometheus.CounterVec   // file, result="served|missing|unreadable"
	AdminKeyRefusals   *prometheus.CounterVec   // result="wrong_key|limited"

	// Store.
	StoreErrors *prometheus.CounterVec // op

	// ProxyDHCP.
	DHCPPackets       *prometheus.CounterVec // type (DHCP message type, or "malformed")
	DHCPOffers        *prometheus.CounterVec // arch, stage="firmware|ipxe"
	DHCPIgnored       *prometheus.CounterVec // reason
	DHCPReplyDuration prometheus.Histogram   // receive to send, seconds
	DHCPSendErrors    prometheus.Counter

	// TFTP.
	TFTPTransfers  *prometheus.CounterVec   // file, result="started|completed|failed"
	TFTPBytes      *prometheus.CounterVec   // file
	TFTPDuration   *prometheus.HistogramVec // file
	TFTPRejected   *prometheus.CounterVec   // reason="write|not_found|bad_path|too_long|malformed|busy|client_limit|deadline|unreadable"
	TFTPLoopBreaks prometheus.Counter       // router-only mode: script served instead of a binary
}

// StoreOps are the op label values of pxe_pilot_store_errors_total.
var StoreOps = []string{"record_boot", "ping", "mark_installed", "list", "get", "delete", "events", "set_reinstall", "set_local_boot", "update", "report", "sync"}

// New registers every collector on a fresh registry, together with the Go
// runtime and process collectors and pxe_pilot_build_info.
func New(version string) *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }

	m := &Metrics{Registry: r}

	m.BootRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "boot_requests_total",
		Help: "GET /boot requests by the decision served.",
	}, []string{"decision"})
	m.LoaderRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "loader_boot_requests_total",
		Help: "Boot decisions served, by the loader that asked (ipxe: GET /boot, grub: GET /grub) and the decision.",
	}, []string{"loader", "decision"})
	m.ChainRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "chain_requests_total",
		Help: "GET /chain requests (iPXE entering the appliance).",
	})
	m.ReinstallChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "reinstall_changes_total",
		Help: "Admin changes of the reinstall flag.",
	}, []string{"action"})
	m.InstallReports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "install_reports_total",
		Help: "Installer call-backs received, by result (refused: no valid token).",
	}, []string{"result"})
	m.InstallTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "install_transitions_total",
		Help: "Install lifecycle transitions, by the state entered (installing, installed, failed).",
	}, []string{"state"})
	m.InstallStalls = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "install_stalls_total",
		Help: "Installs marked failed because the installer gave no word for PXE_INSTALL_TIMEOUT.",
	})
	m.NodesForgotten = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "nodes_forgotten_total",
		Help: "Nodes forgotten by PXE_NODE_RETENTION: booted local only, no admin state, not seen within the retention.",
	})
	m.InstallFiles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "install_files_total",
		Help: "Installer configs requested under /install/, by result.",
	}, []string{"result"})
	m.HTTPDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP request latency by route pattern and status code.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "code"})
	m.AssetRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "asset_requests_total",
		Help: "iPXE binaries requested over HTTP (UEFI HTTP Boot), by file and result.",
	}, []string{"file", "result"})

	m.AdminKeyRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "http", Name: "admin_key_refusals_total",
		Help: "API requests whose bearer key was refused: wrong_key (a try spent), limited (the address was out of tries, its key not compared).",
	}, []string{"result"})

	m.StoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "errors_total",
		Help: "Store operations that failed, by operation.",
	}, []string{"op"})

	m.DHCPPackets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "dhcp", Name: "packets_total",
		Help: "DHCP packets received by the proxy, by message type.",
	}, []string{"type"})
	m.DHCPOffers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "dhcp", Name: "offers_total",
		Help: "ProxyDHCP replies sent, by client architecture and boot stage.",
	}, []string{"arch", "stage"})
	m.DHCPIgnored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "dhcp", Name: "ignored_total",
		Help: "DHCP packets the proxy did not answer, by reason.",
	}, []string{"reason"})
	m.DHCPReplyDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "dhcp", Name: "reply_duration_seconds",
		Help:    "Time from receiving a PXE request to sending the reply.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
	})
	m.DHCPSendErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "dhcp", Name: "send_errors_total",
		Help: "ProxyDHCP replies that could not be sent.",
	})

	m.TFTPTransfers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "tftp", Name: "transfers_total",
		Help: "TFTP read transfers by file and result (started, completed, failed).",
	}, []string{"file", "result"})
	m.TFTPBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "tftp", Name: "sent_bytes_total",
		Help: "Bytes sent by TFTP, by file.",
	}, []string{"file"})
	m.TFTPDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "tftp", Name: "transfer_duration_seconds",
		Help:    "Duration of completed TFTP transfers, by file.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"file"})
	m.TFTPRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "tftp", Name: "rejected_total",
		Help: "TFTP requests refused, by reason.",
	}, []string{"reason"})
	m.TFTPLoopBreaks = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "tftp", Name: "loop_breaks_total",
		Help: "Router-only TFTP mode: times a client that had just loaded iPXE was served the chain script instead.",
	})

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; labels carry the version and Go runtime.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	for _, c := range []prometheus.Collector{
		m.BootRequests, m.LoaderRequests, m.ChainRequests, m.ReinstallChanges, m.InstallReports,
		m.InstallTransitions, m.InstallStalls, m.NodesForgotten, m.InstallFiles,
		m.HTTPDuration, m.AssetRequests, m.AdminKeyRefusals, m.StoreErrors,
		m.DHCPPackets, m.DHCPOffers, m.DHCPIgnored, m.DHCPReplyDuration, m.DHCPSendErrors,
		m.TFTPTransfers, m.TFTPBytes, m.TFTPDuration, m.TFTPRejected, m.TFTPLoopBreaks,
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	// Seed the label values a dashboard queries, so every series exists from
	// start-up (a rate() over a missing series shows "no data", not 0).
	for _, d := range []string{"reinstall", "local", "error"} {
		m.BootRequests.WithLabelValues(d)
		m.LoaderRequests.WithLabelValues("ipxe", d)
		m.LoaderRequests.WithLabelValues("grub", d)
	}
	for _, a := range []string{"set", "clear"} {
		m.ReinstallChanges.WithLabelValues(a)
	}
	for _, r := range []string{"wrong_key", "limited"} {
		m.AdminKeyRefusals.WithLabelValues(r)
	}
	for _, r := range []string{"installed", "failed", "progress", "refused"} {
		m.InstallReports.WithLabelValues(r)
	}
	for _, st := range []string{"installing", "installed", "failed"} {
		m.InstallTransitions.WithLabelValues(st)
	}
	for _, r := range []string{"served", "missing", "refused", "error"} {
		m.InstallFiles.WithLabelValues(r)
	}
	for _, op := range StoreOps {
		m.StoreErrors.WithLabelValues(op)
	}
	return m
}

// RegisterNodeGauge exports pxe_pilot_nodes{state}: count reports the number
// of nodes per state at scrape time (so the gauge can never drift from the
// store). count must be cheap and safe for concurrent use.
func (m *Metrics) RegisterNodeGauge(states []string, count func() (map[string]int, error)) {
	m.Registry.MustRegister(&nodeCollector{states: states, count: count, desc: prometheus.NewDesc(
		namespace+"_nodes", "Known nodes by lifecycle state.", []string{"state"}, nil)})
}

type nodeCollector struct {
	states []string
	count  func() (map[string]int, error)
	desc   *prometheus.Desc
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.count()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range c.states {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
