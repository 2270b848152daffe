package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/internal/promtest"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
)

const secret = "sk_pipeline_test_secret_4Fq9"

// rig is a pipeline wired to a real mapping and a real Castle client that
// talks to the Castle-compatible server over an in-memory connection, so
// that it runs inside a synctest bubble.
type rig struct {
	srv     *castleserver.Server
	castle  *destination.Client
	mapper  *mapping.Mapper
	letters *letterBox
	board   *hold.Board
	reg     *prometheus.Registry
	p       *pipeline.Pipeline
	stop    func()
}

func newRig(t *testing.T, cfg pipeline.Config, dcfg destination.Config) *rig {
	t.Helper()
	return newRigVia(t, cfg, dcfg, nil)
}

// newRigVia is newRig with the Castle-compatible server's handler wrapped
// in via (nil: not wrapped), for answers the server itself does not give.
func newRigVia(t *testing.T, cfg pipeline.Config, dcfg destination.Config, via func(http.Handler) http.Handler) *rig {
	t.Helper()
	srv, err := castleserver.New(castleserver.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	l := castleserver.NewMemListener()
	var h http.Handler = srv
	if via != nil {
		h = via(srv)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(l) }()
	tr := &http.Transport{DialContext: l.DialContext, MaxIdleConnsPerHost: 64}
	dcfg.URL, dcfg.Secret = "http://castle.test", secret
	if dcfg.Retry == (destination.RetryPolicy{}) {
		dcfg.Retry = destination.RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, MaxElapsed: time.Minute}
	}
	reg := prometheus.NewRegistry()
	board, err := hold.New(nil, reg, hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dcfg.Faults, cfg.Faults = board, board
	castle, err := destination.New(dcfg, nil, reg, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	m := mapping.New(mapping.Config{Secret: []byte(secret), Version: "test"})
	if cfg.DedupeSize == 0 {
		cfg.DedupeSize = 1 << 16
	}
	r := &rig{srv: srv, castle: castle, mapper: m, letters: &letterBox{}, board: board, reg: reg}
	r.p, err = pipeline.New(cfg, m, castle, r.letters, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	r.stop = func() {
		castle.Close()
		srv.Close()
		_ = hs.Close()
		tr.CloseIdleConnections()
	}
	return r
}

// run feeds recs to the pipeline and returns Run's error once in is
// drained and everything settled.
func (r *rig) run(ctx context.Context, recs ...pipeline.Record) error {
	in := make(chan pipeline.Record, len(recs))
	for _, rec := range recs {
		in <- rec
	}
	close(in)
	return r.p.Run(ctx, in)
}

func (r *rig) outcomes(t *testing.T) pipeline.Outcomes {
	t.Helper()
	o, err := pipeline.Observe(r.reg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// letterBox is a dead-letter sink that keeps what it is given and fails
// while failing is set.
type letterBox struct {
	mu      sync.Mutex
	letters []deadletter.Letter
	failing atomic.Bool
	writes  atomic.Int64
}

func (b *letterBox) Write(_ context.Context, letters ...deadletter.Letter) error {
	b.writes.Add(1)
	if b.failing.Load() {
		return errors.New("dead-letter topic unavailable")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.letters = append(b.letters, letters...)
	return nil
}

func (b *letterBox) get() []deadletter.Letter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]deadletter.Letter(nil), b.letters...)
}

// acker records acknowledgements; onAck, if set, runs at each.
type acker struct {
	n     atomic.Int32
	nacks atomic.Int32
	onAck func()
}

func (a *acker) Ack(err error) {
	if err != nil {
		a.nacks.Add(1)
		return
	}
	if a.onAck != nil {
		a.onAck()
	}
	a.n.Add(1)
}

// track is a client-side Segment track message for user with a sequence
// number.
func track(user string, seq int) string {
	return fmt.Sprintf(`{"type":"track","messageId":"m-%s-%d","userId":%q,"event":"Clicked","channel":"client",`+
		`"properties":{"seq":%d},"context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"2"}},`+
		`"timestamp":"2026-11-30T10:00:00Z"}`, user, seq, user, seq)
}

func record(offset int64, value string, a pipeline.Acker) pipeline.Record {
	return pipeline.Record{Value: []byte(value), Source: "segment", Offset: offset, Acker: a}
}

// An envelope is acknowledged once, and only after every one of its
// messages is settled, even when some of them need retries.
func TestEnvelopeAckedAfterAllItemsSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.FailNext(2, castleserver.Status(503))
		var acceptedAtAck atomic.Int64
		a := &acker{}
		a.onAck = func() { acceptedAtAck.Store(r.srv.Stats().Accepted) }
		env := `{"batch":[` + track("a", 1) + `,` + track("b", 1) + `,` + track("c", 1) + `]}`
		if err := r.run(context.Background(), record(0, env, a)); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := a.n.Load(); got != 1 {
			t.Fatalf("acked %d times, want 1", got)
		}
		if got := acceptedAtAck.Load(); got != 3 {
			t.Errorf("at the ack Castle had accepted %d events, want all 3", got)
		}
	})
}

