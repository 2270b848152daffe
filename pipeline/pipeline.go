// Package pipeline joins the parts of castle-destination: records come in
// (from Kafka or from archive files), the mapping turns each into Castle
// events or a drop or dead-letter decision, events are batched and handed
// to the deliverer, failures become dead letters as soon as they fail, and
// every record is acknowledged once all of its messages are settled —
// never before. The record's source decides what an acknowledgement means
// (a Kafka offset that may be committed, a checkpoint that may advance).
//
// A record is acknowledged with nil once each of its messages is
// delivered, dropped or dead-lettered, and with an error when it is
// abandoned (the run was canceled before it settled): its source must then
// offer it again. Abandoned records are counted by reason.
//
// It owns no Kafka or HTTP code: it is given a Mapper, a Deliverer and a
// dead-letter Sink. A dead-letter sink that fails holds: the letters wait,
// unacknowledged, and are retried at a capped backoff while the fault is
// reported (Config.Faults) until the sink accepts them.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/verdict"
)

// Acker is told once what became of a record: nil when every message of it
// is settled (delivered, dropped or dead-lettered), an error when the
// record was abandoned and must be offered again.
type Acker interface{ Ack(err error) }

// Why a record is abandoned: the errors an Acker receives.
var (
	// ErrCanceled: the run ended (shutdown, rebalance) before every
	// message of the record was settled.
	ErrCanceled = errors.New("pipeline: canceled before the record was settled")
	// ErrDeadLetterNotWritten: a dead letter of the record could not be
	// written before the run ended.
	ErrDeadLetterNotWritten = errors.New("pipeline: dead letter not written before the run ended")
	// ErrVerdictNotWritten: a verdict of the record could not be written
	// before the run ended.
	ErrVerdictNotWritten = errors.New("pipeline: verdict not written before the run ended")
)

// abandonReason is the bounded metric label of an abandon error.
func abandonReason(err error) string {
	switch {
	case errors.Is(err, ErrDeadLetterNotWritten):
		return "dead_letter_not_written"
	case errors.Is(err, ErrVerdictNotWritten):
		return "verdict_not_written"
	}
	return "canceled"
}

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

// Mapper turns one record's bytes into results (mapping.Mapper), given
// what earlier identify messages said of users.
type Mapper interface {
	Map(dst []mapping.Result, raw []byte, now time.Time, users mapping.Directory) []mapping.Result
}

// Deliverer sends events to Castle and settles each (destination.Client):
// settled is called once per event, as soon as it is settled, and must not
// block. Submit must queue a user's events behind that user's earlier
// submitted events: the pipeline submits batches in input order, from one
// goroutine, and relies on it for per-user ordering.
type Deliverer interface {
	Submit(ctx context.Context, events []destination.Event, settled func(i int, r destination.Result))
}

// pauser is a Deliverer that can stop sending while a dead-letter or
// verdict topic cannot be written (destination.Client).
type pauser interface {
	PauseSending()
	ResumeSending()
}

// Wrapper is a Deliverer that hands events to another one (as replay's
// --rate pacing does): the pipeline looks through it for what the inner
// one can tell and do (the API secret's state, pausing).
type Wrapper interface {
	Deliverer
	Unwrap() Deliverer
}

// wrapped returns d, or the first Deliverer it wraps, that is a T.
func wrapped[T any](d Deliverer) (T, bool) {
	for {
		if t, ok := d.(T); ok {
			return t, true
		}
		w, ok := d.(Wrapper)
		if !ok {
			var zero T
			return zero, false
		}
		d = w.Unwrap()
	}
}

// DeliverFunc adapts a function to a Deliverer.
type DeliverFunc func(ctx context.Context, events []destination.Event, settled func(i int, r destination.Result))

// Submit calls f.
func (f DeliverFunc) Submit(ctx context.Context, events []destination.Event, settled func(i int, r destination.Result)) {
	f(ctx, events, settled)
}

// VerdictSink keeps verdicts (verdict.Kafka): Write returns once they are
// durable; the records they come from are acknowledged only then.
type VerdictSink interface {
	Write(ctx context.Context, vs ...*verdict.Verdict) error
}

// Faults is told when writing dead letters holds and when it works again
// (hold.Board).
type Faults interface {
	Raise(class, msg string)
	Clear(class string)
}

