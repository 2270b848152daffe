package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// outbox writes what must be durable before its record is acknowledged
// (dead letters), in groups, on one goroutine. A write that fails holds:
// nothing is dropped and nothing is acknowledged; the fault is reported
// and the write retried at a capped backoff until it succeeds or the run
// ends.
type outbox[T any] struct {
	write      func(ctx context.Context, items ...T) error
	class      string        // the hold class reported while writes fail
	what       string        // "dead letters", for messages
	target     string        // where they go, naming the setting
	faults     Faults        // may be nil
	log        *zap.Logger   //
	first      time.Duration // first pause after a failure; doubles up to maxRetryPause
	notWritten error         // what entries get when the run ends first
	written    func(T)       // counts a written item
	outputs    *outputs      // shared with the other outbox; may be nil

	mu    sync.Mutex
	queue []entry[T]
	ended bool // the writer has returned: add settles at once
	wake  chan struct{}
	quit  chan struct{}
}

type entry[T any] struct {
	v    T
	done func(error)
}

// maxWriteGroup bounds the items of one write.
const maxWriteGroup = 1000

// start runs the writer until stop; wg tracks it.
func (o *outbox[T]) start(ctx context.Context, wg *sync.WaitGroup) {
	o.wake = make(chan struct{}, 1)
	o.quit = make(chan struct{})
	wg.Go(func() { o.run(ctx) })
}

// add queues v; done is called once it is written (nil) or abandoned.
// It never blocks. Once the run has ended (its context canceled), done is
// called at once with the not-written error: an event that settles just
// after the cancel must not wait for a writer that is gone.
func (o *outbox[T]) add(v T, done func(error)) {
	o.mu.Lock()
	if o.ended {
		o.mu.Unlock()
		done(o.notWritten)
		return
	}
	o.queue = append(o.queue, entry[T]{v: v, done: done})
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// stop ends the writer once its queue is empty.
func (o *outbox[T]) stop() { close(o.quit) }

func (o *outbox[T]) take() []entry[T] {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(len(o.queue), maxWriteGroup)
	group := make([]entry[T], n)
	copy(group, o.queue)
	// The room vacated keeps no entry alive: an entry's done holds its
	// record (a batch envelope's whole Kafka value), and the room is only
	// written over by as many later entries.
	left := copy(o.queue, o.queue[n:])
	clear(o.queue[left:])
	o.queue = o.queue[:left]
	return group
}

func (o *outbox[T]) run(ctx context.Context) {
	pause := time.Duration(0)
	failing := false
	for {
		group := o.take()
		if len(group) == 0 {
			select {
			case <-o.wake:
				continue
			case <-o.quit:
				if group = o.take(); len(group) == 0 {
					return
				}
			case <-ctx.Done():
				o.abandon(nil)
				return
			}
		}
		// While the other outbox cannot write, this one writes nothing
		// new either: its items belong to records that cannot commit.
		if err := o.outputs.wait(ctx); err != nil {
			o.abandon(group)
			return
		}
		items := make([]T, len(group))
		for i, e := range group {
			items[i] = e.v
		}
		for {
			err := o.write(ctx, items...)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				o.abandon(group)
				return
			}
			if !failing {
				failing = true
				o.outputs.failed()
			}
			pause = min(max(2*pause, o.first), maxRetryPause)
			if o.faults != nil {
				o.faults.Raise(o.class, fmt.Sprintf("%s cannot be written to %s: %v", o.what, o.target, err))
			} else {
				o.log.Error("write "+o.what+"; holding and retrying", zap.Int("items", len(items)), zap.Duration("retry_in", pause), zap.Error(err))
			}
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				o.abandon(group)
				return
			}
		}
		if failing {
			failing, pause = false, 0
			if o.faults != nil {
				o.faults.Clear(o.class)
			}
			o.outputs.recovered()
		}
		for _, e := range group {
			o.written(e.v)
			e.done(nil)
		}
	}
}

// abandon settles group and everything still queued as not written, and
// ends the outbox: what is added later is settled the same way by add.
func (o *outbox[T]) abandon(group []entry[T]) {
	o.mu.Lock()
	o.ended = true
	rest := o.queue
	o.queue = nil
	o.mu.Unlock()
	for _, e := range group {
		e.done(o.notWritten)
	}
	for _, e := range rest {
		e.done(o.notWritten)
	}
}

// outputs is what the outboxes share. While one cannot write, delivery
// holds as it does for a fault at Castle: the Castle client sends nothing
// new (its requests in flight finish; a scored event would be scored
// again once its record is read again), and the other outbox writes
// nothing new. The failing outbox probes with its own retries, and
// everything resumes once it writes. Stopped while held, the run leaves
// it held: nothing more is sent.
type outputs struct {
	pause func(on bool) // pauses and resumes the Castle client; may be nil

	mu      sync.Mutex
	failing int           // outboxes that cannot write
	clear   chan struct{} // closed when failing drops to 0
}

// failed reports that an outbox began failing.
func (o *outputs) failed() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failing++
	if o.failing == 1 {
		o.clear = make(chan struct{})
		if o.pause != nil {
			o.pause(true)
		}
	}
}

// recovered reports that a failing outbox wrote again.
func (o *outputs) recovered() {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failing--
	if o.failing == 0 {
		close(o.clear)
		if o.pause != nil {
			o.pause(false)
		}
	}
}

// wait returns once no outbox is failing, or with ctx's error.
func (o *outputs) wait(ctx context.Context) error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	if o.failing == 0 {
		o.mu.Unlock()
		return nil
	}
	ch := o.clear
	o.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
