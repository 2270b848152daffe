package replay_test

import (
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/pipeline"
)

type destinationEvent = destination.Event

type destinationResult = destination.Result

type deliverFunc = pipeline.DeliverFunc

func destinationBatch() pipeline.BatchPolicy {
	return pipeline.BatchPolicy{Count: 100, Linger: 5_000_000}
}
