package consumer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// addPartitions grows topic to count partitions.
func addPartitions(t *testing.T, kc *kafkatest.Cluster, topic string, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := kc.Client().CreatePartitions(ctx, &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: int32(count)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range resp.Errors {
		if err != nil {
			t.Fatalf("create partitions of %q: %v", name, err)
		}
	}
}

// produceDirect writes n messages to partition of topic through its leader,
// values "p<partition>-<i>": unlike produceN it needs no metadata cache
// that knows the partition, so it works at once on a partition just added.
func produceDirect(t *testing.T, kc *kafkatest.Cluster, topic string, partition, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", kc.Addrs()[0], topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", from+i), Value: fmt.Appendf(nil, "p%d-%d", partition, from+i)}
	}
	if _, err := conn.WriteMessages(msgs...); err != nil {
		t.Fatal(err)
	}
}

func waitReady(t *testing.T, rs ...*running) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		for _, r := range rs {
			if err := r.c.Ready(); err != nil {
				return err.Error()
			}
		}
		return ""
	})
}

// With StartOffset LastOffset, partitions the topic gains while the group
// consumes it start at their earliest offset: what was written to them
// before the members noticed them is not skipped. Here the member that
// gets the new partitions owns none of the old ones.
func TestStartOffsetLatestNewPartitionsStartAtEarliest(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, 10) // before the group: skipped
	cfg := testConfig(kc, "in", "grow")
	cfg.StartOffset = kafka.LastOffset
	r1 := start(t, cfg, 0)
	waitReady(t, r1)
	r2 := start(t, cfg, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := kc.WaitStable(ctx, "grow", 2); err != nil {
		t.Fatal(err)
	}
	waitReady(t, r1, r2)
	waitCommitted(t, kc, "grow", "in", map[int]int64{0: 10, 1: 10})
	col1, col2 := collect(r1), collect(r2)

	addPartitions(t, kc, "in", 4)
	produceDirect(t, kc, "in", 2, 0, 5)
	produceDirect(t, kc, "in", 3, 0, 5)
	produceN(t, kc, "in", []int{0, 1}, 10, 2)

	want := append(rangeKeys([]int{2, 3}, 0, 5), rangeKeys([]int{0, 1}, 10, 12)...)
	slices.Sort(want)
	var got []string
	eventually(t, 30*time.Second, func() string {
		// Records handed out before the rebalance and not acked come
		// again after it: count each once.
		got = slices.Compact(keysOf(append(col1.snapshot(), col2.snapshot()...)))
		if !slices.Equal(got, want) {
			return fmt.Sprintf("received %v, want %v", got, want)
		}
		return ""
	})
}

// The same when the partitions are added while no member runs: the group's
// committed offsets on the old partitions say the new ones are new.
func TestStartOffsetLatestPartitionsAddedWhileStopped(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	produceN(t, kc, "in", []int{0}, 0, 10)
	cfg := testConfig(kc, "in", "grow")
	cfg.StartOffset = kafka.LastOffset
	r1 := start(t, cfg, 0)
	waitReady(t, r1)
	waitCommitted(t, kc, "grow", "in", map[int]int64{0: 10})
	if err := r1.stop(t, func(rec *Record) { t.Errorf("unexpected record %s", recKey(rec)) }); err != nil {
		t.Fatalf("Run: %v", err)
	}

	addPartitions(t, kc, "in", 2)
	produceDirect(t, kc, "in", 1, 0, 5)
	r2 := start(t, cfg, 0)
	recs := r2.receive(t, 5, 20*time.Second)
	if got, want := keysOf(recs), rangeKeys([]int{1}, 0, 5); !slices.Equal(got, want) {
		t.Fatalf("after a restart received %v, want the new partition's records %v", got, want)
	}
}
