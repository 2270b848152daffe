package consumer

import (
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

func TestShutdownDrainCommitsAckedAbandonsRest(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	produceN(t, kc, "in", []int{0}, 0, 10)
	cfg := testConfig(kc, "in", "g")
	cfg.DrainTimeout = time.Second
	r := start(t, cfg, 0)
	recs := r.receive(t, 10, 20*time.Second)
	for _, rec := range recs[:4] {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 4})

	// Shut down with 6 records out; ack 4..6 during the drain.
	began := time.Now()
	r.cancel()
	for _, rec := range recs[4:7] {
		rec.Ack(nil)
	}
	if err := r.waitDone(t, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(began); took < cfg.DrainTimeout {
		t.Errorf("Run returned %s after cancel with records un-acked, before DrainTimeout %s", took, cfg.DrainTimeout)
	}
	if got := committed(t, kc, "g", "in"); got[0] != 7 {
		t.Fatalf("committed %v after the drain, want 7 (acked during the drain, not 7..9)", got)
	}
	if got := value(t, r.c.metrics.abandoned); got != 3 {
		t.Errorf("abandoned = %v, want 3", got)
	}
	if got := value(t, r.c.metrics.acks); got != 7 {
		t.Errorf("acks = %v, want 7", got)
	}
	// After Run returned, acks are late and commit nothing.
	for _, rec := range recs[7:] {
		rec.Ack(nil)
	}
	if got := value(t, r.c.metrics.lateAcks); got != 3 {
		t.Errorf("late acks = %v, want 3", got)
	}
	if got := committed(t, kc, "g", "in"); got[0] != 7 {
		t.Fatalf("committed %v after late acks, want 7", got)
	}
	// The group was left: a new member sees exactly 7..9 again.
	r2 := start(t, cfg, 0)
	again := r2.receive(t, 3, 20*time.Second)
	for i, rec := range again {
		if rec.Offset != int64(7+i) {
			t.Fatalf("restart record %d has offset %d, want %d", i, rec.Offset, 7+i)
		}
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 10})
}

func TestShutdownDrainEndsWhenIdle(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, 10)
	cfg := testConfig(kc, "in", "g")
	cfg.DrainTimeout = 20 * time.Second
	// Records buffered in out when the context ends count as handed out: the
	// drain waits for them too.
	r := start(t, cfg, 20)
	eventually(t, 20*time.Second, func() string {
		if len(r.out) < 20 {
			return "waiting for all records to be buffered in out"
		}
		return ""
	})
	first := r.receive(t, 5, time.Second)
	began := time.Now()
	r.cancel()
	for _, rec := range first {
		rec.Ack(nil)
	}
	n := len(first)
	if err := r.stop(t, func(rec *Record) { rec.Ack(nil); n++ }); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n != 20 {
		t.Fatalf("received %d records, want 20", n)
	}
	if took := time.Since(began); took > cfg.DrainTimeout/2 {
		t.Errorf("Run took %s to return after everything was acked; the drain should end when idle", took)
	}
	if got := committed(t, kc, "g", "in"); got[0] != 10 || got[1] != 10 {
		t.Fatalf("committed %v, want 10 on both partitions", got)
	}
	if got := value(t, r.c.metrics.abandoned); got != 0 {
		t.Errorf("abandoned = %v, want 0", got)
	}
}

// CutDrain ends a shutdown drain at once, however long its timeout: what
// was acked is committed, the rest is read again by the next member.
func TestCutDrainEndsTheShutdownDrain(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	produceN(t, kc, "in", []int{0}, 0, 10)
	cfg := testConfig(kc, "in", "g")
	cfg.DrainTimeout = 10 * time.Minute
	r := start(t, cfg, 0)
	recs := r.receive(t, 10, 20*time.Second)
	for _, rec := range recs[:4] {
		rec.Ack(nil)
	}
	r.cancel()
	r.c.CutDrain()
	// waitDone fails the test if Run takes more than 30 s: the drain's own
	// timeout is ten minutes.
	if err := r.waitDone(t, 30*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := committed(t, kc, "g", "in"); got[0] != 4 {
		t.Fatalf("committed %v, want 4 (the acked records, not 4..9)", got)
	}
	if got := value(t, r.c.metrics.abandoned); got != 6 {
		t.Errorf("abandoned = %v, want 6", got)
	}
	r2 := start(t, cfg, 0)
	again := r2.receive(t, 6, 20*time.Second)
	for _, rec := range again {
		rec.Ack(nil)
	}
	if again[0].Offset != 4 {
		t.Fatalf("the next member starts at %d, want 4", again[0].Offset)
	}
}
