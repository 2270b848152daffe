package consumer

import (
	"context"
	"errors"
	"testing"
)

// mustState fails unless t's watermark and un-acked count are as wanted.
func mustState(tb testing.TB, tr *tracker, wantWM int64, wantUnacked int) {
	tb.Helper()
	wm, n := tr.state()
	if wm != wantWM || n != wantUnacked {
		tb.Fatalf("state = (watermark %d, unacked %d), want (%d, %d)", wm, n, wantWM, wantUnacked)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestTrackerOutOfOrderAcks(t *testing.T) {
	tr := newTracker(0, 10, 10, 0)
	mustState(t, tr, 0, 0)
	seqs := make([]uint64, 10)
	for i := range seqs {
		if err := tr.reserve(canceled()); err != nil {
			t.Fatalf("reserve %d: %v", i, err)
		}
		seqs[i] = tr.push(int64(i))
	}
	mustState(t, tr, 0, 10)

	// 5..9 first: nothing below them is acked, the watermark stays.
	for i := 5; i < 10; i++ {
		if !tr.ack(seqs[i]) {
			t.Fatalf("ack %d reported a closed tracker", i)
		}
		mustState(t, tr, 0, 10-(i-4))
	}
	// 1..4 still leave 0 outstanding.
	for i := 1; i < 5; i++ {
		tr.ack(seqs[i])
	}
	mustState(t, tr, 0, 1)
	// Acking the same record twice changes nothing.
	tr.ack(seqs[3])
	mustState(t, tr, 0, 1)
	// 0 fills the gap: the watermark jumps past 9.
	tr.ack(seqs[0])
	mustState(t, tr, 10, 0)
	// An ack below the watermark is a no-op.
	if !tr.ack(seqs[0]) {
		t.Fatal("repeated ack reported a closed tracker")
	}
	mustState(t, tr, 10, 0)
}

func TestTrackerWatermarkSteps(t *testing.T) {
	tr := newTracker(3, 8, 8, 100)
	var seqs []uint64
	for o := int64(100); o < 105; o++ {
		seqs = append(seqs, tr.push(o))
	}
	tr.ack(seqs[0])
	mustState(t, tr, 101, 4)
	tr.ack(seqs[2])
	mustState(t, tr, 101, 3)
	tr.ack(seqs[1])
	mustState(t, tr, 103, 2)
	tr.ack(seqs[4])
	mustState(t, tr, 103, 1)
	tr.ack(seqs[3])
	mustState(t, tr, 105, 0)
}

func TestTrackerOffsetGaps(t *testing.T) {
	// Offsets of a compacted topic (or past transaction markers) are not
	// contiguous: contiguity is over the records as fetched.
	tr := newTracker(0, 4, 4, 10)
	a := tr.push(10)
	b := tr.push(17)
	c := tr.push(30)
	tr.ack(c)
	mustState(t, tr, 10, 2)
	tr.ack(a)
	mustState(t, tr, 11, 1)
	tr.ack(b)
	mustState(t, tr, 31, 0)
}

func TestTrackerUnknownStart(t *testing.T) {
	tr := newTracker(0, 4, 4, -2) // kafka.FirstOffset, not resolved
	mustState(t, tr, -1, 0)
	s := tr.push(42)
	mustState(t, tr, 42, 1)
	tr.ack(s)
	mustState(t, tr, 43, 0)
}

// reserveAll pushes records (offsets from *next) until reserve blocks,
// and returns their sequence numbers.
func reserveAll(t *testing.T, tr *tracker, next *int64) []uint64 {
	t.Helper()
	var seqs []uint64
	for tr.reserve(canceled()) == nil {
		seqs = append(seqs, tr.push(*next))
		*next++
		if len(seqs) > 1000 {
			t.Fatal("reserve never blocks")
		}
	}
	return seqs
}

func TestTrackerBoundsAcrossWraps(t *testing.T) {
	const maxUnacked, maxSpan = 3, 8
	tr := newTracker(0, maxUnacked, maxSpan, 0)
	next := int64(0)
	seqs := reserveAll(t, tr, &next)
	if len(seqs) != maxUnacked {
		t.Fatalf("pushed %d records before reserve blocked, want %d (maxUnacked)", len(seqs), maxUnacked)
	}
	// Acks past the oldest outstanding record make room for more: what
	// is acked holds nothing but its place in the span.
	tr.ack(seqs[1])
	tr.ack(seqs[2])
	more := reserveAll(t, tr, &next)
	if len(more) != 2 {
		t.Fatalf("after 2 acks past the oldest, pushed %d, want 2", len(more))
	}
	// Up to the span: with the oldest still out, acked records fill it
	// (the ring grows past maxUnacked on the way).
	for len(seqs)+len(more) < maxSpan {
		for _, s := range more {
			tr.ack(s)
		}
		seqs = append(seqs, more...)
		more = reserveAll(t, tr, &next)
		if len(more) == 0 {
			t.Fatalf("reserve blocked at a span of %d, want %d", len(seqs), maxSpan)
		}
	}
	seqs = append(seqs, more...)
	if len(seqs) != maxSpan {
		t.Fatalf("span %d, want %d", len(seqs), maxSpan)
	}
	for _, s := range seqs[1:] {
		tr.ack(s)
	}
	mustState(t, tr, 0, 1)
	if err := tr.reserve(canceled()); !errors.Is(err, context.Canceled) {
		t.Fatalf("reserve with a full span = %v, want context.Canceled", err)
	}
	// A blocked reserve wakes when the watermark moves.
	woke := make(chan error, 1)
	go func() { woke <- tr.reserve(context.Background()) }()
	tr.ack(seqs[0])
	if err := <-woke; err != nil {
		t.Fatalf("reserve after the watermark moved: %v", err)
	}
	mustState(t, tr, maxSpan, 0)

	// Through many wraps of the grown ring, acked out of order: the
	// watermark follows the oldest outstanding record.
	for round := range 20 {
		seqs = reserveAll(t, tr, &next)
		if len(seqs) != maxUnacked {
			t.Fatalf("round %d: pushed %d, want %d", round, len(seqs), maxUnacked)
		}
		first := next - int64(len(seqs))
		for i := len(seqs) - 1; i > 0; i-- {
			tr.ack(seqs[i])
			mustState(t, tr, first, i)
		}
		tr.ack(seqs[0])
		mustState(t, tr, next, 0)
	}

	// A reserve blocked on maxUnacked wakes once acks make room for a run.
	seqs = reserveAll(t, tr, &next)
	go func() { woke <- tr.reserve(context.Background()) }()
	tr.ack(seqs[2])
	if err := <-woke; err != nil {
		t.Fatalf("reserve after an ack past the oldest: %v", err)
	}
}

func TestTrackerUnpush(t *testing.T) {
	tr := newTracker(0, 2, 2, 0)
	a := tr.push(0)
	b := tr.push(1)
	tr.unpush(b)
	mustState(t, tr, 0, 1)
	if err := tr.reserve(canceled()); err != nil {
		t.Fatalf("reserve after unpush: %v", err)
	}
	tr.unpush(a + 5) // not the last: ignored
	mustState(t, tr, 0, 1)
	tr.ack(a)
	mustState(t, tr, 1, 0)
}

func TestTrackerClosedIgnoresAcks(t *testing.T) {
	tr := newTracker(0, 4, 4, 0)
	a := tr.push(0)
	b := tr.push(1)
	idle := make(chan error, 1)
	go func() { idle <- tr.waitIdle(context.Background()) }()
	tr.ack(b)
	wm, n := tr.close()
	if wm != 0 || n != 1 {
		t.Fatalf("close = (%d, %d), want (0, 1)", wm, n)
	}
	if err := <-idle; err != nil {
		t.Fatalf("waitIdle after close: %v", err)
	}
	if tr.ack(a) {
		t.Fatal("ack on a closed tracker reported success")
	}
	mustState(t, tr, 0, 1)
	if err := tr.reserve(context.Background()); !errors.Is(err, errTrackerClosed) {
		t.Fatalf("reserve on a closed tracker = %v, want errTrackerClosed", err)
	}
}

func TestTrackerWaitIdle(t *testing.T) {
	tr := newTracker(0, 4, 4, 0)
	if err := tr.waitIdle(canceled()); err != nil {
		t.Fatalf("waitIdle on an empty tracker: %v", err)
	}
	a := tr.push(0)
	if err := tr.waitIdle(canceled()); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitIdle with a record out = %v, want context.Canceled", err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.waitIdle(context.Background()) }()
	tr.ack(a)
	if err := <-done; err != nil {
		t.Fatalf("waitIdle: %v", err)
	}
}
