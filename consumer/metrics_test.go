package consumer

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// gathered returns the values of a metric family from reg, keyed by the
// partition label ("" without one).
func gathered(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					key = l.GetValue()
				}
			}
			out[key] = metricValue(mf.GetType(), m)
		}
	}
	return out
}

func metricValue(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return -1
}

func waitGathered(t *testing.T, reg *prometheus.Registry, name string, want map[string]float64) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		if got := gathered(t, reg, name); !maps.Equal(got, want) {
			return fmt.Sprintf("%s = %v, want %v", name, got, want)
		}
		return ""
	})
}

func TestLagMetric(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0}, 0, 20)
	produceN(t, kc, "in", []int{1}, 0, 10)
	reg := prometheus.NewRegistry()
	r := startWith(t, testConfig(kc, "in", "g"), 0, reg)
	recs := r.receive(t, 30, 20*time.Second)

	// Before any ack, the lag is the whole log.
	waitGathered(t, reg, "castle_destination_consumer_lag", map[string]float64{"0": 20, "1": 10})

	acked := 0
	for _, rec := range recs {
		// Partition 0: 0..7 and, past the gap, 10..12; partition 1: all.
		if rec.Partition == 1 || rec.Offset < 8 || (rec.Offset >= 10 && rec.Offset <= 12) {
			rec.Ack(nil)
			acked++
		}
	}
	// Lag is log end minus the acked watermark, not minus the acks.
	waitGathered(t, reg, "castle_destination_consumer_lag", map[string]float64{"0": 20 - 8, "1": 0})
	waitGathered(t, reg, "castle_destination_consumer_in_flight", map[string]float64{"0": 20 - 8 - 3, "1": 0})
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 8, 1: 10})
	for name, want := range map[string]float64{
		"castle_destination_consumer_acks_total":            float64(acked),
		"castle_destination_consumer_records_fetched_total": 30,
		"castle_destination_consumer_assigned_partitions":   2,
		"castle_destination_consumer_generations_total":     1,
		"castle_destination_consumer_late_acks_total":       0,
	} {
		if got := gathered(t, reg, name)[""]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	// New records raise the lag of their partition even before they are
	// handed out.
	produceN(t, kc, "in", []int{1}, 10, 5)
	waitGathered(t, reg, "castle_destination_consumer_lag", map[string]float64{"0": 12, "1": 5})

	for _, rec := range recs {
		rec.Ack(nil)
	}
	more := r.receive(t, 5, 20*time.Second)
	for _, rec := range more {
		rec.Ack(nil)
	}
	waitGathered(t, reg, "castle_destination_consumer_lag", map[string]float64{"0": 0, "1": 0})
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 20, 1: 15})

	if err := r.stop(t, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// A stopped consumer owns nothing: its per-partition series are gone.
	if got := gathered(t, reg, "castle_destination_consumer_lag"); len(got) != 0 {
		t.Errorf("lag series after Run returned: %v", got)
	}
	if got := gathered(t, reg, "castle_destination_consumer_assigned_partitions")[""]; got != 0 {
		t.Errorf("assigned partitions after Run returned: %v", got)
	}
}
