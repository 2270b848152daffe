package consumer

import (
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

func TestConsumeAckCommit(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 3)
	produceN(t, kc, "in", []int{0, 1, 2}, 0, 20)
	r := start(t, testConfig(kc, "in", "g"), 0)
	recs := r.receive(t, 60, 20*time.Second)
	if err := r.c.Ready(); err != nil {
		t.Fatalf("Ready after receiving records: %v", err)
	}
	for _, rec := range recs {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 20, 1: 20, 2: 20})
	if err := r.stop(t, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.c.Ready() == nil {
		t.Fatal("Ready is nil after Run returned")
	}
}
