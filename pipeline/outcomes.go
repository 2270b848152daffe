package pipeline

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Outcomes are the pipeline's counters, read back from a registry: what the
// demo and replay summaries print and what end-to-end tests compare.
type Outcomes struct {
	Consumed     int
	Forwarded    map[string]int // by Segment type
	Identified   int
	Dropped      map[string]int // by reason
	DeadLettered map[string]int // by reason
	// Canceled counts events given back unsettled (shutdown); their
	// records are read again.
	Canceled int
}

// Settled is the number of messages forwarded, identified, dropped or
// dead-lettered.
func (o Outcomes) Settled() int {
	n := o.Identified
	for _, m := range []map[string]int{o.Forwarded, o.Dropped, o.DeadLettered} {
		for _, v := range m {
			n += v
		}
	}
	return n
}

// Observe reads the pipeline's counters from g.
func Observe(g prometheus.Gatherer) (Outcomes, error) {
	mfs, err := g.Gather()
	if err != nil {
		return Outcomes{}, fmt.Errorf("gather metrics: %w", err)
	}
	o := Outcomes{Forwarded: map[string]int{}, Dropped: map[string]int{}, DeadLettered: map[string]int{}}
	for _, mf := range mfs {
		switch mf.GetName() {
		case namespace + "_messages_consumed_total":
			o.Consumed = sum(mf)
		case namespace + "_messages_identified_total":
			o.Identified = sum(mf)
		case namespace + "_events_canceled_total":
			o.Canceled = sum(mf)
		case namespace + "_events_forwarded_total":
			byLabel(mf, "type", o.Forwarded)
		case namespace + "_messages_dropped_total":
			byLabel(mf, "reason", o.Dropped)
		case namespace + "_dead_letters_total":
			byLabel(mf, "reason", o.DeadLettered)
		}
	}
	return o, nil
}

func sum(mf *dto.MetricFamily) int {
	var n float64
	for _, m := range mf.GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return int(n)
}

func byLabel(mf *dto.MetricFamily, label string, into map[string]int) {
	for _, m := range mf.GetMetric() {
		v := int(m.GetCounter().GetValue())
		if v == 0 {
			continue
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				into[lp.GetValue()] += v
			}
		}
	}
}
