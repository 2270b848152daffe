package pipeline

import "time"

// BatchPolicy bounds a batch by item count, total size in bytes and how
// long its first item may wait (linger). A zero field takes its default:
// 500 items, 1 MiB, 200 ms.
type BatchPolicy struct {
	Count  int
	Bytes  int
	Linger time.Duration
}

// Batch policy defaults.
const (
	DefaultBatchCount  = 500
	DefaultBatchBytes  = 1 << 20
	DefaultBatchLinger = 200 * time.Millisecond
)

func (p BatchPolicy) withDefaults() BatchPolicy {
	if p.Count <= 0 {
		p.Count = DefaultBatchCount
	}
	if p.Bytes <= 0 {
		p.Bytes = DefaultBatchBytes
	}
	if p.Linger <= 0 {
		p.Linger = DefaultBatchLinger
	}
	return p
}

// Batcher accumulates items into batches. It owns no goroutine and reads no
// clock: the caller passes the time in, asks UntilNext how long it may wait
// for more items, and calls Flush when Add reports full or the linger has
// passed. It is not safe for concurrent use.
//
// A batch is full once it holds Count items or at least Bytes bytes; the
// item that crosses Bytes stays in the batch, so a batch exceeds Bytes by at
// most its last item.
type Batcher[T any] struct {
	p     BatchPolicy
	items []T
	bytes int
	first time.Time
}

// NewBatcher returns an empty batcher with policy p (zero fields defaulted).
func NewBatcher[T any](p BatchPolicy) *Batcher[T] {
	p = p.withDefaults()
	return &Batcher[T]{p: p}
}

// Policy returns the policy in effect, defaults applied.
func (b *Batcher[T]) Policy() BatchPolicy { return b.p }

// Add appends item, of size bytes, at time now. It reports whether the
// batch is now full and should be flushed.
func (b *Batcher[T]) Add(item T, size int, now time.Time) (full bool) {
	if len(b.items) == 0 {
		b.first = now
		if b.items == nil {
			b.items = make([]T, 0, min(b.p.Count, 1024))
		}
	}
	b.items = append(b.items, item)
	b.bytes += max(size, 0)
	return b.Full()
}

// Full reports whether the batch reached its count or byte bound.
func (b *Batcher[T]) Full() bool {
	return len(b.items) >= b.p.Count || b.bytes >= b.p.Bytes
}

// Len returns the number of items in the batch.
func (b *Batcher[T]) Len() int { return len(b.items) }

// Bytes returns the total size of the items in the batch.
func (b *Batcher[T]) Bytes() int { return b.bytes }

// UntilNext returns how long remains, at now, before the batch's linger
// ends and it should be flushed (0 if it already has, or if it is full).
// It returns false when the batch is empty: there is nothing to wait for.
func (b *Batcher[T]) UntilNext(now time.Time) (time.Duration, bool) {
	if len(b.items) == 0 {
		return 0, false
	}
	if b.Full() {
		return 0, true
	}
	return max(b.first.Add(b.p.Linger).Sub(now), 0), true
}

// Flush returns the batch's items, in the order added, and empties the
// batcher. The caller owns the returned slice, which has room for the items
// alone: a batch lives until its last event settles, and a small batch
// must not hold a full batch's room. It returns nil if empty.
func (b *Batcher[T]) Flush() []T {
	if len(b.items) == 0 {
		return nil
	}
	out := make([]T, len(b.items))
	copy(out, b.items)
	clear(b.items) // the batcher's room keeps no item alive
	b.items = b.items[:0]
	b.bytes = 0
	b.first = time.Time{}
	return out
}
