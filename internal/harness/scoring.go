package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/verdict"
)

// SecurityShare is the share of GenerateSecurity's records that are
// security events: enough for a summary of verdicts, few enough that the
// stream stays mostly pages and tracks.
const SecurityShare = 0.05

// ScoringVars are the settings that turn scoring on with verdicts to the
// environment's verdict topic, as overrides for Config or Vars.
func (e *Env) ScoringVars() map[string]string {
	return map[string]string{"CASTLE_SCORING": "on", "VERDICT_TOPIC": e.VerdictTopic}
}

// GenerateSecurity is Generate with SecurityShare of the records security
// events (traffic.SecurityMix): logins, failed logins, registrations and
// password reset requests with request tokens minted just before now, for
// a worker with CASTLE_SCORING=on that starts soon after (now =
// time.Now()). The tally's Scored counts them by endpoint.
func GenerateSecurity(seed int64, n int, now time.Time) ([]traffic.Record, traffic.Tally) {
	c := trafficConfig(seed, n, now)
	c.Mix = traffic.SecurityMix(SecurityShare)
	return generate(traffic.New(c), n)
}

// EndpointAction is a verdict's endpoint ("risk", "filter") and policy
// action label ("allow", "challenge", "deny", "none": verdict.ActionLabel).
type EndpointAction struct{ Endpoint, Action string }

// VerdictCounts count verdicts by endpoint and action, and the signals
// they name.
type VerdictCounts struct {
	Actions map[EndpointAction]int
	Signals map[string]int
}

// Total is the number of verdicts counted.
func (c VerdictCounts) Total() int {
	n := 0
	for _, v := range c.Actions {
		n += v
	}
	return n
}

// ByEndpoint is the number of verdicts of each endpoint.
func (c VerdictCounts) ByEndpoint() map[string]int {
	out := map[string]int{}
	for k, v := range c.Actions {
		out[k.Endpoint] += v
	}
	return out
}

// SignalCount is one signal and how many verdicts named it.
type SignalCount struct {
	Signal string
	Count  int
}

// TopSignals are the n signals named most often, most first (ties by name).
func (c VerdictCounts) TopSignals(n int) []SignalCount {
	out := make([]SignalCount, 0, len(c.Signals))
	for s, k := range c.Signals {
		if k > 0 {
			out = append(out, SignalCount{s, k})
		}
	}
	slices.SortFunc(out, func(a, b SignalCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Signal, b.Signal)
	})
	return out[:min(n, len(out))]
}

// Equal reports whether c and o count the same.
func (c VerdictCounts) Equal(o VerdictCounts) bool {
	return maps.Equal(nonZero(c.Actions), nonZero(o.Actions)) && maps.Equal(nonZero(c.Signals), nonZero(o.Signals))
}

func nonZero[K comparable](m map[K]int) map[K]int {
	out := make(map[K]int, len(m))
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func (c *VerdictCounts) add(endpoint, action string, signals []string) {
	if c.Actions == nil {
		c.Actions, c.Signals = map[EndpointAction]int{}, map[string]int{}
	}
	c.Actions[EndpointAction{endpoint, verdict.ActionLabel(action)}]++
	for _, s := range signals {
		c.Signals[s]++
	}
}

// CountVerdicts counts verdict records (values of the verdict topic, the
// JSON of verdict.Verdict). A value that is not a verdict record is an
// error.
func CountVerdicts(values [][]byte) (VerdictCounts, error) {
	var c VerdictCounts
	for i, b := range values {
		var v verdict.Verdict
		if err := json.Unmarshal(b, &v); err != nil {
			return c, fmt.Errorf("verdict record %d: %w", i, err)
		}
		if v.Endpoint == "" {
			return c, fmt.Errorf("verdict record %d has no endpoint: %s", i, b)
		}
		action := ""
		if v.Policy != nil {
			action = v.Policy.Action
		}
		c.add(v.Endpoint, action, v.Signals)
	}
	return c, nil
}

// CountResponses counts the verdicts the Castle-compatible server answered
// to the scoring requests it accepted (its /v1/risk and /v1/filter
// records), read as the worker reads them (verdict.Parse).
func CountResponses(srv *castleserver.Server) (VerdictCounts, error) {
	var c VerdictCounts
	for _, path := range []string{castleserver.RiskPath, castleserver.FilterPath} {
		for _, r := range srv.AcceptedOn(path) {
			resp, err := verdict.Parse(r.Response)
			if err != nil {
				return c, fmt.Errorf("%s answer %d: %w", path, r.Seq, err)
			}
			c.add(strings.TrimPrefix(path, "/v1/"), resp.Policy.Action, resp.Signals)
		}
	}
	return c, nil
}

// ScoringOutcomes are a worker's scoring counters, read back from its
// registry.
type ScoringOutcomes struct {
	// Verdicts are castle_destination_verdicts_total by endpoint and
	// action, and signals_total by signal.
	Verdicts VerdictCounts
	// Fallbacks are castle_destination_scoring_fallbacks_total by reason
	// (token_refused, token_aged): security events sent to /v1/log
	// instead of being scored.
	Fallbacks map[string]int
}

// ObserveScoring reads the worker's scoring counters from g.
func ObserveScoring(g prometheus.Gatherer) (ScoringOutcomes, error) {
	mfs, err := g.Gather()
	if err != nil {
		return ScoringOutcomes{}, fmt.Errorf("gather metrics: %w", err)
	}
	o := ScoringOutcomes{Verdicts: VerdictCounts{Actions: map[EndpointAction]int{}, Signals: map[string]int{}},
		Fallbacks: map[string]int{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n := int(m.GetCounter().GetValue())
			if n == 0 {
				continue
			}
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetName() {
			case "castle_destination_verdicts_total":
				o.Verdicts.Actions[EndpointAction{labels["endpoint"], labels["action"]}] += n
			case "castle_destination_signals_total":
				o.Verdicts.Signals[labels["signal"]] += n
			case "castle_destination_scoring_fallbacks_total":
				o.Fallbacks[labels["reason"]] += n
			}
		}
	}
	return o, nil
}

// VerdictRecords returns the value of every record of the verdict topic
// (one partition), in the order written.
func (e *Env) VerdictRecords(ctx context.Context) ([][]byte, error) {
	msgs, err := e.ReadAll(ctx, e.VerdictTopic, 0)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Value
	}
	return out, nil
}
