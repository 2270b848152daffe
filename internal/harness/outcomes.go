package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/pipeline"
)

// Outcomes are what a worker reports in its metrics, with a traffic.Tally
// view so they compare directly with the generated expectations.
type Outcomes struct {
	pipeline.Outcomes
	traffic.Tally
}

// Observe reads the worker's outcome counters from g.
func Observe(g prometheus.Gatherer) (Outcomes, error) {
	o, err := pipeline.Observe(g)
	if err != nil {
		return Outcomes{}, err
	}
	return Outcomes{Outcomes: o, Tally: traffic.Tally{
		Forward: o.Forwarded, Identified: o.Identified, Drop: o.Dropped, DeadLetter: o.DeadLettered,
	}}, nil
}

// WaitSettled polls g until the worker has settled at least total messages
// (forwarded, identified, dropped or dead-lettered), or ctx ends.
func WaitSettled(ctx context.Context, g prometheus.Gatherer, total int) (Outcomes, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		o, err := Observe(g)
		if err != nil {
			return o, err
		}
		if o.Settled() >= total {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return o, fmt.Errorf("%w: %d of %d settled: %w", ErrIncomplete, o.Settled(), total, context.Cause(ctx))
		case <-t.C:
		}
	}
}
