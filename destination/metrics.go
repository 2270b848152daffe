package destination

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Request classes: the bounded values of the "class" label.
const (
	class2xx       = "2xx"
	class4xx       = "4xx"
	class429       = "429"
	class5xx       = "5xx"
	classOther     = "other" // 1xx/3xx: unexpected, treated as retryable
	classTimeout   = "timeout"
	classConnError = "conn_error"
	classCanceled  = "canceled"
)

// maxTypeLabels bounds the distinct values of the "type" label; later
// values are reported as "other".
const maxTypeLabels = 16

// metrics holds every metric of the client. Names (namespace
// castle_destination, subsystem castle):
//
//	castle_destination_castle_requests_total{class}       HTTP attempts by outcome class:
//	                                                      2xx, 4xx, 429, 5xx, other, timeout, conn_error, canceled
//	castle_destination_castle_retries_total{cause}        retries scheduled, by cause: 429, 5xx, other, timeout, conn_error
//	castle_destination_castle_events_total{type,result}   settled events: result delivered, rejected,
//	                                                      retries_exhausted, canceled; type from Event.Type (bounded)
//	castle_destination_castle_request_duration_seconds{class} attempt latency histogram
//	castle_destination_castle_requests_in_flight          HTTP requests in flight
//	castle_destination_castle_pacing_waits_total          times a user's event waited for the per-user rate limit
//	castle_destination_castle_pacing_wait_seconds_total   total time spent in those waits
type metrics struct {
	requests   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	events     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	inFlight   prometheus.Gauge
	paceWaits  prometheus.Counter
	paceWaited prometheus.Counter

	mu    sync.Mutex
	types map[string]struct{}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "castle_destination", "castle"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "HTTP requests to Castle by outcome class (2xx, 4xx, 429, 5xx, other, timeout, conn_error, canceled).",
		}, []string{"class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "retries_total",
			Help: "Retries scheduled, by cause. A retry after a timeout may duplicate an event at Castle.",
		}, []string{"cause"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events settled, by type and result (delivered, rejected, retries_exhausted, canceled).",
		}, []string{"type", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Latency of HTTP requests to Castle, by outcome class.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"class"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_in_flight",
			Help: "HTTP requests to Castle in flight.",
		}),
		paceWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pacing_waits_total",
			Help: "Times an event waited for its user's rate limit.",
		}),
		paceWaited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pacing_wait_seconds_total",
			Help: "Total time events waited for their user's rate limit.",
		}),
		types: make(map[string]struct{}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.events, m.latency, m.inFlight, m.paceWaits, m.paceWaited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the bounded series so dashboards see zeros.
	for _, c := range []string{class2xx, class4xx, class429, class5xx, classOther, classTimeout, classConnError, classCanceled} {
		m.requests.WithLabelValues(c)
		m.latency.WithLabelValues(c)
	}
	for _, c := range []string{class429, class5xx, classOther, classTimeout, classConnError} {
		m.retries.WithLabelValues(c)
	}
	return m, nil
}

// typeLabel bounds the cardinality of the caller-chosen type label.
func (m *metrics) typeLabel(t string) string {
	if t == "" {
		return "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.types[t]; ok {
		return t
	}
	if len(m.types) >= maxTypeLabels {
		return "other"
	}
	m.types[t] = struct{}{}
	return t
}