// A record whose events are canceled is not acknowledged, and the mapping
// forgets its messageIds: read again, they are delivered, not dropped as
// duplicates.
func TestCancelDoesNotAckAndForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.StartOutage(castleserver.Hang())
		ctx, cancel := context.WithCancel(context.Background())
		a := &acker{}
		done := make(chan error, 1)
		go func() { done <- r.run(ctx, record(0, track("a", 1), a), record(1, track("b", 1), a)) }()
		time.Sleep(2 * time.Second) // both requests hang at the server
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
		if got := a.n.Load(); got != 0 {
			t.Fatalf("acked %d records whose events were canceled", got)
		}
		if o := r.outcomes(t); o.Canceled != 2 {
			t.Errorf("canceled = %d, want 2", o.Canceled)
		}
		r.srv.EndOutage()
		b := &acker{}
		if err := r.run(context.Background(), record(0, track("a", 1), b), record(1, track("b", 1), b)); err != nil {
			t.Fatalf("second Run: %v", err)
		}
		if got := b.n.Load(); got != 2 {
			t.Errorf("second run acked %d, want 2", got)
		}
		if got := r.srv.Stats().Accepted; got != 2 {
			t.Errorf("Castle accepted %d, want 2 (the re-read events are no duplicates)", got)
		}
		if o := r.outcomes(t); o.Dropped["duplicate"] != 0 {
			t.Errorf("dropped as duplicate: %d", o.Dropped["duplicate"])
		}
	})
}

// A dead letter that cannot be written holds its record's acknowledgement
// until the sink accepts it; the record is acknowledged once.
func TestDeadLetterWriteFailureHoldsAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{DeadLetterRetry: time.Second}, destination.Config{})
		defer r.stop()
		r.letters.failing.Store(true)
		a := &acker{}
		done := make(chan error, 1)
		go func() { done <- r.run(context.Background(), record(7, `{"not json`, a)) }()
		time.Sleep(10 * time.Second)
		if got := a.n.Load(); got != 0 {
			t.Fatalf("acked while the dead letter was not written")
		}
		// Retried at a backoff doubling from 1 s: at 0, 1, 3 and 7 s.
		if w := r.letters.writes.Load(); w != 4 {
			t.Errorf("%d write attempts in 10 s, want 4", w)
		}
		if err := r.board.Ready(); err == nil || !strings.Contains(err.Error(), "dead_letter_topic") {
			t.Errorf("Ready() = %v while dead letters cannot be written", err)
		}
		r.letters.failing.Store(false)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := a.n.Load(); got != 1 {
			t.Fatalf("acked %d times, want 1", got)
		}
		l := r.letters.get()
		if len(l) != 1 || l[0].Reason != "malformed" || l[0].Offset != 7 || string(l[0].Value) != `{"not json` {
			t.Errorf("letters = %+v", l)
		}
		if err := r.board.Ready(); err != nil {
			t.Errorf("Ready() = %v once the dead letter is written", err)
		}
	})
}

