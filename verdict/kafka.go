package verdict

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

// SinkName is the sink label of the verdict topic's writer metrics
// (castle_destination_kafka_records_written_total{sink="verdict"}).
const SinkName = "verdict"

// Kafka writes verdict records to a topic: the key is the user id, else
// the anonymous id; the value is the record's JSON. Write returns once the
// brokers acknowledged every record.
type Kafka struct{ w *kafkaio.Writer }

// NewKafka builds the writer of topic; it does not connect.
func NewKafka(cluster kafkaio.Cluster, topic string, reg prometheus.Registerer) (*Kafka, error) {
	w, err := kafkaio.NewWriter(kafkaio.WriterConfig{Cluster: cluster, Topic: topic, Sink: SinkName}, reg)
	if err != nil {
		return nil, fmt.Errorf("verdict writer: %w", err)
	}
	return &Kafka{w: w}, nil
}

// Write writes the verdicts.
func (k *Kafka) Write(ctx context.Context, vs ...*Verdict) error {
	msgs := make([]kafka.Message, len(vs))
	for i, v := range vs {
		msgs[i] = kafka.Message{Key: v.Key(), Value: v.AppendJSON(nil), Time: v.ScoredAt}
	}
	return k.w.Write(ctx, msgs...)
}

// Close flushes and closes the writer.
func (k *Kafka) Close() error { return k.w.Close() }
