package consumer

import (
	"context"
	"sync"
)

// tracker follows the records of one partition within one generation, in
// fetch order, and computes the committable watermark: one past the offset of
// the last record such that it and every record fetched before it are acked.
//
// Contiguity is over the records as fetched, not over integer offsets, so the
// offset gaps of compacted topics or transaction markers never stall it.
//
// Two bounds hold back the (single) fetcher in reserve: at most maxUnacked
// records fetched and not yet acked (they are what holds memory: a record's
// bytes and its requests), and at most maxSpan records between the
// watermark and the fetch position (what a crash can hand out again). An
// acked record past an older un-acked one costs nine bytes here and nothing
// elsewhere, so one slow record (a user's events sent one after another,
// each a round trip to Castle) holds back the commit but not the fetch.
// The span's ring grows by doubling up to maxSpan.
//
// Once closed it ignores acks, so acks of an ended generation can never move
// a later generation's watermark.
type tracker struct {
	partition  int
	maxUnacked int
	maxSpan    int

	mu        sync.Mutex
	offsets   []int64 // ring: offset of record seq at seq % len
	acked     []bool  // ring: whether record seq is acked
	head      uint64  // oldest record not yet below the watermark
	tail      uint64  // next sequence number to hand out
	watermark int64   // commit offset; -1 while unknown
	unacked   int
	closed    bool
	changed   chan struct{} // closed (and cleared) when ack makes room or idles, on unpush and close
}

func newTracker(partition, maxUnacked, maxSpan int, start int64) *tracker {
	if start < 0 {
		start = -1
	}
	maxUnacked = max(maxUnacked, 1)
	maxSpan = max(maxSpan, maxUnacked)
	return &tracker{
		partition:  partition,
		maxUnacked: maxUnacked,
		maxSpan:    maxSpan,
		offsets:    make([]int64, maxUnacked),
		acked:      make([]bool, maxUnacked),
		watermark:  start,
	}
}

// notifyLocked wakes every waiter. t.mu must be held.
func (t *tracker) notifyLocked() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// waitLocked returns a channel closed at the next change. t.mu must be held.
func (t *tracker) waitLocked() <-chan struct{} {
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return t.changed
}

// reserve waits until there is room for one more record. It returns
// ctx.Err() if ctx ends first and errTrackerClosed if the tracker closes.
func (t *tracker) reserve(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return errTrackerClosed
		}
		if t.unacked < t.maxUnacked && t.tail-t.head < uint64(t.maxSpan) {
			t.mu.Unlock()
			return nil
		}
		ch := t.waitLocked()
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// push appends a fetched record and returns its sequence number. The caller
// must have reserved room; only one goroutine (the fetcher) may push.
func (t *tracker) push(offset int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tail-t.head == uint64(len(t.offsets)) {
		t.growLocked()
	}
	seq := t.tail
	i := seq % uint64(len(t.offsets))
	t.offsets[i] = offset
	t.acked[i] = false
	t.tail++
	t.unacked++
	if t.watermark < 0 {
		// Nothing was committable before the first record.
		t.watermark = offset
	}
	return seq
}

// refill is how many records must be acked, once the fetcher waits on
// maxUnacked, before it is woken.
func (t *tracker) refill() int { return max(1, t.maxUnacked/16) }

// growLocked doubles the ring, up to maxSpan, keeping each record's
// sequence number. t.mu must be held.
func (t *tracker) growLocked() {
	n := min(2*len(t.offsets), t.maxSpan)
	offsets, acked := make([]int64, n), make([]bool, n)
	for seq := t.head; seq < t.tail; seq++ {
		offsets[seq%uint64(n)] = t.offsets[seq%uint64(len(t.offsets))]
		acked[seq%uint64(n)] = t.acked[seq%uint64(len(t.acked))]
	}
	t.offsets, t.acked = offsets, acked
}

// unpush removes the last pushed record, which was never handed out.
func (t *tracker) unpush(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || seq+1 != t.tail || seq < t.head {
		return
	}
	t.tail--
	t.unacked--
	t.notifyLocked()
}

// ack marks record seq done. It returns false, changing nothing, when the
// tracker is closed.
func (t *tracker) ack(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if seq < t.head || seq >= t.tail {
		return true // already below the watermark (or unknown): nothing to do
	}
	n := uint64(len(t.offsets))
	if t.acked[seq%n] {
		return true
	}
	t.acked[seq%n] = true
	t.unacked--
	moved := false
	for t.head < t.tail && t.acked[t.head%n] {
		t.watermark = t.offsets[t.head%n] + 1
		t.head++
		moved = true
	}
	// Wake the fetcher when the span has room, or when enough records are
	// acked for it to fetch a run of them rather than one per ack; and
	// waitIdle once nothing is outstanding.
	if moved || t.unacked == t.maxUnacked-t.refill() || t.unacked == 0 {
		t.notifyLocked()
	}
	return true
}

// state returns the watermark (-1 if unknown) and the number of un-acked
// records.
func (t *tracker) state() (watermark int64, unacked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.watermark, t.unacked
}

// waitIdle waits until every pushed record is acked, or ctx ends.
func (t *tracker) waitIdle(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.unacked == 0 || t.closed {
			t.mu.Unlock()
			return nil
		}
		ch := t.waitLocked()
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close stops the tracker: later acks are ignored. It returns the final
// watermark (-1 if unknown) and how many records were left un-acked.
func (t *tracker) close() (watermark int64, unacked int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.notifyLocked()
	return t.watermark, t.unacked
}