// While dead letters cannot be written, delivery holds (SPEC §5): nothing
// more goes to Castle, whose events behind the unwritten letter could not
// commit anyway and would be sent again after a restart. Once the letter
// is written, everything goes.
func TestUnwritableDeadLetterTopicHoldsDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{DeadLetterRetry: time.Second}, destination.Config{})
		defer r.stop()
		r.letters.failing.Store(true)
		a := &acker{}
		in := make(chan pipeline.Record, 32)
		done := make(chan error, 1)
		go func() { done <- r.p.Run(context.Background(), in) }()
		in <- record(0, `{"not json`, a)
		time.Sleep(2 * time.Second)
		for i := range 20 {
			in <- record(int64(1+i), track(fmt.Sprint("u", i), 0), a)
		}
		time.Sleep(10 * time.Second)
		if n := r.srv.Stats().Accepted; n != 0 {
			t.Errorf("Castle accepted %d events while dead letters could not be written", n)
		}
		if err := r.board.Ready(); err == nil || !strings.Contains(err.Error(), "dead_letter_topic") {
			t.Errorf("Ready() = %v while dead letters cannot be written", err)
		}
		r.letters.failing.Store(false)
		close(in)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := r.srv.Stats().Accepted; n != 20 {
			t.Errorf("Castle accepted %d events, want 20", n)
		}
		if got := a.n.Load(); got != 21 {
			t.Errorf("acked %d of 21 records", got)
		}
		if l := r.letters.get(); len(l) != 1 {
			t.Errorf("%d dead letters, want 1", len(l))
		}
	})
}

// Events of one user reach Castle in input order, across many chunks
// mapped by several workers.
func TestPerUserOrderAcrossChunks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{MapWorkers: 4}, destination.Config{})
		defer r.stop()
		const n = 300
		recs := make([]pipeline.Record, 0, 2*n)
		for i := range n {
			recs = append(recs, record(int64(2*i), track("heavy", i), nil), record(int64(2*i+1), track(fmt.Sprint("u", i), i), nil))
		}
		if err := r.run(context.Background(), recs...); err != nil {
			t.Fatalf("Run: %v", err)
		}
		next := 0
		for _, rec := range r.srv.Accepted() {
			if rec.UserID != "heavy" {
				continue
			}
			if seq := rec.Properties["seq"]; seq != float64(next) {
				t.Fatalf("heavy user's event %d arrived with seq %v", next, seq)
			}
			next++
		}
		if next != n {
			t.Errorf("heavy user: %d events accepted, want %d", next, n)
		}
	})
}

// When a run is canceled while a batch waits for in-flight room, the room
// it had taken is given back, so the next run can fill the bound again.
func TestInFlightBoundReleasedOnPartialCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Hung requests time out and retry; a retry budget longer than the
		// test keeps every event in flight until the cancel.
		retry := destination.RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, MaxElapsed: 24 * time.Hour}
		r := newRig(t, pipeline.Config{MaxInFlightEvents: 4, Batch: pipeline.BatchPolicy{Count: 3}}, destination.Config{Retry: retry})
		defer r.stop()
		r.srv.StartOutage(castleserver.Hang())
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan pipeline.Record)
		done := make(chan error, 1)
		go func() { done <- r.p.Run(ctx, in) }()
		// Two batches of one event each (flushed by the linger) take two
		// slots; the next batch of three takes the last two and waits.
		for i := range 5 {
			in <- record(int64(i), track(fmt.Sprint("u", i), i), nil)
			if i < 2 {
				time.Sleep(time.Second)
			}
		}
		time.Sleep(time.Second)
		if got := promtest.Value(t, r.reg, "castle_destination_in_flight_events"); got != 2 {
			t.Fatalf("before the cancel: %v events in flight, want the two single-event batches", got)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if l := r.letters.get(); len(l) != 0 {
			t.Fatalf("canceled run wrote %d dead letters, want none", len(l))
		}
		if got := promtest.Value(t, r.reg, "castle_destination_in_flight_events"); got != 0 {
			t.Fatalf("after the cancel: %v events in flight, want 0", got)
		}
		r.srv.EndOutage()
		a := &acker{}
		more := make([]pipeline.Record, 0, 12)
		for i := range 12 {
			more = append(more, record(int64(i), track(fmt.Sprint("v", i), i), a))
		}
		if err := r.run(context.Background(), more...); err != nil {
			t.Fatalf("second Run: %v", err)
		}
		if got := a.n.Load(); got != 12 {
			t.Errorf("second run acked %d of 12", got)
		}
	})
}

