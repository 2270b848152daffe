package deploy_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/castle-destination/castle-destination/worker"
)

// recorder is a Registerer that remembers what was registered, so that
// metrics with labels and no series yet (such as consumer lag before a
// partition is assigned) are known by their descriptors.
type recorder struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// pendingMetrics are metrics the alerts, the dashboard and the README name
// that other changes are adding to the worker. A pending name that is not
// registered yet is logged, not failed; once every one is registered, empty
// this map so the tests hold them to the registry too.
var pendingMetrics = map[string]string{
	"castle_destination_build_info":                "build version, commit and Go version",
	"castle_destination_delivery_held":             "systemic faults",
	"castle_destination_systemic_faults_total":     "systemic faults",
	"castle_destination_verdicts_total":            "verdicts",
	"castle_destination_signals_total":             "verdicts",
	"castle_destination_verdict_scores":            "verdicts",
	"castle_destination_scoring_fallbacks_total":   "verdicts",
	"castle_destination_verdict_errors_total":      "verdicts",
	"castle_destination_castle_concurrency_limit":  "adaptive concurrency",
	"castle_destination_records_abandoned_total":   "abandoned records by reason",
	"castle_destination_mapping_adjustments_total": "mapping adjustments",
}

// removedMetrics are registered today but being removed: nothing may use
// them, and the README does not list them.
var removedMetrics = map[string]string{
	"castle_destination_dead_letter_write_errors_total": "castle_destination_dlq_write_errors_total",
}

// pending reports whether a queried series belongs to a pending metric.
func pending(n string) bool {
	for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(n, suffix); ok && pendingMetrics[base] != "" {
			return true
		}
	}
	return false
}

// workerMetrics returns every metric name the worker registers, with its
// type where a series exists (histograms and summaries also expose
// _bucket, _sum and _count): worker.RegisterMetrics on a registry from
// worker.NewRegistry, which adds the Go runtime and process collectors.
func workerMetrics(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	reg := worker.NewRegistry()
	rec := &recorder{Registerer: reg}
	if err := worker.RegisterMetrics(rec); err != nil {
		t.Fatalf("RegisterMetrics: %v", err)
	}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]dto.MetricType{}
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = dto.MetricType(-1) // type unknown until gathered
			}
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = mf.GetType()
	}
	if len(names) < 20 {
		t.Fatalf("only %d metrics registered: %v", len(names), names)
	}
	return names
}

// exists reports whether a queried name is a registered metric, or a
// _bucket/_sum/_count series of a histogram or summary.
func exists(names map[string]dto.MetricType, n string) bool {
	if _, ok := names[n]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(n, suffix)
		if !ok {
			continue
		}
		typ, ok := names[base]
		if ok && (typ == dto.MetricType(-1) || typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_SUMMARY ||
			typ == dto.MetricType_GAUGE_HISTOGRAM) && (suffix != "_bucket" || typ != dto.MetricType_SUMMARY) {
			return true
		}
	}
	return false
}

func TestQueriedMetricsExist(t *testing.T) {
	names := workerMetrics(t)
	for _, q := range slices.Concat(dashboardQueries(t), alertQueries(t)) {
		for _, n := range metricNames(q.expr) {
			if externalMetrics[n] != "" {
				continue
			}
			if r := removedMetrics[n]; r != "" {
				t.Errorf("%s: metric %s is being removed; use %s", q.where, n, r)
			}
			if !exists(names, n) {
				if pending(n) {
					t.Logf("%s: metric %s is not registered yet (pending)", q.where, n)
					continue
				}
				t.Errorf("%s: metric %s is not registered by worker.RegisterMetrics", q.where, n)
			}
		}
	}
	for n := range pendingMetrics {
		if _, ok := names[n]; ok {
			t.Logf("%s is registered now: delete it from pendingMetrics", n)
		}
	}
}
