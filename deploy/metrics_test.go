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
			if !exists(names, n) {
				t.Errorf("%s: metric %s is not registered by worker.RegisterMetrics", q.where, n)
			}
		}
	}
}