// A dead letter is written as soon as its event fails, not when the rest of
// its batch settles: a sibling that retries for a minute does not hold it.
func TestDeadLetterWrittenAsEachEventFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{Concurrency: 1}) // a's request first
		defer r.stop()
		// The first request is refused for good; the second retries.
		r.srv.FailNext(1, castleserver.Status(400))
		r.srv.FailNext(1, castleserver.Status(503))
		r.srv.FailNext(30, castleserver.Status(503))
		a, b := &acker{}, &acker{}
		done := make(chan error, 1)
		go func() { done <- r.run(context.Background(), record(0, track("a", 1), a), record(1, track("b", 1), b)) }()
		time.Sleep(time.Second)
		l := r.letters.get()
		if len(l) != 1 || l[0].Reason != "rejected" {
			t.Fatalf("after 1 s: letters %+v, want the rejected one", l)
		}
		if a.n.Load() != 1 || b.n.Load() != 0 {
			t.Errorf("after 1 s: acked a=%d b=%d, want a's record only", a.n.Load(), b.n.Load())
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if b.n.Load() != 1 {
			t.Errorf("b acked %d times", b.n.Load())
		}
	})
}

// A record abandoned at cancellation is acknowledged with the reason, and
// counted by it.
func TestAbandonedRecordsCarryTheReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.StartOutage(castleserver.Hang())
		r.letters.failing.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		a, b := &acker{}, &acker{}
		done := make(chan error, 1)
		go func() { done <- r.run(ctx, record(0, track("a", 1), a), record(1, `[1,2]`, b)) }()
		time.Sleep(2 * time.Second)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
		if a.n.Load() != 0 || a.nacks.Load() != 1 || b.n.Load() != 0 || b.nacks.Load() != 1 {
			t.Errorf("acks a=%d/%d b=%d/%d (done/abandoned), want both abandoned once", a.n.Load(), a.nacks.Load(), b.n.Load(), b.nacks.Load())
		}
		if got := promtest.Value(t, r.reg, "castle_destination_records_abandoned_total", "reason", "canceled"); got != 1 {
			t.Errorf("abandoned{canceled} = %v, want 1", got)
		}
		if got := promtest.Value(t, r.reg, "castle_destination_records_abandoned_total", "reason", "dead_letter_not_written"); got != 1 {
			t.Errorf("abandoned{dead_letter_not_written} = %v, want 1", got)
		}
	})
}

// A batch larger than the in-flight bound is cut to it instead of waiting
// forever for room it can never have.
func TestBatchLargerThanInFlightBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{MaxInFlightEvents: 2, Batch: pipeline.BatchPolicy{Count: 10}}, destination.Config{})
		defer r.stop()
		a := &acker{}
		recs := make([]pipeline.Record, 10)
		for i := range recs {
			recs[i] = record(int64(i), track(fmt.Sprint("u", i), i), a)
		}
		if err := r.run(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
		if a.n.Load() != 10 {
			t.Errorf("acked %d of 10", a.n.Load())
		}
	})
}
