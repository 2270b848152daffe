package pipeline

import (
	"slices"
	"testing"
	"time"
)

func TestBatcherBoundsAndFlush(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := NewBatcher[int](BatchPolicy{Count: 4, Bytes: 100, Linger: time.Second})
	if _, ok := b.UntilNext(t0); ok {
		t.Fatal("an empty batcher has a linger to wait out")
	}
	if b.Flush() != nil {
		t.Fatal("Flush of an empty batcher returned items")
	}

	// The count bound.
	for i := range 3 {
		if b.Add(i, 1, t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("full after %d items of 4", i+1)
		}
	}
	if d, ok := b.UntilNext(t0.Add(300 * time.Millisecond)); !ok || d != 700*time.Millisecond {
		t.Fatalf("UntilNext = %v, %v; want 700ms from the first item", d, ok)
	}
	if !b.Add(3, 1, t0) {
		t.Fatal("not full at 4 items")
	}
	if got := b.Flush(); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("Flush = %v", got)
	}

	// The byte bound: the item that crosses it stays in the batch.
	b.Add(10, 60, t0)
	if !b.Add(11, 60, t0) {
		t.Fatal("not full past 100 bytes")
	}
	if got := b.Flush(); !slices.Equal(got, []int{10, 11}) || b.Len() != 0 || b.Bytes() != 0 {
		t.Fatalf("Flush = %v, then %d items of %d bytes", got, b.Len(), b.Bytes())
	}

	// A batch flushed by its linger has room for its items alone: it lives
	// until its last event settles, and must not hold a full batch's room.
	b = NewBatcher[int](BatchPolicy{Count: 500})
	b.Add(7, 1, t0)
	if d, ok := b.UntilNext(t0.Add(DefaultBatchLinger)); !ok || d != 0 {
		t.Fatalf("UntilNext past the linger = %v, %v; want 0, true", d, ok)
	}
	got := b.Flush()
	if !slices.Equal(got, []int{7}) || cap(got) != 1 {
		t.Fatalf("Flush = %v with room for %d, want [7] with room for 1", got, cap(got))
	}
	// The next batch does not write into the one handed out.
	b.Add(8, 1, t0)
	if got[0] != 7 {
		t.Fatalf("the flushed batch changed to %v", got)
	}
}
