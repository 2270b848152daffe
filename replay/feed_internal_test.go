package replay

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/castle-destination/castle-destination/pipeline"
)

// TestSpansMatchASet adds indexes in random order and checks the set
// against a map after each step, and that it stays merged.
func TestSpansMatchASet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var s spans
		seen := map[int64]bool{}
		n := 1 + rng.IntN(60)
		for range 3 * n {
			i := int64(rng.IntN(n))
			s = s.add(i)
			seen[i] = true
		}
		for i := int64(-1); i <= int64(n); i++ {
			if s.has(i) != seen[i] {
				t.Fatalf("round %d: has(%d) = %v, want %v (spans %v)", round, i, s.has(i), seen[i], s)
			}
		}
		for k := 1; k < len(s); k++ {
			if s[k-1].To >= s[k].From {
				t.Fatalf("round %d: spans not disjoint and apart: %v", round, s)
			}
		}
		// popFront takes the leading run when it starts at next.
		if seen[0] {
			rest, next := s.popFront(0)
			want := int64(0)
			for seen[want] {
				want++
			}
			if next != want || len(rest) != len(s)-1 {
				t.Fatalf("round %d: popFront(0) = %d, %v; want %d", round, next, rest, want)
			}
		}
	}
}

// TestFeedStateStaysBounded acknowledges a long input out of order, with
// one record of the first unit held back (a paced user), and checks that
// what the feed keeps is bounded by the open-unit limit and the records in
// flight, not by the input's size: reading waits at the limit until the
// held record settles.
func TestFeedStateStaysBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxOpen, perUnit, units = 16, 100, 200
		out := make(chan pipeline.Record, 64)
		f := newFeed(out, Shard{}, nil, maxOpen)
		ctx := context.Background()
		var opened atomic.Int64
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			for seq := range int64(units) {
				u, err := f.Open(ctx, seq, "u"+itoa(seq), 0)
				if err != nil {
					t.Error(err)
					return
				}
				opened.Add(1)
				for i := range int64(perUnit) {
					if err := u.Send(ctx, i, pipeline.Record{Value: []byte("{}")}); err != nil {
						t.Error(err)
						return
					}
				}
				u.Close(perUnit)
			}
		}()
		rng := rand.New(rand.NewPCG(3, 4))
		maxKept, maxSpans := 0, 0
		var batch []pipeline.Record
		settle := func() {
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			for _, r := range batch {
				r.Acker.Ack(nil)
			}
			batch = batch[:0]
			maxKept = max(maxKept, f.openUnits())
			f.mu.Lock()
			for _, u := range f.open {
				maxSpans = max(maxSpans, len(u.done))
			}
			f.mu.Unlock()
		}
		held := (<-out).Acker // unit 0, record 0
		for range maxOpen*perUnit - 1 {
			batch = append(batch, <-out)
			if len(batch) == 50 {
				settle()
			}
		}
		settle()
		synctest.Wait()
		if got := opened.Load(); got != maxOpen {
			t.Fatalf("%d units opened while the first one was held, want the limit %d", got, maxOpen)
		}
		held.Ack(nil)
		for n := maxOpen * perUnit; n < units*perUnit; n++ {
			batch = append(batch, <-out)
			if len(batch) == 50 {
				settle()
			}
		}
		settle()
		<-readDone
		cp := f.snapshot("")
		if !f.settled() || cp.Done != units || cp.Last != "u"+itoa(units-1) {
			t.Fatalf("final checkpoint done %d last %q open %d after %d", cp.Done, cp.Last, len(cp.Open), len(cp.After))
		}
		if maxKept > maxOpen {
			t.Errorf("kept %d units, more than the limit %d", maxKept, maxOpen)
		}
		// Shuffled batches of 50 leave at most 50 gaps in a unit.
		if maxSpans > 50 {
			t.Errorf("a unit kept %d ranges, more than the records in flight", maxSpans)
		}
		t.Logf("kept at most %d units and %d ranges in a unit over %d records", maxKept, maxSpans, units*perUnit)
	})
}

// TestFeedResumesFromCheckpoint checks that a feed built from a
// checkpoint skips finished units and done records, and refuses an input
// whose units changed.
func TestFeedResumesFromCheckpoint(t *testing.T) {
	cp := &Checkpoint{Version: checkpointVersion, Done: 2, Last: "b",
		After: []UnitRef{{Seq: 3, Name: "d"}},
		Open:  []UnitMark{{UnitRef: UnitRef{Seq: 2, Name: "c"}, Next: 3, Done: []Span{{5, 7}}}}}
	out := make(chan pipeline.Record, 20)
	f := newFeed(out, Shard{}, cp, 0)
	ctx := context.Background()
	for seq, name := range []string{"a", "b"} {
		if u, err := f.Open(ctx, int64(seq), name, 0); u != nil || err != nil {
			t.Fatalf("unit %s: %v, %v; want skipped", name, u, err)
		}
	}
	u, err := f.Open(ctx, 2, "c", 0)
	if err != nil || u == nil {
		t.Fatalf("unit c: %v, %v", u, err)
	}
	for i := range int64(9) {
		if err := u.Send(ctx, i, pipeline.Record{Value: []byte(`{}`), Offset: i}); err != nil {
			t.Fatal(err)
		}
	}
	u.Close(9)
	var sent []int64
	for len(out) > 0 {
		r := <-out
		sent = append(sent, r.Offset)
		r.Acker.Ack(nil)
	}
	if want := []int64{3, 4, 7, 8}; !equal(sent, want) {
		t.Errorf("sent records %v of unit c, want %v", sent, want)
	}
	if u, err := f.Open(ctx, 3, "d", 0); u != nil || err != nil {
		t.Fatalf("unit d: %v, %v; want skipped", u, err)
	}
	if got := f.snapshot(""); got.Done != 4 || got.Last != "d" || len(got.Open)+len(got.After) != 0 {
		t.Errorf("checkpoint after unit c finished: %+v", got)
	}
	var ce *ChangedError
	if _, err := newFeed(out, Shard{}, cp, 0).Open(ctx, 1, "B", 0); !asChanged(err, &ce) {
		t.Errorf("a renamed unit before the watermark: %v, want a ChangedError", err)
	}
	if _, err := newFeed(out, Shard{}, cp, 0).Open(ctx, 2, "x", 0); !asChanged(err, &ce) {
		t.Errorf("another unit where one was in progress: %v, want a ChangedError", err)
	}
}

func asChanged(err error, ce **ChangedError) bool {
	e, ok := err.(*ChangedError)
	*ce = e
	return ok
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func itoa(i int64) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

func TestNotDoneBefore(t *testing.T) {
	u := &Unit{resumedDone: spans{{5, 8}, {10, 12}, {20, 30}}}
	for _, c := range []struct {
		from, to int64
		want     []Span
	}{
		{2, 9, []Span{{2, 5}, {8, 9}}},
		{2, 5, []Span{{2, 5}}},
		{6, 11, []Span{{8, 10}}},
		{5, 8, nil},
		{2, 40, []Span{{2, 5}, {8, 10}, {12, 20}, {30, 40}}},
		{31, 35, []Span{{31, 35}}},
	} {
		if got := u.notDoneBefore(c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("notDoneBefore(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}
