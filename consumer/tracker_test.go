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
	tr := newTracker(0, 10, 0)
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
	tr := newTracker(3, 8, 100)
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
	tr := newTracker(0, 4, 10)
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
	tr := newTracker(0, 4, -2) // kafka.FirstOffset, not resolved
	mustState(t, tr, -1, 0)
	s := tr.push(42)
	mustState(t, tr, 42, 1)
	tr.ack(s)
	mustState(t, tr, 43, 0)
}

func TestTrackerCapacityAcrossWraps(t *testing.T) {
	const capacity = 3
	tr := newTracker(0, capacity, 0)
	var seqs []uint64
	next := int64(0)
	fill := func() {
		t.Helper()
		for tr.reserve(canceled()) == nil {
			seqs = append(seqs, tr.push(next))
			next++
			if len(seqs) > 100 {
				t.Fatal("reserve never blocks")
			}
		}
	}
	fill()
	if len(seqs) != capacity {
		t.Fatalf("pushed %d records before reserve blocked, want %d", len(seqs), capacity)
	}
	// Acking records above the watermark does not make room: the bound is
	// on the records between the watermark and the fetch position.
	tr.ack(seqs[1])
	tr.ack(seqs[2])
	if err := tr.reserve(canceled()); !errors.Is(err, context.Canceled) {
		t.Fatalf("reserve with the oldest record un-acked = %v, want context.Canceled", err)
	}
	tr.ack(seqs[0])
	mustState(t, tr, 3, 0)
	// Room for capacity more, through the ring's wrap.
	for round := range 5 {
		before := len(seqs)
		fill()
		if got := len(seqs) - before; got != capacity {
			t.Fatalf("round %d: pushed %d, want %d", round, got, capacity)
		}
		for _, s := range seqs[before:] {
			tr.ack(s)
		}
		mustState(t, tr, next, 0)
	}

	// A blocked reserve wakes when the watermark moves.
	fill()
	woke := make(chan error, 1)
	go func() { woke <- tr.reserve(context.Background()) }()
	tr.ack(seqs[len(seqs)-capacity])
	if err := <-woke; err != nil {
		t.Fatalf("reserve after the watermark moved: %v", err)
	}
}

func TestTrackerUnpush(t *testing.T) {
	tr := newTracker(0, 2, 0)
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
	tr := newTracker(0, 4, 0)
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
	tr := newTracker(0, 4, 0)
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