// Config tunes a pipeline.
type Config struct {
	Batch BatchPolicy
	// MaxInFlightEvents bounds the events being delivered at once (default
	// 20,000); when reached, batching waits and input backs up. A batch
	// holds at most this many events.
	MaxInFlightEvents int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DeadLetterRetry is the first pause before writing dead letters again
	// when the sink fails (default 1 s); it doubles up to 30 s. Their
	// records wait, unacknowledged.
	DeadLetterRetry time.Duration
	// DeadLetterTarget names the sink in the hold message ("DLQ_TOPIC
	// \"segment-dlq\""); default "the dead-letter sink".
	DeadLetterTarget string
	// Faults is told when dead letters cannot be written (nil: nobody).
	Faults Faults
	// DedupeSize is how many forwarded messageIds are remembered to drop
	// duplicates (0: none are dropped).
	DedupeSize int
	// UserCacheSize is how many users' identify traits and tokens are kept
	// for their later messages (0: none).
	UserCacheSize int
	// MapWorkers is how many goroutines map records (default 1).
	// Consecutive records are mapped in chunks by one worker; chunks are
	// batched and delivered in input order. With more than one, chunks
	// are mapped at once, so an identify may reach the user cache after
	// an event of its user in the next chunk was mapped, or before one in
	// the chunk before: only for input without identify messages (SPEC:
	// an identify sets the user for that user's later events). One
	// mapper takes 3–4 µs a message, far from what Castle's per-user and
	// network bounds let a replica send.
	MapWorkers int
	// Keep, if set, is asked about every message the mapping forwards; a
	// false answer drops it with reason DropOutsideWindow (replay's
	// --since/--until on event time).
	Keep func(r *mapping.Result) bool

	// Scoring sends security events that carry a request token and a
	// public IP to Castle's Risk or Filter API (the mapping says which)
	// instead of /v1/log, as long as their event time is at most
	// ScoringMaxAge old when they are sent; past it they go to /v1/log.
	Scoring       bool
	ScoringMaxAge time.Duration
	// Verdicts receives the verdict of every scored event before its
	// record is acknowledged; nil: verdicts go to metrics only.
	Verdicts VerdictSink
	// VerdictTarget names the verdict sink in the hold message
	// ("VERDICT_TOPIC \"verdicts\"").
	VerdictTarget string
}

// DropOutsideWindow is the drop reason of messages Config.Keep refused.
const DropOutsideWindow = "outside_time_window"

// maxRetryPause caps the pause between attempts at writing dead letters.
const maxRetryPause = 30 * time.Second

// Pipeline moves records from input to Castle. Create with New, start with
// Run.
type Pipeline struct {
	cfg      Config
	mapper   Mapper
	deliver  Deliverer
	seen     *Dedupe           // nil: no dedupe window
	users    *mapping.Users    // nil: no identify cache
	dir      mapping.Directory // users, or nil
	log      *zap.Logger
	m        *metrics
	letters  *outbox[deadletter.Letter]
	verdicts *outbox[*verdict.Verdict] // nil: metrics only
	vm       *verdict.Metrics
	sem      chan struct{}

	// trust says whether a userJwt failing its signature is forged
	// (holdSuspect); teller, the Castle client, feeds it (nil: no client
	// to learn from, and every bad signature is the token's).
	trust  *secretTrust
	teller secretTeller
}

