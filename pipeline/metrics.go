package pipeline

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/mapping"
)

// metrics are the pipeline's Prometheus series. Label values are bounded:
// Segment types (page, track) and mapping or delivery reasons.
type metrics struct {
	consumed    prometheus.Counter
	forwarded   *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	identified  prometheus.Counter
	canceled    prometheus.Counter
	abandoned   *prometheus.CounterVec
	adjusted    *prometheus.CounterVec
	batchSize   prometheus.Histogram
	inFlight    prometheus.Gauge
	dupWaiting  prometheus.GaugeFunc
}

const namespace = "castle_destination"

// newMetrics registers the series; seen is the dedupe window (nil: none),
// whose copies waiting are a gauge.
func newMetrics(reg prometheus.Registerer, seen *Dedupe) (*metrics, error) {
	m := &metrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "messages_consumed_total", Help: "Input records read (Kafka messages or archive lines); an envelope counts once."}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "events_forwarded_total", Help: "Events Castle accepted, by Segment type."}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "messages_dropped_total", Help: "Segment messages dropped on purpose, by reason."}, []string{"reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "dead_letters_total", Help: "Segment messages dead-lettered, by reason."}, []string{"reason"}),
		identified: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "messages_identified_total", Help: "Identify messages absorbed into the per-user cache."}),
		canceled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "events_canceled_total", Help: "Events neither delivered nor dead-lettered because work was canceled (shutdown, rebalance); their records are offered again."}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "records_abandoned_total", Help: "Records given back unsettled, to be read again, by reason: canceled (shutdown, rebalance), dead_letter_not_written, verdict_not_written."}, []string{"reason"}),
		adjusted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "mapping_adjustments_total", Help: "Messages whose data the mapping cut, converted or left out by a documented rule, by kind (one count per message and kind)."}, []string{"kind"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name: "batch_size", Help: "Messages per delivery batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
			Name: "in_flight_events", Help: "Messages in batches being delivered or dead-lettered."}),
		dupWaiting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace,
			Name: "duplicates_waiting", Help: "Copies of a messageId read while its event was still in flight (as after a rebalance hands a partition back), waiting for that event to settle before their records are done."},
			func() float64 {
				if seen == nil {
					return 0
				}
				return float64(seen.Waiting())
			}),
	}
	for _, t := range []string{"page", "track"} {
		m.forwarded.WithLabelValues(t)
	}
	for _, r := range mapping.Reasons() {
		switch r {
		case mapping.ReasonMalformed, mapping.ReasonUserJWTInvalid:
			m.deadLetters.WithLabelValues(string(r))
		default:
			m.dropped.WithLabelValues(string(r))
		}
	}
	for _, r := range []string{"rejected", "retries_exhausted"} {
		m.deadLetters.WithLabelValues(r)
	}
	for _, r := range []string{"canceled", "dead_letter_not_written", "verdict_not_written"} {
		m.abandoned.WithLabelValues(r)
	}
	for _, k := range mapping.Adjustments() {
		m.adjusted.WithLabelValues(k.String())
	}
	for _, c := range []prometheus.Collector{m.consumed, m.forwarded, m.dropped, m.deadLetters, m.identified,
		m.canceled, m.abandoned, m.adjusted, m.batchSize, m.inFlight, m.dupWaiting} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("register pipeline metrics"), err)
		}
	}
	return m, nil
}
