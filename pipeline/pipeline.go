// Package pipeline joins the parts of castle-destination: records come in
// (from Kafka or from archive files), the mapping turns each into Castle
// events or a drop or dead-letter decision, events are batched and delivered,
// failures become dead letters, and every record is acknowledged once all
// of its messages are settled — never before. The record's source decides
// what an acknowledgement means (a Kafka offset that may be committed, a
// checkpoint that may advance).
//
// It owns no Kafka or HTTP code: it is given a Mapper, a Deliverer and a
// dead-letter Sink.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/mapping"
)

// Acker is told once that every message of a record is settled: delivered,
// dropped or dead-lettered.
type Acker interface{ Ack() }

// Record is one input unit: a Kafka message or one line or file of an
// archive. It holds one Segment message or a batch envelope of several.
type Record struct {
	Value     []byte
	Key       []byte
	Source    string // a Kafka topic or a file name, for dead letters and logs
	Partition int
	Offset    int64 // Kafka offset, or line number in a file
	Acker     Acker // may be nil
}

// Mapper turns one record's bytes into results (mapping.Mapper).
type Mapper interface {
	Map(dst []mapping.Result, raw []byte, now time.Time) []mapping.Result
}

// Deliverer sends events to Castle and settles each (destination.Client).
// Submit must queue a user's events behind that user's earlier submitted
// events: the pipeline submits batches in input order, from one goroutine,
// and relies on it for per-user ordering.
type Deliverer interface {
	// Submit queues events and returns at once; settled is called for each
	// event as soon as it is settled (quick, non-blocking), and Wait
	// returns once all are.
	Submit(ctx context.Context, events []destination.Event, settled func(i int, r destination.Result)) Pending
}

// Pending is a submitted batch; Wait returns one result per event, in
// order, once all are settled.
type Pending interface{ Wait() []destination.Result }

// Castle adapts a destination client to a Deliverer.
func Castle(c *destination.Client) Deliverer { return castle{c} }

type castle struct{ c *destination.Client }

func (c castle) Submit(ctx context.Context, events []destination.Event, settled func(int, destination.Result)) Pending {
	return c.c.SubmitNotify(ctx, events, settled)
}

// Forgetter forgets a messageId the mapping recorded as forwarded when its
// event was not delivered after all (mapping.Dedupe).
type Forgetter interface{ Forget(messageID string) }

// Config tunes a pipeline.
type Config struct {
	Batch destination.BatchPolicy
	// MaxInFlightEvents bounds the events being delivered at once (default
	// 20,000); when reached, batching waits and input backs up.
	MaxInFlightEvents int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DeadLetterRetry is the pause between attempts to write dead letters
	// when the sink fails (default 1 s). Records wait, unacknowledged.
	DeadLetterRetry time.Duration
	// MapWorkers is how many goroutines map records (default GOMAXPROCS).
	// Consecutive records are mapped in chunks by one worker; chunks are
	// batched and delivered in input order.
	MapWorkers int
	// Keep, if set, is asked about every message the mapping forwards; a
	// false answer drops it with reason DropOutsideWindow (replay's
	// --since/--until on event time).
	Keep func(r *mapping.Result) bool
}

// DropOutsideWindow is the drop reason of messages Config.Keep refused.
const DropOutsideWindow = "outside_time_window"

// Pipeline moves records from input to Castle. Create with New, start with
// Run.
type Pipeline struct {
	cfg     Config
	mapper  Mapper
	deliver Deliverer
	dlq     deadletter.Sink
	seen    Forgetter
	log     *zap.Logger
	m       *metrics
	sem     chan struct{}
	wg      sync.WaitGroup
}