// New returns a pipeline. dlq may be nil: dead letters then abandon their
// records.
func New(cfg Config, m Mapper, d Deliverer, dlq deadletter.Sink, logger *zap.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	if cfg.MaxInFlightEvents <= 0 {
		cfg.MaxInFlightEvents = 20_000
	}
	cfg.Batch = cfg.Batch.withDefaults()
	cfg.Batch.Count = min(cfg.Batch.Count, cfg.MaxInFlightEvents)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MapWorkers <= 0 {
		cfg.MapWorkers = 1
	}
	if cfg.DeadLetterRetry <= 0 {
		cfg.DeadLetterRetry = time.Second
	}
	if cfg.DeadLetterTarget == "" {
		cfg.DeadLetterTarget = "the dead-letter sink"
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.VerdictTarget == "" {
		cfg.VerdictTarget = "the verdict sink"
	}
	var seen *Dedupe
	if cfg.DedupeSize > 0 {
		seen = NewDedupe(cfg.DedupeSize)
	}
	met, err := newMetrics(reg, seen)
	if err != nil {
		return nil, err
	}
	vm, err := verdict.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		cfg: cfg, mapper: m, deliver: d, log: logger, m: met, vm: vm,
		sem: make(chan struct{}, cfg.MaxInFlightEvents), seen: seen,
	}
	if t, ok := wrapped[secretTeller](d); ok {
		p.teller = t
		state, _ := t.Secret()
		p.trust = newSecretTrust(state, cfg.Faults)
	} else {
		p.trust = newSecretTrust(destination.SecretTaken, cfg.Faults)
	}
	if cfg.UserCacheSize > 0 {
		p.users = mapping.NewUsers(cfg.UserCacheSize)
		p.dir = p.users
	}
	outs := &outputs{}
	if pz, ok := wrapped[pauser](d); ok {
		outs.pause = func(on bool) {
			if on {
				pz.PauseSending()
			} else {
				pz.ResumeSending()
			}
		}
	}
	if cfg.Verdicts != nil {
		p.verdicts = &outbox[*verdict.Verdict]{
			write: cfg.Verdicts.Write, class: hold.VerdictTopic, what: "verdicts", target: cfg.VerdictTarget,
			faults: cfg.Faults, log: logger, first: cfg.DeadLetterRetry, notWritten: ErrVerdictNotWritten,
			written: func(*verdict.Verdict) {}, outputs: outs,
		}
	}
	if dlq != nil {
		p.letters = &outbox[deadletter.Letter]{
			write: dlq.Write, class: hold.DeadLetterTopic, what: "dead letters", target: cfg.DeadLetterTarget,
			faults: cfg.Faults, log: logger, first: cfg.DeadLetterRetry, notWritten: ErrDeadLetterNotWritten,
			written: func(l deadletter.Letter) { met.deadLetters.WithLabelValues(l.Reason).Inc() }, outputs: outs,
		}
	}
	return p, nil
}

// pending is a record with messages still being settled.
type pending struct {
	p    *Pipeline
	rec  Record
	left atomic.Int32
	// err is the first reason a message could not be settled; the record
	// is then abandoned, not acknowledged as done.
	err atomic.Pointer[error]
}

// newPending returns the pending state of rec, with one share to settle
// for prepare itself: a copy waiting for a duplicated event (Dedupe.claim)
// may be settled before the record is mapped.
func newPending(p *Pipeline, rec Record) *pending {
	r := &pending{p: p, rec: rec}
	r.left.Store(1)
	return r
}

func (r *pending) done(err error) {
	if err != nil {
		// Its own variable: were &err taken, every call would allocate.
		e := err
		r.err.CompareAndSwap(nil, &e)
	}
	if r.left.Add(-1) != 0 {
		return
	}
	var final error
	if e := r.err.Load(); e != nil {
		final = *e
		r.p.m.abandoned.WithLabelValues(abandonReason(final)).Inc()
	}
	if r.rec.Acker != nil {
		r.rec.Acker.Ack(final)
	}
}

// item is one message of a chunk: an event to deliver, or a dead letter the
// mapping decided on.
type item struct {
	rec       *pending
	messageID string
	seenAt    int32 // the messageId's place in the dedupe window plus one; 0: not in it
	segType   string
	raw       []byte
	event     destination.Event // Body is nil for a mapping dead letter
	reason    string            // mapping dead-letter reason
	detail    string
	suspect   bool    // a userJwt whose signature does not verify (holdSuspect)
	scored    *scored // set when the event is sent for scoring
}

