package consumer

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// quiet fails if r hands out a record within d. It is a bounded observation
// window for a negative assertion (several fetch cycles), not a wait.
func quiet(t *testing.T, r *running, d time.Duration, why string) {
	t.Helper()
	select {
	case rec := <-r.out:
		t.Fatalf("record %s handed out %s", recKey(rec), why)
	case <-time.After(d):
	}
}

func TestMaxInFlightPerPartition(t *testing.T) {
	t.Parallel()
	const maxInFlight, n = 2, 60
	const maxSpan = SpanPerInFlight * maxInFlight
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, n)
	cfg := testConfig(kc, "in", "g")
	cfg.MaxInFlight = maxInFlight
	r := start(t, cfg, 0)

	// Each partition hands out MaxInFlight records, then stops.
	first := r.receive(t, 2*maxInFlight, 20*time.Second)
	byPart := map[int][]*Record{}
	for _, rec := range first {
		byPart[rec.Partition] = append(byPart[rec.Partition], rec)
	}
	for p := range 2 {
		if len(byPart[p]) != maxInFlight {
			t.Fatalf("partition %d handed out %d records, want %d", p, len(byPart[p]), maxInFlight)
		}
	}
	quiet(t, r, 500*time.Millisecond, "past MaxInFlight un-acked records")

	// Acks past the oldest outstanding record make room too: the bound is
	// on what is un-acked (what holds memory), not on what the commit
	// waits for.
	for _, rec := range byPart[0][1:] {
		rec.Ack(nil)
	}
	more := r.receive(t, maxInFlight-1, 20*time.Second)
	for i, rec := range more {
		if rec.Partition != 0 || rec.Offset != int64(maxInFlight+i) {
			t.Fatalf("after the acks past the oldest on partition 0, record %d is %s, want 0@%d", i, recKey(rec), maxInFlight+i)
		}
	}
	quiet(t, r, 300*time.Millisecond, "with both partitions at MaxInFlight again")
	more = append([]*Record{byPart[0][0]}, more...)

	// Now random acks, checking on every record handed out that its
	// partition stays within the bound.
	type part struct {
		out      map[int64]*Record // handed out, not acked
		next     int64             // next offset expected
		received int
	}
	ps := map[int]*part{0: {out: map[int64]*Record{}}, 1: {out: map[int64]*Record{}}}
	for _, rec := range append(byPart[1], more...) {
		ps[rec.Partition].out[rec.Offset] = rec
	}
	ps[0].next, ps[0].received = 2*maxInFlight-1, 2*maxInFlight-1
	ps[1].next, ps[1].received = maxInFlight, maxInFlight
	watermark := func(p *part) int64 {
		wm := p.next
		for o := range p.out {
			wm = min(wm, o)
		}
		return wm
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for ps[0].received+ps[1].received < 2*n || len(ps[0].out)+len(ps[1].out) > 0 {
		canFetch := false
		for _, p := range ps {
			if p.received < n && len(p.out) < maxInFlight && p.next-watermark(p) < maxSpan {
				canFetch = true
			}
		}
		if canFetch && (rng.IntN(2) == 0 || len(ps[0].out)+len(ps[1].out) == 0) {
			rec := r.receive(t, 1, 20*time.Second)[0]
			p := ps[rec.Partition]
			if rec.Offset != p.next {
				t.Fatalf("got %s, want offset %d", recKey(rec), p.next)
			}
			p.out[rec.Offset] = rec
			p.next++
			p.received++
			if len(p.out) > maxInFlight || p.next-watermark(p) > maxSpan {
				t.Fatalf("partition %d: %d records un-acked (MaxInFlight %d), %d past the watermark %d (span %d)",
					rec.Partition, len(p.out), maxInFlight, p.next-watermark(p), watermark(p), maxSpan)
			}
			continue
		}
		// Ack a random outstanding record.
		var outstanding []*Record
		for _, p := range ps {
			for _, rec := range p.out {
				outstanding = append(outstanding, rec)
			}
		}
		rec := outstanding[rng.IntN(len(outstanding))]
		delete(ps[rec.Partition].out, rec.Offset)
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n, 1: n})
}
