package ops

import "github.com/prometheus/client_golang/prometheus"

// NewBuildInfo returns the castle_destination_build_info gauge: always 1,
// labelled with the running build's version, commit and Go version, so
// that a dashboard can show which build each replica runs. Each label has
// one value per binary.
func NewBuildInfo(version, commit, goVersion string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "castle_destination",
		Name:        "build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": goVersion},
	})
	g.Set(1)
	return g
}