// scored is what a verdict record says of the event it scores, besides
// what the item holds.
type scored struct {
	anonymousID       string
	typ, status, name string
	createdAt         time.Time
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

// Run reads records from in until it is closed, converting each with
// record, and returns once every record read is settled and acknowledged.
// If ctx ends first, work in flight is canceled: those records are
// acknowledged with an error (abandoned), and Run returns ctx.Err().
//
// Records are mapped by MapWorkers goroutines in chunks of consecutive
// records and batched in input order.
func Run[T any](ctx context.Context, p *Pipeline, in <-chan T, record func(T) Record) error {
	workers := p.cfg.MapWorkers
	work := make(chan *chunk, workers)
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
	var letters sync.WaitGroup
	if p.letters != nil {
		p.letters.start(ctx, &letters)
	}
	if p.teller != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				state, changed := p.teller.Secret()
				p.trust.setCastle(state)
				select {
				case <-changed:
				case <-stop:
					return
				}
			}
		}()
	}
	if p.verdicts != nil {
		p.verdicts.start(ctx, &letters)
	}
	// settling counts the events and letters not yet settled: Run returns
	// once it is zero after the input ends.
	var settling sync.WaitGroup
	err := loop(ctx, p, in, record, work, &settling)
	close(work)
	mappers.Wait()
	settling.Wait()
	if p.letters != nil {
		p.letters.stop()
	}
	if p.verdicts != nil {
		p.verdicts.stop()
	}
	letters.Wait()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return err
}

// Run is Run with records as they come.
func (p *Pipeline) Run(ctx context.Context, in <-chan Record) error {
	return Run(ctx, p, in, func(r Record) Record { return r })
}

// loop reads the input into chunks, hands each to the mappers, and batches
// the mapped chunks in input order. It runs on Run's goroutine. It returns
// nil once in is closed and everything read is batched and submitted, or
// ctx.Err() when ctx ends first (what was read and not submitted is
// abandoned).
func loop[T any](ctx context.Context, p *Pipeline, in <-chan T, record func(T) Record, work chan<- *chunk, settling *sync.WaitGroup) error {
	batcher := NewBatcher[item](p.cfg.Batch)
	// chunks handed to the mappers, oldest first; at most 2*MapWorkers, so
	// that reading stops while the mappers or the batcher lag.
	var queue []*chunk
	maxQueue := 2 * p.cfg.MapWorkers
	// spare holds chunks whose items went to the batcher, for reuse: the
	// input goes through thousands of chunks a second, and a chunk's
	// slices keep the room they grew to.
	var spare []*chunk
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	abandon := func() {
		for _, it := range batcher.Flush() {
			p.cancel(&it)
		}
		for _, c := range queue {
			<-c.done
			for i := range c.items {
				p.cancel(&c.items[i])
			}
		}
	}
	open := true
	for open || len(queue) > 0 {
		var input <-chan T
		if open && len(queue) < maxQueue {
			input = in
		}
		var head <-chan struct{}
		if len(queue) > 0 {
			head = queue[0].done
		}
		var tick <-chan time.Time
		if d, ok := batcher.UntilNext(p.cfg.Now()); ok {
			if d <= 0 {
				if err := p.dispatch(ctx, batcher.Flush(), settling); err != nil {
					abandon()
					return err
				}
				continue
			}
			timer.Reset(d)
			tick = timer.C
		}
		select {
		case v, ok := <-input:
			timer.Stop() // Go 1.23+: no stale tick can be received after Stop
			if !ok {
				open = false
				continue
			}
			var c *chunk
			if n := len(spare); n > 0 {
				c, spare = spare[n-1], spare[:n-1]
			} else {
				c = &chunk{recs: make([]Record, 0, 8)}
			}
			c.recs = append(c.recs, record(v))
			c.done = make(chan struct{})
		fill:
			for len(c.recs) < maxChunk {
				select {
				case v, ok := <-in:
					if !ok {
						open = false
						break fill
					}
					c.recs = append(c.recs, record(v))
				default:
					break fill
				}
			}
			queue = append(queue, c)
			work <- c // mappers take every chunk until work is closed
		case <-head:
			timer.Stop()
			c := queue[0]
			queue[0] = nil
			queue = queue[1:]
			now := p.cfg.Now()
			for i := range c.items {
				it := c.items[i]
				if it.event.Body == nil {
					if it.suspect {
						if ok, _ := p.trust.trusted(); !ok {
							p.holdSuspect(ctx, it, settling)
							continue
						}
					}
					p.deadLetter(ctx, it, it.reason, it.detail, 0, settling)
					continue
				}
				if batcher.Add(it, len(it.event.Body), now) {
					if err := p.dispatch(ctx, batcher.Flush(), settling); err != nil {
						for j := i + 1; j < len(c.items); j++ {
							p.cancel(&c.items[j])
						}
						abandon()
						return err
					}
				}
			}
			// Nothing holds on to c: its items were copied.
			clear(c.recs)
			clear(c.items)
			c.recs, c.items = c.recs[:0], c.items[:0]
			spare = append(spare, c)
		case <-tick:
			if err := p.dispatch(ctx, batcher.Flush(), settling); err != nil {
				abandon()
				return err
			}
		case <-ctx.Done():
			timer.Stop()
			abandon()
			return ctx.Err()
		}
	}
	return p.dispatch(ctx, batcher.Flush(), settling)
}