// New returns a pipeline. seen may be nil when no dedupe window is used.
func New(cfg Config, m Mapper, d Deliverer, dlq deadletter.Sink, seen Forgetter, logger *zap.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	if cfg.MaxInFlightEvents <= 0 {
		cfg.MaxInFlightEvents = 20_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MapWorkers <= 0 {
		cfg.MapWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.DeadLetterRetry <= 0 {
		cfg.DeadLetterRetry = time.Second
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		cfg: cfg, mapper: m, deliver: d, dlq: dlq, seen: seen, log: logger, m: met,
		sem: make(chan struct{}, cfg.MaxInFlightEvents),
	}, nil
}

// pending is a record with messages still being settled.
type pending struct {
	rec  Record
	left atomic.Int32
	// unsettled is set when a message could be neither delivered nor
	// dead-lettered (canceled): the record must not be acknowledged, so that
	// its source offers it again.
	unsettled atomic.Bool
}

func (p *pending) done(ok bool) {
	if !ok {
		p.unsettled.Store(true)
	}
	if p.left.Add(-1) == 0 && !p.unsettled.Load() && p.rec.Acker != nil {
		p.rec.Acker.Ack()
	}
}

// item is one message of a batch: an event to deliver, or a dead letter the
// mapping decided on.
type item struct {
	rec       *pending
	messageID string
	segType   string
	raw       []byte
	event     destination.Event // Body is nil for a mapping dead letter
	reason    string            // mapping dead-letter reason
	detail    string
}

// chunk is a run of consecutive input records, mapped by one worker while
// other workers map the next chunks; the batcher takes chunks in input
// order.
type chunk struct {
	recs  []Record
	items []item
	done  chan struct{}
}

// maxChunk bounds the records of one chunk. A chunk takes what is waiting
// in the input, so under light load chunks are single records.
const maxChunk = 64

// Run reads records from in until it is closed, then delivers what is
// batched and waits for every batch in flight. If ctx ends first, work in
// flight is canceled: those records are not acknowledged. Run returns
// ctx.Err() in that case, nil otherwise.
//
// Records are mapped by MapWorkers goroutines in chunks of consecutive
// records and batched in input order.
func (p *Pipeline) Run(ctx context.Context, in <-chan Record) error {
	defer p.wg.Wait()
	workers := p.cfg.MapWorkers
	work := make(chan *chunk, workers)
	ordered := make(chan *chunk, 2*workers)
	var mappers sync.WaitGroup
	for range workers {
		mappers.Go(func() {
			var s scratch
			for c := range work {
				for _, rec := range c.recs {
					p.prepare(rec, &s, &c.items)
				}
				close(c.done)
			}
		})
	}
	go p.read(ctx, in, work, ordered)
	defer mappers.Wait()
	// On cancellation, chunks already read are given back: their
	// forwarded ids are forgotten, their records not acknowledged.
	defer func() {
		for c := range ordered {
			<-c.done
			for i := range c.items {
				p.cancel(&c.items[i])
			}
		}
	}()

	batcher := destination.NewBatcher[item](p.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var tick <-chan time.Time
		if d, ok := batcher.UntilNext(p.cfg.Now()); ok {
			if d <= 0 {
				if err := p.dispatch(ctx, batcher.Flush()); err != nil {
					return err
				}
				continue
			}
			timer.Reset(d)
			tick = timer.C
		}
		select {
		case c, ok := <-ordered:
			timer.Stop() // Go 1.23+: no stale tick can be received after Stop
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return p.dispatch(ctx, batcher.Flush())
			}
			<-c.done
			now := p.cfg.Now()
			for i := range c.items {
				it := c.items[i]
				size := len(it.raw)
				if it.event.Body != nil {
					size = len(it.event.Body)
				}
				if batcher.Add(it, size, now) {
					if err := p.dispatch(ctx, batcher.Flush()); err != nil {
						for j := i + 1; j < len(c.items); j++ {
							p.cancel(&c.items[j])
						}
						return err
					}
				}
			}
		case <-tick:
			if err := p.dispatch(ctx, batcher.Flush()); err != nil {
				return err
			}
		case <-ctx.Done():
			for _, it := range batcher.Flush() {
				p.cancel(&it)
			}
			return ctx.Err()
		}
	}
}

// read groups input records into chunks and hands each to the mappers and,
// in order, to the batcher. It closes both channels when in is closed or
// ctx ends.
func (p *Pipeline) read(ctx context.Context, in <-chan Record, work, ordered chan<- *chunk) {
	defer close(work)
	defer close(ordered)
	for {
		var c *chunk
		select {
		case rec, ok := <-in:
			if !ok {
				return
			}
			c = &chunk{recs: make([]Record, 1, 8), done: make(chan struct{})}
			c.recs[0] = rec
		case <-ctx.Done():
			return
		}
		closed := false
	fill:
		for len(c.recs) < maxChunk {
			select {
			case rec, ok := <-in:
				if !ok {
					closed = true
					break fill
				}
				c.recs = append(c.recs, rec)
			default:
				break fill
			}
		}
		select {
		case ordered <- c:
			work <- c // mappers drain work until it is closed
		case <-ctx.Done():
			return
		}
		if closed {
			return
		}
	}
}

// scratch is a mapper goroutine's reusable memory.
type scratch struct {
	results []mapping.Result
	body    []byte
}

// prepare maps one record and appends its work items, or acknowledges it
// at once when all its messages were dropped or absorbed. It runs on the
// mapper goroutines.
func (p *Pipeline) prepare(rec Record, s *scratch, items *[]item) {
	p.m.consumed.Inc()
	now := p.cfg.Now()
	s.results = p.mapper.Map(s.results[:0], rec.Value, now)
	results := s.results
	var pend *pending
	first := len(*items)
	for i := range results {
		r := &results[i]
		switch r.Action {
		case mapping.Forward:
			if p.cfg.Keep != nil && !p.cfg.Keep(r) {
				if p.seen != nil && r.MessageID != "" {
					p.seen.Forget(r.MessageID)
				}
				p.m.dropped.WithLabelValues(DropOutsideWindow).Inc()
				continue
			}
			if pend == nil {
				pend = &pending{rec: rec}
			}
			// Encoded into scratch, then copied to a buffer of its size:
			// the body waits in memory until delivered, with thousands of
			// others, and a grown buffer would carry up to a third unused.
			s.body = r.Event.AppendJSON(s.body[:0])
			body := bytes.Clone(s.body)
			if cap(s.body) > 64<<10 {
				s.body = nil // do not keep a rare huge buffer
			}
			*items = append(*items, item{rec: pend, messageID: r.MessageID, segType: r.Type, raw: r.Raw,
				event: destination.Event{Body: body, UserID: r.Event.UserID(), Type: r.Type}})
		case mapping.DeadLetter:
			if pend == nil {
				pend = &pending{rec: rec}
			}
			*items = append(*items, item{rec: pend, messageID: r.MessageID, segType: r.Type, raw: r.Raw,
				reason: string(r.Reason), detail: r.Detail})
		case mapping.Drop:
			p.m.dropped.WithLabelValues(string(r.Reason)).Inc()
		case mapping.Identified:
			p.m.identified.Inc()
		}
	}
	if pend == nil {
		if rec.Acker != nil {
			rec.Acker.Ack()
		}
		return
	}
	pend.left.Store(int32(len(*items) - first))
}

// dispatch submits a batch for delivery, waiting for a free slot first.
// It runs on Run's goroutine, so batches are submitted in input order and
// the deliverer keeps each user's events in that order.
func (p *Pipeline) dispatch(ctx context.Context, batch []item) error {
	if len(batch) == 0 {
		return nil
	}
	var events []destination.Event
	var idx []int
	for i := range batch {
		if batch[i].event.Body != nil {
			events = append(events, batch[i].event)
			idx = append(idx, i)
		}
	}
	// One slot per event, released as each event settles, so that a few
	// events held back (a paced user, a retry) hold only their own slots.
	for n := range len(events) {
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			for range n {
				<-p.sem
			}
			for i := range batch {
				p.cancel(&batch[i])
			}
			return ctx.Err()
		}
	}
	p.m.batchSize.Observe(float64(len(batch)))
	p.m.inFlight.Add(float64(len(events)))
	failed := make([]destination.Result, len(events)) // written only for failures
	pend := p.deliver.Submit(ctx, events, func(j int, r destination.Result) {
		it := &batch[idx[j]]
		switch r.Status {
		case destination.Delivered:
			p.m.forwarded.WithLabelValues(it.segType).Inc()
			it.rec.done(true)
		case destination.Canceled:
			p.cancel(it)
		default:
			failed[j] = r
		}
		p.m.inFlight.Dec()
		<-p.sem
	})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pend.Wait()
		p.deadLetter(ctx, batch, idx, failed)
	}()
	return nil
}

