package consumer

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

func TestRestartRedeliversUnacked(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, 20)
	cfg := testConfig(kc, "in", "g")
	cfg.DrainTimeout = 300 * time.Millisecond

	// First run: ack 0..9 of partition 0, 0..14 of partition 1, and a few
	// records past the gap (which must come back: the commit stops at the
	// gap).
	r1 := start(t, cfg, 0)
	recs := r1.receive(t, 40, 20*time.Second)
	ackedPastGap := map[string]bool{}
	for _, rec := range recs {
		switch {
		case rec.Partition == 0 && rec.Offset < 10, rec.Partition == 1 && rec.Offset < 15:
			rec.Ack(nil)
		case rec.Offset == 12 || rec.Offset == 18:
			rec.Ack(nil)
			ackedPastGap[recKey(rec)] = true
		}
	}
	want := map[int]int64{0: 10, 1: 15}
	waitCommitted(t, kc, "g", "in", want)
	if err := r1.stop(t, func(rec *Record) { t.Errorf("record %s after the first run's 40", recKey(rec)) }); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if got := value(t, r1.c.metrics.abandoned); got != 40-25-3 {
		t.Errorf("abandoned records = %v, want %d", got, 40-25-3)
	}
	if got := committed(t, kc, "g", "in"); got[0] != 10 || got[1] != 15 {
		t.Fatalf("committed %v after the first run, want %v", got, want)
	}

	// Second run in the same group: exactly the records from the committed
	// offsets on, acked-past-the-gap ones included, each once, in order.
	r2 := start(t, cfg, 0)
	again := r2.receive(t, 10+5, 20*time.Second)
	var got []string
	for _, rec := range again {
		got = append(got, recKey(rec))
		if wantVal := fmt.Sprintf("p%d-%d", rec.Partition, rec.Offset); string(rec.Value) != wantVal {
			t.Errorf("record %s has value %q, want %q", recKey(rec), rec.Value, wantVal)
		}
	}
	var wantKeys []string
	for o := 10; o < 20; o++ {
		wantKeys = append(wantKeys, fmt.Sprintf("0@%d", o))
	}
	for o := 15; o < 20; o++ {
		wantKeys = append(wantKeys, fmt.Sprintf("1@%d", o))
	}
	slices.Sort(got)
	slices.Sort(wantKeys)
	if !slices.Equal(got, wantKeys) {
		t.Fatalf("second run received %v, want %v", got, wantKeys)
	}
	for k := range ackedPastGap {
		if !slices.Contains(got, k) {
			t.Errorf("record %s, acked past the gap, was not re-read", k)
		}
	}
	for _, rec := range again {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "g", "in", map[int]int64{0: 20, 1: 20})
	// Nothing else is handed out: stop fails on any further record.
	if err := r2.stop(t, func(rec *Record) { t.Errorf("unexpected record %s in the second run", recKey(rec)) }); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if got := value(t, r2.c.metrics.abandoned); got != 0 {
		t.Errorf("second run abandoned %v records, want 0", got)
	}
}
