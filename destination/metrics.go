package destination

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// class is the outcome class of one HTTP attempt: the bounded values of
// the "class" and "cause" labels.
type class uint8

const (
	classNone class = iota // not retryable (as a cause)
	class2xx
	class4xx
	class429
	class5xx
	classOther // 1xx/3xx: unexpected, treated as retryable
	classTimeout
	classConnError
	classCanceled
	numClasses
)

var classNames = [numClasses]string{"", "2xx", "4xx", "429", "5xx", "other", "timeout", "conn_error", "canceled"}

func (c class) String() string { return classNames[c] }

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
//	castle_destination_castle_concurrency_limit           the adaptive limit on requests in flight
//	castle_destination_castle_pacing_waits_total          times a user's event waited for the per-user rate limit
//	castle_destination_castle_pacing_wait_seconds_total   total time spent in those waits
//	castle_destination_castle_throttled                   1 while an account-wide 429 holds every request
//	castle_destination_castle_connections_opened_total    connections opened to Castle (the client's own transport)
//	castle_destination_castle_connection_resends_total    requests sent again at once on a new connection: a kept
//	                                                      one failed before any answer (the server had closed it)
//	castle_destination_castle_tokens_expired_total        /v1/log requests sent without their request token: it
//	                                                      expired while the event was retried or held, or
//	                                                      Castle refused it
//	castle_destination_scoring_fallbacks_total{reason}    scored events sent to /v1/log instead: token_refused, token_aged
type metrics struct {
	requests   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	events     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	inFlight   prometheus.Gauge
	limit      prometheus.Gauge
	paceWaits  prometheus.Counter
	paceWaited prometheus.Counter
	throttled  prometheus.Gauge
	fallbacks  *prometheus.CounterVec
	// opened and resent count the client's own transport's connections
	// and immediate resends (h1).
	opened, resent prometheus.Counter
	// tokensExpired counts request tokens left out of /v1/log requests
	// sent after Event.TokenUntil, or after Castle refused them.
	tokensExpired prometheus.Counter

	// Series resolved once, so the hot path does no label hashing.
	reqBy   [numClasses]prometheus.Counter
	latBy   [numClasses]prometheus.Observer
	retryBy [numClasses]prometheus.Counter

	mu    sync.Mutex
	types map[string]*[numStatuses]prometheus.Counter
}

// numStatuses sizes arrays indexed by Status.
const numStatuses = int(Canceled) + 1

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
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "concurrency_limit",
			Help: "The adaptive limit on HTTP requests to Castle in flight, at most CASTLE_CONCURRENCY.",
		}),
		paceWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pacing_waits_total",
			Help: "Times an event waited for its user's rate limit.",
		}),
		paceWaited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pacing_wait_seconds_total",
			Help: "Total time events waited for their user's rate limit.",
		}),
		throttled: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "throttled",
			Help: "1 while Castle throttles the account (429s beyond per-user limits) and every request waits.",
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "scoring_fallbacks_total",
			Help: "Events meant for scoring sent to /v1/log instead: token_refused (Castle refused the request token), token_aged (it aged out before it could be sent).",
		}, []string{"reason"}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_opened_total",
			Help: "Connections opened to Castle. Rising with requests_total means connections are not kept alive (the server, a load balancer or an idle timeout closes them), and each new one over TLS costs a handshake.",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connection_resends_total",
			Help: "Requests sent again at once on a new connection because a kept-alive one failed before any answer came (the server had closed it). Like a retry after a timeout, one may rarely duplicate an event at Castle.",
		}),
		tokensExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tokens_expired_total",
			Help: "/v1/log requests sent without their request token: retries or a hold outlasted the token's 120 s at Castle, or Castle refused it (422 invalid_request_token).",
		}),
		types: make(map[string]*[numStatuses]prometheus.Counter),
	}
	for _, r := range []string{FallbackTokenRefused, FallbackTokenAged} {
		m.fallbacks.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.requests, m.retries, m.events, m.latency, m.inFlight, m.limit, m.paceWaits, m.paceWaited, m.throttled, m.fallbacks, m.opened, m.resent, m.tokensExpired} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Create the bounded series up front, so dashboards see zeros.
	for c := class2xx; c < numClasses; c++ {
		m.reqBy[c] = m.requests.WithLabelValues(c.String())
		m.latBy[c] = m.latency.WithLabelValues(c.String())
	}
	for _, c := range []class{class429, class5xx, classOther, classTimeout, classConnError} {
		m.retryBy[c] = m.retries.WithLabelValues(c.String())
	}
	return m, nil
}

// eventCounter returns the events_total series for (typ, st). The type
// label is bounded: "" is "unknown", and past maxTypeLabels distinct
// values, new ones are "other".
func (m *metrics) eventCounter(typ string, st Status) prometheus.Counter {
	if typ == "" {
		typ = "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.types[typ]
	if cs == nil {
		label := typ
		if len(m.types) >= maxTypeLabels {
			label = "other"
			if cs = m.types[label]; cs != nil {
				return cs[st]
			}
		}
		cs = new([numStatuses]prometheus.Counter)
		for s := Delivered; s <= Canceled; s++ {
			cs[s] = m.events.WithLabelValues(label, s.String())
		}
		m.types[label] = cs
	}
	return cs[st]
}
