package pipeline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/promtest"
	"github.com/castle-destination/castle-destination/pipeline"
)

// A record read again while its first reading's event is still in flight
// (a rebalance hands the partition back to this worker, which reads it
// again from its last commit) is not done before that event is: done as a
// duplicate once Castle accepted it, so that its offset is never committed
// for an event not yet delivered.
func TestCopyOfAnEventInFlightWaitsForIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.FailNext(3, castleserver.Status(503)) // the first reading's event is retried for a while
		var acceptedAtCopyAck atomic.Int64
		acceptedAtCopyAck.Store(-1)
		first, again := &acker{}, &acker{}
		again.onAck = func() { acceptedAtCopyAck.Store(r.srv.Stats().Accepted) }
		if err := r.run(context.Background(), record(7, track("a", 1), first), record(7, track("a", 1), again)); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if first.n.Load() != 1 || again.n.Load() != 1 {
			t.Fatalf("acked first %d, again %d; want each once", first.n.Load(), again.n.Load())
		}
		if got := acceptedAtCopyAck.Load(); got != 1 {
			t.Errorf("when the copy was done Castle had accepted %d events, want the one it duplicates", got)
		}
		o := r.outcomes(t)
		if o.Dropped["duplicate"] != 1 || r.srv.Stats().Accepted != 1 {
			t.Errorf("dropped %v, accepted %d; want the copy dropped as a duplicate and one event delivered", o.Dropped, r.srv.Stats().Accepted)
		}
	})
}

// When the event a copy waits for is not delivered after all (canceled at
// shutdown), the copy is abandoned with it, and both are read again and
// delivered once.
func TestCopyAbandonedWithTheEventItWaitsFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.StartOutage(castleserver.Hang())
		ctx, cancel := context.WithCancel(context.Background())
		first, again := &acker{}, &acker{}
		done := make(chan error, 1)
		go func() { done <- r.run(ctx, record(7, track("a", 1), first), record(7, track("a", 1), again)) }()
		time.Sleep(2 * time.Second) // the request hangs at the server; the copy waits
		if first.n.Load()+again.n.Load() != 0 {
			t.Fatalf("acked first %d, again %d while the event hangs", first.n.Load(), again.n.Load())
		}
		if n := promtest.Value(t, r.reg, "castle_destination_duplicates_waiting"); n != 1 {
			t.Fatalf("duplicates_waiting = %v while the copy waits, want 1", n)
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
		if first.n.Load()+again.n.Load() != 0 || first.nacks.Load() != 1 || again.nacks.Load() != 1 {
			t.Fatalf("acks first %d/%d, again %d/%d (done/abandoned); want both abandoned",
				first.n.Load(), first.nacks.Load(), again.n.Load(), again.nacks.Load())
		}
		if n := promtest.Value(t, r.reg, "castle_destination_duplicates_waiting"); n != 0 {
			t.Fatalf("duplicates_waiting = %v after the copy was abandoned, want 0", n)
		}
		r.srv.EndOutage()
		b := &acker{}
		if err := r.run(context.Background(), record(7, track("a", 1), b)); err != nil {
			t.Fatalf("second Run: %v", err)
		}
		if b.n.Load() != 1 || r.srv.Stats().Accepted != 1 {
			t.Errorf("read again: acked %d, accepted %d; want 1 and 1", b.n.Load(), r.srv.Stats().Accepted)
		}
	})
}
