package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// A topic written by a transactional producer (Kafka Connect, Flink or
// Streams with exactly-once) has a commit marker after every transaction.
// kafka-go hands the markers out as messages; the consumer skips them, so
// they never reach the pipeline (which would dead-letter each as
// malformed), and commits past them.
func TestTransactionMarkersAreSkipped(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "txn", 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs()...), kgo.TransactionalID("castle-destination-test"), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for txn := range 2 {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, `{"n":%d}`, txn*5+i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	r := start(t, testConfig(kc, "txn", "g"), 0)
	recs := r.receive(t, 10, 20*time.Second)
	for i, rec := range recs {
		var v struct{ N int }
		if err := json.Unmarshal(rec.Value, &v); err != nil || v.N != i {
			t.Errorf("record %d (offset %d) is %q, want {\"n\":%d}", i, rec.Offset, rec.Value, i)
		}
		rec.Ack(nil)
	}
	// Ten records and two markers: the commit goes past both.
	waitCommitted(t, kc, "g", "txn", map[int]int64{0: 12})
	if err := r.stop(t, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
