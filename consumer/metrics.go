package consumer

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "castle_destination"

// metrics are the consumer's Prometheus metrics. The only label, partition,
// is bounded by the topic's partition count; series of partitions this member
// no longer owns are deleted.
type metrics struct {
	fetched      prometheus.Counter
	acks         prometheus.Counter
	lateAcks     prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	fetchErrors  prometheus.Counter
	generations  prometheus.Counter
	abandoned    prometheus.Counter
	assigned     prometheus.Gauge
	lag          *prometheus.GaugeVec
	inFlight     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "consumer", Name: name, Help: help})
	}
	m := &metrics{
		fetched:      counter("records_fetched_total", "Records fetched from Kafka and handed to the pipeline."),
		acks:         counter("acks_total", "Records acknowledged (delivered, dropped or dead-lettered) within their generation."),
		lateAcks:     counter("late_acks_total", "Acknowledgements ignored because the record's generation had ended."),
		commits:      counter("commits_total", "Successful offset commits."),
		commitErrors: counter("commit_errors_total", "Failed offset commits."),
		fetchErrors:  counter("fetch_errors_total", "Errors returned by partition fetches (retried)."),
		generations:  counter("generations_total", "Consumer group generations joined (one per rebalance)."),
		abandoned:    counter("abandoned_records_total", "Records still un-acked when their generation ended or the drain timed out; they are re-read by the next owner."),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "consumer", Name: "assigned_partitions",
			Help: "Partitions assigned to this member in the current generation."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "consumer", Name: "lag",
			Help: "Records between the acknowledged watermark and the log end offset, per owned partition."}, []string{"partition"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "consumer", Name: "in_flight",
			Help: "Records handed out and not yet acknowledged, per owned partition."}, []string{"partition"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.fetched, m.acks, m.lateAcks, m.commits, m.commitErrors, m.fetchErrors,
		m.generations, m.abandoned, m.assigned, m.lag, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register consumer metrics: %w", err)
		}
	}
	return m, nil
}

func partitionLabel(p int) string { return strconv.Itoa(p) }
