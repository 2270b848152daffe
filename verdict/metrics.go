package verdict

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts verdicts. Names (namespace castle_destination), every
// label bounded:
//
//	castle_destination_verdicts_total{endpoint,action}  verdicts by endpoint (risk, filter) and policy
//	                                                    action (allow, challenge, deny, none)
//	castle_destination_signals_total{signal}            signals in verdicts, by name: Castle's documented
//	                                                    names (DocumentedSignals), else "other"
//	castle_destination_verdict_scores{kind}             histogram of scores: risk, account_takeover,
//	                                                    account_abuse, bot (buckets 0.1 to 1)
//	castle_destination_verdict_errors_total{kind}       Castle answers Parse could not fully read:
//	                                                    not_json, no_policy
//
// Call Observe for every verdict, and ObserveError for every Parse error
// (a verdict without a policy is observed by both).
type Metrics struct {
	verdicts *prometheus.CounterVec
	signals  *prometheus.CounterVec
	scores   *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// histogramKinds are the values of the kind label of verdict_scores.
var histogramKinds = [...]string{"risk", "account_takeover", "account_abuse", "bot"}

// NewMetrics registers the verdict metrics with reg, every bounded series
// created at zero.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "castle_destination"
	m := &Metrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "verdicts_total",
			Help: "Verdicts of Castle's Risk and Filter APIs, by endpoint and policy action (none: no usable policy).",
		}, []string{"endpoint", "action"}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "signals_total",
			Help: "Signals in Castle's verdicts, by name (names Castle does not document are \"other\").",
		}, []string{"signal"}),
		scores: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "verdict_scores",
			Help:    "Scores in Castle's verdicts, by kind (risk, account_takeover, account_abuse, bot).",
			Buckets: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1},
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "verdict_errors_total",
			Help: "Castle answers to Risk or Filter requests that could not be fully read, by kind (not_json, no_policy).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.verdicts, m.signals, m.scores, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, ep := range []string{EndpointRisk, EndpointFilter} {
		for _, a := range []string{ActionAllow, ActionChallenge, ActionDeny, actionNone} {
			m.verdicts.WithLabelValues(ep, a)
		}
	}
	for _, s := range documentedSignals {
		m.signals.WithLabelValues(s)
	}
	m.signals.WithLabelValues(otherSignal)
	for _, k := range histogramKinds {
		m.scores.WithLabelValues(k)
	}
	m.errors.WithLabelValues("not_json")
	m.errors.WithLabelValues("no_policy")
	return m, nil
}

// Observe counts one verdict: its endpoint and action, its signals, its
// risk and documented scores. An endpoint other than risk or filter is
// counted as "other".
func (m *Metrics) Observe(v *Verdict) {
	ep := v.Endpoint
	if ep != EndpointRisk && ep != EndpointFilter {
		ep = "other"
	}
	action := actionNone
	if v.Policy != nil {
		action = ActionLabel(v.Policy.Action)
	}
	m.verdicts.WithLabelValues(ep, action).Inc()
	for _, s := range v.Signals {
		m.signals.WithLabelValues(SignalLabel(s)).Inc()
	}
	if v.Risk != nil && finite(*v.Risk) {
		m.scores.WithLabelValues("risk").Observe(*v.Risk)
	}
	for _, k := range knownScores {
		if f, ok := v.Scores[k]; ok && finite(f) {
			m.scores.WithLabelValues(k).Observe(f)
		}
	}
}

// ObserveError counts a Parse error by its kind; other errors (and nil)
// are not counted.
func (m *Metrics) ObserveError(err error) {
	if k := ErrorKind(err); k != "" {
		m.errors.WithLabelValues(k).Inc()
	}
}
