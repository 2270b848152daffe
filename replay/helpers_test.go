package replay_test

import (
	"context"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/pipeline"
)

type destinationEvent = destination.Event

type destinationResult = destination.Result

type deliverFunc func(ctx context.Context, evs []destination.Event, settled func(int, destination.Result)) pipeline.Pending

func (f deliverFunc) Submit(ctx context.Context, evs []destination.Event, settled func(int, destination.Result)) pipeline.Pending {
	return f(ctx, evs, settled)
}

func destinationBatch() destination.BatchPolicy {
	return destination.BatchPolicy{Count: 100, Linger: 5_000_000}
}
