package pipeline

import (
	"errors"
	"testing"
)

// An id in flight makes later copies wait; settling it done makes them
// duplicates, settling it failed forgets it; a settle never touches a
// later claim of the same id after the first was evicted in flight.
func TestDedupeClaimAndSettle(t *testing.T) {
	d := NewDedupe(2)
	rec := func() *pending { return &pending{} }

	first, copy1 := rec(), rec()
	pos, c := d.claim("a", first)
	if c != claimNew {
		t.Fatalf("first claim: %v", c)
	}
	if _, c := d.claim("a", copy1); c != claimWaiting || copy1.left.Load() != 1 {
		t.Fatalf("copy in flight: %v, its record has %d shares; want waiting, 1", c, copy1.left.Load())
	}
	if n := d.Waiting(); n != 1 {
		t.Fatalf("%d copies waiting, want 1", n)
	}
	if ws := d.settle("a", pos, nil); len(ws) != 1 || ws[0] != copy1 {
		t.Fatalf("settle returned %v, want the waiting copy", ws)
	}
	if n := d.Waiting(); n != 0 {
		t.Fatalf("%d copies waiting after the settle, want 0", n)
	}
	if _, c := d.claim("a", rec()); c != claimDup {
		t.Fatalf("after delivery: %v, want a duplicate", c)
	}

	pos, _ = d.claim("b", rec())
	if ws := d.settle("b", pos, errors.New("canceled")); len(ws) != 0 {
		t.Fatalf("nothing waited, settle returned %v", ws)
	}
	if _, c := d.claim("b", rec()); c != claimNew {
		t.Fatalf("after a failed flight: %v, want new", c)
	}

	d = NewDedupe(2)
	old, _ := d.claim("x", rec())
	d.claim("y", rec())
	d.claim("z", rec()) // evicts x, still in flight
	if _, c := d.claim("x", rec()); c != claimNew {
		t.Fatalf("x after eviction: %v, want new", c)
	}
	d.settle("x", old, nil) // the first flight of x ends
	if _, c := d.claim("x", rec()); c != claimWaiting {
		t.Fatalf("x while its second flight is on: %v, want waiting", c)
	}

	// A copy forgotten with the id it waits for waits no more.
	d = NewDedupe(2)
	d.claim("c", rec())
	held := rec()
	held.left.Store(1) // its own share while it is mapped, as newPending gives
	d.claim("c", held)
	d.Forget("c")
	if n, left := d.Waiting(), held.left.Load(); n != 0 || left != 1 {
		t.Fatalf("after Forget: %d copies waiting, the copy's record has %d shares; want 0, 1", n, left)
	}
}
