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
	if ws := d.settle("a", pos, nil); len(ws) != 1 || ws[0] != copy1 {
		t.Fatalf("settle returned %v, want the waiting copy", ws)
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
}
