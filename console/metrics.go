package console

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// consoleMetrics are the console's own collectors, registered on the
// appliance's registry (package metrics owns the registry; each server
// owns its collectors). Every label has a fixed set of values.
type consoleMetrics struct {
	logins   *prometheus.CounterVec // result="ok|wrong_key|limited|refused"
	refused  prometheus.Counter     // state changes refused for a missing or wrong CSRF token
	actions  *prometheus.CounterVec // action
	live     prometheus.Gauge       // open live streams
	liveBusy prometheus.Counter     // streams turned away (MaxLive)
	resyncs  prometheus.Counter     // streams told to reload because they lagged
}

var actionNames = []string{"reinstall", "cancel", "forget", "profile", "local_boot"}

func newConsoleMetrics(r *prometheus.Registry) (*consoleMetrics, error) {
	const ns, sub = "pxe_pilot", "console"
	m := &consoleMetrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "logins_total",
			Help: "Console sign-in attempts by result (refused: no valid form token; limited: the address was out of tries, its key not compared)."}, []string{"result"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "csrf_refusals_total",
			Help: "Console state changes refused because the form's CSRF token was missing or wrong."}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "actions_total",
			Help: "Node actions done from the console, by action."}, []string{"action"}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "live_streams",
			Help: "Browsers following live updates now."}),
		liveBusy: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "live_busy_total",
			Help: "Live streams turned away because the limit of browsers was reached."}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "live_resyncs_total",
			Help: "Live streams told to reload because they fell behind the change feed."}),
	}
	for _, c := range []prometheus.Collector{m.logins, m.refused, m.actions, m.live, m.liveBusy, m.resyncs} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("console: registering its metrics (one console per metrics registry): %w", err)
		}
	}
	for _, r := range []string{"ok", "wrong_key", "limited", "refused"} {
		m.logins.WithLabelValues(r)
	}
	for _, a := range actionNames {
		m.actions.WithLabelValues(a)
	}
	return m, nil
}
