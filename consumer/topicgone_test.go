package consumer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// The topic is deleted under a running consumer: it reports not ready
// naming KAFKA_TOPIC, logs one ERROR line, does not spin through group
// generations, and consumes again once the topic is back.
func TestSourceTopicDeletedWaitsForIt(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	cfg := testConfig(kc, "in", "g")
	core, logs := observer.New(zapcore.InfoLevel)
	r := startLogged(t, cfg, 0, nil, zap.New(core))
	waitReady(t, r)
	col := collect(r)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := kc.Client().DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{"in"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Errors["in"]; err != nil {
		t.Fatal(err)
	}
	// kafka-go's partition watcher notices within its 5 s.
	eventually(t, 20*time.Second, func() string {
		if err := r.c.Ready(); err == nil || !strings.Contains(err.Error(), "KAFKA_TOPIC") {
			return fmt.Sprintf("Ready() = %v, want an error naming KAFKA_TOPIC", err)
		}
		return ""
	})
	// A window in which a spinning consumer runs through hundreds of
	// generations; a waiting one, none.
	gens := value(t, r.c.metrics.generations)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := r.c.Ready(); err == nil || !strings.Contains(err.Error(), "KAFKA_TOPIC") {
			t.Fatalf("Ready() = %v while the topic is gone, want an error naming KAFKA_TOPIC", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if n := value(t, r.c.metrics.generations) - gens; n > 2 {
		t.Errorf("%v group generations in 3 s without the topic, want at most 2", n)
	}
	var errorLines []string
	for _, e := range logs.All() {
		if e.Level >= zapcore.ErrorLevel {
			errorLines = append(errorLines, fmt.Sprintf("%s %v", e.Message, e.ContextMap()["error"]))
		}
	}
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "KAFKA_TOPIC") {
		t.Errorf("ERROR lines %q, want one naming KAFKA_TOPIC", errorLines)
	}

	if err := kc.CreateTopic(ctx, "in", 2); err != nil {
		t.Fatal(err)
	}
	produceDirect(t, kc, "in", 0, 0, 3)
	produceDirect(t, kc, "in", 1, 0, 3)
	eventually(t, 30*time.Second, func() string {
		got := map[string]bool{}
		for _, rec := range col.snapshot() {
			got[recKey(rec)] = true
		}
		for _, k := range rangeKeys([]int{0, 1}, 0, 3) {
			if !got[k] {
				return fmt.Sprintf("record %s of the recreated topic not received (have %v)", k, got)
			}
		}
		if err := r.c.Ready(); err != nil {
			return err.Error()
		}
		return ""
	})
}

// waitReady waits until every consumer of rs reports ready.
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
