package consumer

import (
	"fmt"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// waitInFlight waits until the partition's in-flight gauge, which the
// committer sets on every commit tick from the same tracker state it decides
// the commit on, reads want: the commit decision after the change was made.
func waitInFlight(t *testing.T, r *running, partition int, want float64) {
	t.Helper()
	g := r.c.metrics.inFlight.WithLabelValues(partitionLabel(partition))
	eventually(t, 20*time.Second, func() string {
		if got := value(t, g); got != want {
			return fmt.Sprintf("in_flight{partition=%d} = %v, want %v", partition, got, want)
		}
		return ""
	})
}

func TestOutOfOrderAcksCommitContiguousWatermark(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, 10)
	r := start(t, testConfig(kc, "in", "g"), 0)
	recs := r.receive(t, 20, 20*time.Second)
	byPart := map[int][]*Record{}
	for _, rec := range recs {
		byPart[rec.Partition] = append(byPart[rec.Partition], rec)
	}
	for p, rs := range byPart {
		for i, rec := range rs {
			if rec.Offset != int64(i) {
				t.Fatalf("partition %d record %d has offset %d", p, i, rec.Offset)
			}
		}
	}
	p0 := byPart[0]

	// Partition 0: 5..9 first. Nothing is committable.
	for _, rec := range p0[5:] {
		rec.Ack(nil)
	}
	waitInFlight(t, r, 0, 5)
	// The group's start offsets (0) are committed on joining; nothing more.
	if got := committed(t, kc, "g", "in"); got[0] != 0 || got[1] != 0 {
		t.Fatalf("committed %v after acking offsets 5..9 of partition 0 only, want 0 on both", got)
	}
	// 1..3 still leave offset 0 outstanding.
	for _, rec := range p0[1:4] {
		rec.Ack(nil)
	}
	waitInFlight(t, r, 0, 2)
	if got := committed(t, kc, "g", "in"); got[0] != 0 {
		t.Fatalf("committed %v with offsets 0 and 4 of partition 0 un-acked, want 0", got)
	}
	// 0 makes 0..3 contiguous: the watermark is 4, not 10.
	p0[0].Ack(nil)
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 4})
	waitInFlight(t, r, 0, 1)
	if got := committed(t, kc, "g", "in"); got[0] != 4 || got[1] != 0 {
		t.Fatalf("committed %v, want partition 0 at 4 and partition 1 at 0", got)
	}
	// 4 fills the gap: straight to 10.
	p0[4].Ack(nil)
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 10})

	// Partition 1 in reverse order: nothing until the very last ack.
	p1 := byPart[1]
	for i := len(p1) - 1; i >= 1; i-- {
		p1[i].Ack(nil)
	}
	waitInFlight(t, r, 1, 1)
	if got := committed(t, kc, "g", "in"); got[1] != 0 {
		t.Fatalf("committed %v with offset 0 of partition 1 un-acked, want 0", got)
	}
	p1[0].Ack(nil)
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 10, 1: 10})
	if err := r.stop(t, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := committed(t, kc, "g", "in"); got[0] != 10 || got[1] != 10 {
		t.Fatalf("committed %v after stop, want 10 on both partitions", got)
	}
}

func TestConcurrentAcks(t *testing.T) {
	t.Parallel()
	const parts, n = 3, 200
	kc := kafkatest.New(t, "in", parts)
	produceN(t, kc, "in", []int{0, 1, 2}, 0, n)
	r := start(t, testConfig(kc, "in", "g"), 0)
	recs := r.receive(t, parts*n, 30*time.Second)
	// 8 goroutines ack interleaved slices, each record twice.
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := len(recs) - 1 - w; i >= 0; i -= 4 {
				recs[i].Ack(nil)
			}
		}()
	}
	for range 8 {
		<-done
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: n, 1: n, 2: n})
	if got := value(t, r.c.metrics.acks); got != parts*n {
		t.Errorf("acks = %v, want %d (each record counted once)", got, parts*n)
	}
	if got := value(t, r.c.metrics.lateAcks); got != 0 {
		t.Errorf("late acks = %v, want 0", got)
	}
	if err := r.stop(t, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