func (p *Pipeline) cancel(it *item) {
	if it.event.Body != nil && p.seen != nil && it.messageID != "" {
		p.seen.Forget(it.messageID)
	}
	p.m.canceled.Inc()
	it.rec.done(false)
}

// deadLetter writes, once a batch is settled, the dead letters of the
// events Castle refused or that kept failing (failed, by event) and of the
// mapping's dead letters, then settles them. idx maps events to batch
// items.
func (p *Pipeline) deadLetter(ctx context.Context, batch []item, idx []int, failed []destination.Result) {
	now := p.cfg.Now()
	var letters []deadletter.Letter
	var lettered []int
	for j, r := range failed {
		if r.Status == 0 {
			continue
		}
		detail := ""
		if r.Err != nil {
			detail = r.Err.Error()
		}
		letters = append(letters, p.letter(&batch[idx[j]], r.Status.String(), detail, r.Attempts, now))
		lettered = append(lettered, idx[j])
	}
	for i := range batch {
		if batch[i].event.Body == nil {
			letters = append(letters, p.letter(&batch[i], batch[i].reason, batch[i].detail, 0, now))
			lettered = append(lettered, i)
		}
	}
	if len(letters) == 0 {
		return
	}
	if err := p.writeLetters(ctx, letters); err != nil {
		for _, i := range lettered {
			p.cancel(&batch[i])
		}
		return
	}
	for k, i := range lettered {
		p.m.deadLetters.WithLabelValues(letters[k].Reason).Inc()
		batch[i].rec.done(true)
	}
}

func (p *Pipeline) letter(it *item, reason, detail string, attempts int, now time.Time) deadletter.Letter {
	r := it.rec.rec
	return deadletter.Letter{
		Value: it.raw, Key: r.Key, Reason: reason, Error: detail,
		Source: r.Source, Partition: r.Partition, Offset: r.Offset,
		MessageID: it.messageID, Attempts: attempts, Time: now,
	}
}

// writeLetters writes dead letters, retrying while the sink fails: a dead
// letter that is not written must hold back its record's acknowledgement.
func (p *Pipeline) writeLetters(ctx context.Context, letters []deadletter.Letter) error {
	for {
		err := p.dlq.Write(ctx, letters...)
		if err == nil {
			return nil
		}
		p.m.deadLetterErrors.Inc()
		p.log.Warn("write dead letters; retrying", zap.Int("letters", len(letters)), zap.Error(err))
		t := time.NewTimer(p.cfg.DeadLetterRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write dead letters: %w", errors.Join(err, ctx.Err()))
		}
	}
}