// scratch is a mapper goroutine's reusable memory.
type scratch struct {
	results []mapping.Result
	body    []byte
}

// encode returns e's body for ep. It is encoded into scratch, then copied
// to a buffer of its size: the body waits in memory until delivered, with
// thousands of others, and a grown buffer would carry up to a third unused.
func (s *scratch) encode(e *mapping.Event, ep mapping.Endpoint, withToken bool) []byte {
	s.body = e.AppendBody(s.body[:0], ep, withToken)
	body := bytes.Clone(s.body)
	if cap(s.body) > 64<<10 {
		s.body = nil // do not keep a rare huge buffer
	}
	return body
}

// endpoint is the delivery endpoint of a mapping endpoint.
func endpoint(ep mapping.Endpoint) destination.Endpoint {
	switch ep {
	case mapping.Risk:
		return destination.Risk
	case mapping.Filter:
		return destination.Filter
	}
	return destination.Log
}

// agedUnread reports whether r's event would have been scored but for a
// request token the mapping left out as stale because the event was
// already more than its lifetime old when read (not one in the future,
// nor one of unknown time).
func agedUnread(r *mapping.Result, now time.Time) bool {
	return r.Adjusted.Has(mapping.AdjustTokenStale) && !r.Event.CreatedAt.IsZero() &&
		now.Sub(r.Event.CreatedAt) > mapping.TokenLifetime && r.Event.ScoringWithToken() != mapping.Log
}

// countAdjusted counts each kind of change the mapping made to a message.
func (p *Pipeline) countAdjusted(a mapping.Adjustment) {
	if a == 0 {
		return
	}
	for _, k := range mapping.Adjustments() {
		if a.Has(k) {
			p.m.adjusted.WithLabelValues(k.String()).Inc()
		}
	}
}

