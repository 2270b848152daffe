package verdict_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/castle-destination/castle-destination/verdict"
)

func TestSignals(t *testing.T) {
	names := verdict.DocumentedSignals()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("DocumentedSignals is not sorted and unique: %v", names)
	}
	// Names from Castle's own examples, and the castleserver rules' names.
	for _, s := range []string{"bot_behavior", "proxy_ip", "disposable_email", "multiple_accounts_per_device",
		"spoofed_device", "new_device", "high_activity_ip", "credential_stuffing", "unreachable_email"} {
		if verdict.SignalLabel(s) != s {
			t.Errorf("SignalLabel(%q) = %q", s, verdict.SignalLabel(s))
		}
	}
	for _, s := range []string{"", "my_custom_signal", "New_Device", "new_device ", "Brute Force IP"} {
		if got := verdict.SignalLabel(s); got != "other" {
			t.Errorf("SignalLabel(%q) = %q, want other", s, got)
		}
	}
	names[0] = "changed"
	if verdict.DocumentedSignals()[0] == "changed" {
		t.Error("DocumentedSignals shares its backing array")
	}
}

func TestActionLabel(t *testing.T) {
	for in, want := range map[string]string{"allow": "allow", "challenge": "challenge", "deny": "deny", "": "none", "review": "none", "DENY": "none"} {
		if got := verdict.ActionLabel(in); got != want {
			t.Errorf("ActionLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := verdict.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Every bounded series exists before anything is observed.
	for name, want := range map[string]int{
		"castle_destination_verdicts_total":       2 * 4,
		"castle_destination_signals_total":        len(verdict.DocumentedSignals()) + 1,
		"castle_destination_verdict_scores":       4,
		"castle_destination_verdict_errors_total": 2,
	} {
		if got := countSeries(t, reg, name); got != want {
			t.Errorf("%s: %d series at start, want %d", name, got, want)
		}
	}

	v := specExample()
	v.Signals = append(v.Signals, "my_custom_signal", "another_custom")
	v.Scores["zz_new_kind"] = 0.5
	m.Observe(&v)
	anon := verdict.Verdict{Endpoint: verdict.EndpointFilter, Risk: f64(0)}
	m.Observe(&anon)
	m.ObserveError(verdict.ErrNoPolicy)
	m.ObserveError(verdict.ErrNotJSON)
	m.ObserveError(verdict.ErrNotJSON)
	m.ObserveError(nil)

	counters := map[string]float64{}
	histos := map[string]uint64{}
	sums := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName() + labels(mt)
			if h := mt.GetHistogram(); h != nil {
				histos[key] = h.GetSampleCount()
				sums[key] = h.GetSampleSum()
			} else {
				counters[key] = mt.GetCounter().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		`castle_destination_verdicts_total{endpoint="risk",action="deny"}`:   1,
		`castle_destination_verdicts_total{endpoint="filter",action="none"}`: 1,
		`castle_destination_verdicts_total{endpoint="risk",action="allow"}`:  0,
		`castle_destination_signals_total{signal="bot_behavior"}`:            1,
		`castle_destination_signals_total{signal="proxy_ip"}`:                1,
		`castle_destination_signals_total{signal="other"}`:                   2,
		`castle_destination_signals_total{signal="new_device"}`:              0,
		`castle_destination_verdict_errors_total{kind="not_json"}`:           2,
	} {
		if counters[key] != want {
			t.Errorf("%s = %v, want %v", key, counters[key], want)
		}
	}
	for key, want := range map[string]uint64{
		`castle_destination_verdict_scores{kind="risk"}`:             2,
		`castle_destination_verdict_scores{kind="account_takeover"}`: 1,
		`castle_destination_verdict_scores{kind="account_abuse"}`:    1,
		`castle_destination_verdict_scores{kind="bot"}`:              1,
	} {
		if histos[key] != want {
			t.Errorf("%s: %d observations, want %d", key, histos[key], want)
		}
	}
	if s := sums[`castle_destination_verdict_scores{kind="risk"}`]; s != 0.93 {
		t.Errorf("risk sum %v, want 0.93", s)
	}
	if countSeries(t, reg, "castle_destination_verdict_scores") != 4 {
		t.Error("an undocumented score kind made a series")
	}

	if _, err := verdict.NewMetrics(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

func countSeries(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// labels renders a metric's labels as {a="x",b="y"} in the order the
// metric was declared with (endpoint before action).
func labels(m *dto.Metric) string {
	order := map[string]int{"endpoint": 0, "action": 1}
	ls := slices.Clone(m.GetLabel())
	slices.SortFunc(ls, func(a, b *dto.LabelPair) int { return order[a.GetName()] - order[b.GetName()] })
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
