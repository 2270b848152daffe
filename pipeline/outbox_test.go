package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

var errGone = errors.New("not written")

func newTestOutbox(write func(context.Context, ...int) error) *outbox[int] {
	return &outbox[int]{
		write: write, class: "test", what: "items", target: "TEST_TOPIC",
		log: zap.NewNop(), first: time.Second, notWritten: errGone, written: func(int) {},
	}
}

// An item added after the run's context ended is settled at once as not
// written: the writer is gone, and waiting for it would hang the run.
func TestOutboxAddAfterCancelSettles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newTestOutbox(func(context.Context, ...int) error { return nil })
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		o.start(ctx, &wg)
		cancel()
		wg.Wait()
		got := make(chan error, 1)
		o.add(1, func(err error) { got <- err })
		select {
		case err := <-got:
			if !errors.Is(err, errGone) {
				t.Fatalf("done(%v), want the not-written error", err)
			}
		case <-time.After(time.Hour):
			t.Fatal("an item added after the cancel was never settled")
		}
	})
}

// While writes fail the items are held, not dropped; the cancel settles
// them and everything queued behind them as not written.
func TestOutboxCancelWhileFailingSettlesEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newTestOutbox(func(context.Context, ...int) error { return errors.New("topic gone") })
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		o.start(ctx, &wg)
		var mu sync.Mutex
		var errs []error
		for i := range 3 {
			o.add(i, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
			time.Sleep(10 * time.Second) // the writer holds and retries
		}
		mu.Lock()
		held := len(errs)
		mu.Unlock()
		if held != 0 {
			t.Fatalf("%d items settled while writes fail, want them held", held)
		}
		cancel()
		wg.Wait()
		if len(errs) != 3 {
			t.Fatalf("%d of 3 items settled after the cancel", len(errs))
		}
		for _, err := range errs {
			if !errors.Is(err, errGone) {
				t.Errorf("done(%v), want the not-written error", err)
			}
		}
	})
}

// Once written, an item is not kept: neither its value (a dead letter
// holds its message's bytes) nor its done callback (which holds the
// record, and so the whole Kafka value of a batch envelope). The queue's
// room, reused for later items, must not hold on to the items that passed
// through it until the run ends.
func TestOutboxKeepsNoWrittenItem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		first := true
		o := newTestOutbox(func(context.Context, ...int) error {
			if first {
				first = false
				<-release // items queue up behind the first write
			}
			return nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		o.start(ctx, &wg)
		var written sync.WaitGroup
		const n = 5
		for i := 1; i <= n; i++ {
			written.Add(1)
			o.add(i, func(err error) { written.Done() })
			synctest.Wait() // the first is being written; the rest queue
		}
		close(release)
		written.Wait()
		synctest.Wait() // the writer is idle again
		o.mu.Lock()
		room := o.queue[:cap(o.queue)]
		o.mu.Unlock()
		kept := 0
		for _, e := range room {
			if e.v != 0 || e.done != nil {
				kept++
			}
		}
		if kept > 0 {
			t.Fatalf("the idle outbox's queue (room for %d) still holds %d of %d written items", len(room), kept, n)
		}
	})
}