// prepare maps one record and appends its work items, or acknowledges it
// at once when all its messages were dropped or absorbed. It runs on the
// mapper goroutines.
func (p *Pipeline) prepare(rec Record, s *scratch, items *[]item) {
	p.m.consumed.Inc()
	now := p.cfg.Now()
	s.results = p.mapper.Map(s.results[:0], rec.Value, now, p.dir)
	results := s.results
	var pend *pending
	first := len(*items)
	for i := range results {
		r := &results[i]
		if r.JWTVerified {
			p.trust.verify()
		}
		switch r.Action {
		case mapping.Forward:
			if p.cfg.Keep != nil && !p.cfg.Keep(r) {
				p.m.dropped.WithLabelValues(DropOutsideWindow).Inc()
				continue
			}
			if pend == nil {
				pend = newPending(p, rec)
			}
			// The last filter: a messageId already forwarded. It is
			// forgotten again if its event is not delivered after all;
			// a copy of one still in flight waits for it (Dedupe).
			var seenAt int32
			if p.seen != nil && r.MessageID != "" {
				pos, c := p.seen.claim(r.MessageID, pend)
				switch c {
				case claimDup:
					p.m.dropped.WithLabelValues(string(mapping.ReasonDuplicate)).Inc()
					continue
				case claimWaiting:
					continue
				}
				seenAt = int32(pos) + 1
			}
			p.countAdjusted(r.Adjusted)
			it := item{rec: pend, messageID: r.MessageID, seenAt: seenAt, segType: r.Type, raw: r.Raw,
				event: destination.Event{UserID: r.Event.UserID(), Type: r.Type}}
			withToken := true
			// The request token was minted before it was read, whatever
			// the event's time (up to 120 s ahead) says.
			minted := r.Event.CreatedAt
			if minted.After(now) {
				minted = now
			}
			if ep := r.Event.Scoring(); p.cfg.Scoring && ep != mapping.Log {
				// Sent for scoring until the token is ScoringMaxAge old
				// (it expires 120 s after it was made); then, or if
				// Castle refuses the token, to /v1/log without it.
				it.event.Score = &destination.Score{Endpoint: endpoint(ep), Body: s.encode(&r.Event, ep, true),
					Until: minted.Add(p.cfg.ScoringMaxAge)}
				it.scored = &scored{anonymousID: r.AnonymousID, typ: r.Event.Type, status: r.Event.Status,
					name: r.Event.Name, createdAt: r.Event.CreatedAt}
				withToken = false
			} else if p.cfg.Scoring && agedUnread(r, now) {
				// The token was older than Castle's 120 s when the record
				// was read, and the mapping left it out: a token_aged
				// fallback, which the sender counts as it sends the event
				// to /v1/log (a Score without a Body is never sent).
				it.event.Score = &destination.Score{Endpoint: endpoint(r.Event.ScoringWithToken())}
			}
			it.event.Body = s.encode(&r.Event, mapping.Log, withToken)
			if withToken && r.Event.RequestToken != "" {
				// The mapping kept the token as fresh; the sender leaves
				// it out of a request sent once it is not.
				it.event.TokenUntil = minted.Add(mapping.TokenLifetime)
			}
			*items = append(*items, it)
		case mapping.DeadLetter:
			if pend == nil {
				pend = newPending(p, rec)
			}
			*items = append(*items, item{rec: pend, messageID: r.MessageID, segType: r.Type, raw: r.Raw,
				reason: string(r.Reason), detail: r.Detail, suspect: r.BadSignature})
		case mapping.Drop:
			p.m.dropped.WithLabelValues(string(r.Reason)).Inc()
		case mapping.Identified:
			p.countAdjusted(r.Adjusted)
			if p.users != nil {
				p.users.Put(r.Identity)
			}
			p.m.identified.Inc()
		}
	}
	// The scratch outlives the record: its results, which point into the
	// record's bytes, go now (items keep what they need).
	clear(results)
	if pend == nil {
		if rec.Acker != nil {
			rec.Acker.Ack(nil)
		}
		return
	}
	pend.left.Add(int32(len(*items) - first))
	pend.done(nil) // newPending's share: the record is mapped
}

// Users is the identify cache (nil without one): a resumed replay loads
// what the interrupted run's identify messages said into it.
func (p *Pipeline) Users() *mapping.Users { return p.users }

