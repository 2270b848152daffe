package replay_test

import (
	"context"
	"sync"
	"time"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/pipeline"
)

type destinationEvent = destination.Event

type destinationResult = destination.Result

type deliverFunc = pipeline.DeliverFunc

func destinationBatch() pipeline.BatchPolicy {
	return pipeline.BatchPolicy{Count: 100, Linger: 5_000_000}
}

// slowDeliverer delivers every event after delay (fake time under
// synctest), or settles it canceled when ctx ends first, like a Castle
// client whose requests take that long; it counts what it delivered.
type slowDeliverer struct {
	delay     time.Duration
	mu        sync.Mutex
	delivered []destination.Event
	submitted func()
}

func (d *slowDeliverer) Submit(ctx context.Context, evs []destination.Event, settled func(int, destination.Result)) {
	if d.submitted != nil {
		d.submitted()
	}
	go func() {
		t := time.NewTimer(d.delay)
		defer t.Stop()
		select {
		case <-t.C:
			d.mu.Lock()
			d.delivered = append(d.delivered, evs...)
			d.mu.Unlock()
			for i := range evs {
				settled(i, destination.Result{Status: destination.Delivered, Attempts: 1})
			}
		case <-ctx.Done():
			for i := range evs {
				settled(i, destination.Result{Status: destination.Canceled, Err: ctx.Err()})
			}
		}
	}()
}