// dispatch submits a batch of events for delivery, taking one in-flight
// slot per event first. It runs on Run's goroutine, so batches are
// submitted in input order and the deliverer keeps each user's events in
// that order.
func (p *Pipeline) dispatch(ctx context.Context, batch []item, settling *sync.WaitGroup) error {
	if len(batch) == 0 {
		return nil
	}
	// One slot per event, released as each event settles, so that a few
	// events held back (a paced user, a retry) hold only their own slots.
	for n := range len(batch) {
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
	events := make([]destination.Event, len(batch))
	for i := range batch {
		events[i] = batch[i].event
	}
	p.m.batchSize.Observe(float64(len(batch)))
	p.m.inFlight.Add(float64(len(batch)))
	settling.Add(len(batch))
	p.deliver.Submit(ctx, events, func(j int, r destination.Result) {
		it := &batch[j]
		switch r.Status {
		case destination.Delivered:
			p.m.forwarded.WithLabelValues(it.segType).Inc()
			if it.scored != nil && r.Endpoint != destination.Log {
				p.verdict(it, r, settling)
			} else {
				it.finisher().done(nil)
			}
		case destination.Canceled:
			p.cancel(it)
		default:
			detail := ""
			if r.Err != nil {
				detail = r.Err.Error()
			}
			p.deadLetter(ctx, *it, r.Status.String(), detail, r.Attempts, settling)
		}
		// The batch lives until its last event settles: this event's
		// record and body go now.
		*it = item{}
		p.m.inFlight.Dec()
		<-p.sem
		settling.Done()
	})
	return nil
}

// cancel abandons an item: its messageId is forgotten (so that reading the
// record again does not drop it as a duplicate) and its record is not
// acknowledged as done.
func (p *Pipeline) cancel(it *item) {
	p.m.canceled.Inc()
	it.finisher().done(ErrCanceled)
}

// finish is what settling one item takes, kept apart from the item, which
// is cleared when its event settles, for settling after a write.
type finish struct {
	rec    *pending
	id     string
	seenAt int32
}

func (it *item) finisher() finish { return finish{rec: it.rec, id: it.messageID, seenAt: it.seenAt} }

// done settles the item's share of its record and, for a forwarded event,
// its messageId's flight in the dedupe window, with the copies that
// waited for it (Dedupe): with a nil err they are duplicates, done;
// otherwise the id is forgotten and they are abandoned with the event, to
// be read again.
func (f finish) done(err error) {
	f.rec.done(err)
	if f.seenAt == 0 {
		return
	}
	p := f.rec.p
	for _, w := range p.seen.settle(f.id, int(f.seenAt)-1, err) {
		if err == nil {
			p.m.dropped.WithLabelValues(string(mapping.ReasonDuplicate)).Inc()
		}
		w.done(err)
	}
}

// deadLetter hands an item's dead letter to the writer; the item settles
// once it is written. Without a sink the item is abandoned.
func (p *Pipeline) deadLetter(ctx context.Context, it item, reason, detail string, attempts int, settling *sync.WaitGroup) {
	if p.letters == nil {
		it.finisher().done(ErrDeadLetterNotWritten)
		return
	}
	r := it.rec.rec
	l := deadletter.Letter{
		Value: it.raw, Key: r.Key, Reason: reason, Error: detail,
		Source: r.Source, Partition: r.Partition, Offset: r.Offset,
		MessageID: it.messageID, Attempts: attempts, Time: p.cfg.Now(),
	}
	settling.Add(1)
	p.letters.add(l, func(err error) {
		it.finisher().done(err)
		settling.Done()
	})
}

// verdict records the verdict Castle returned for a scored event: in
// metrics, and with a verdict sink, as a record written before the event's
// record is acknowledged. A verdict Castle answered that is not JSON is
// counted and not written; the event is delivered all the same.
func (p *Pipeline) verdict(it *item, r destination.Result, settling *sync.WaitGroup) {
	resp, err := verdict.Parse(r.Verdict)
	if err != nil {
		p.vm.ObserveError(err)
		if errors.Is(err, verdict.ErrNotJSON) {
			it.finisher().done(nil)
			return
		}
	}
	rec := it.rec.rec
	v := &verdict.Verdict{
		MessageID: it.messageID, UserID: it.event.UserID, AnonymousID: it.scored.anonymousID,
		Event:     verdict.Event{Type: it.scored.typ, Status: it.scored.status, Name: it.scored.name},
		CreatedAt: it.scored.createdAt, ScoredAt: p.cfg.Now().UTC(), Endpoint: r.Endpoint.String(),
		Source: &verdict.Source{Topic: rec.Source, Partition: int32(rec.Partition), Offset: rec.Offset},
	}
	v.SetResponse(resp)
	p.vm.Observe(v)
	if p.verdicts == nil {
		it.finisher().done(nil)
		return
	}
	settling.Add(1)
	fin := it.finisher() // it is cleared once this returns
	p.verdicts.add(v, func(err error) {
		fin.done(err)
		settling.Done()
	})
}

// holdSuspect keeps a message whose userJwt's signature does not verify
// until the API secret is trusted (secretTrust): Castle takes it, or,
// before Castle has answered either way, another userJwt verified under
// it. Only then is the message dead-lettered, as a forged token. Until
// then the wrong secret may be why every token fails, and dead-lettering
// them would drain a topic of Secure Mode traffic into dead letters:
// delivery holds under auth instead (SPEC §5), and the record is not
// committed. A secret Castle refuses later (rotated at Castle) is
// trusted no more.
func (p *Pipeline) holdSuspect(ctx context.Context, it item, settling *sync.WaitGroup) {
	p.trust.suspect()
	settling.Add(1)
	go func() {
		defer settling.Done()
		for {
			ok, became := p.trust.trusted()
			if ok {
				p.deadLetter(ctx, it, it.reason, it.detail, 0, settling)
				return
			}
			select {
			case <-became:
			case <-ctx.Done():
				p.cancel(&it)
				return
			}
		}
	}()
}
