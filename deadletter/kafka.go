package deadletter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

// Header names of a dead letter on the dead-letter topic. Values are
// strings.
const (
	HeaderReason          = "castle-destination-reason"
	HeaderError           = "castle-destination-error"
	HeaderSourceTopic     = "castle-destination-source-topic"
	HeaderSourcePartition = "castle-destination-source-partition"
	HeaderSourceOffset    = "castle-destination-source-offset"
	HeaderMessageID       = "castle-destination-message-id"
	HeaderAttempts        = "castle-destination-attempts"
	HeaderTime            = "castle-destination-time"
	// HeaderValueBytes carries the original value's length, only on a
	// letter whose value was cut to MaxLetterValueBytes.
	HeaderValueBytes = "castle-destination-value-bytes"
)

// MaxLetterValueBytes bounds the value of a dead letter. A message can be
// larger than the dead-letter topic accepts (a 10 MB message on a source
// topic configured for it, a dead-letter topic with Kafka's default 1 MiB
// limit); such a letter keeps its first MaxLetterValueBytes bytes and says
// how long the original was, rather than failing forever and stalling its
// partition. The original stays in the source topic until retention
// removes it.
const MaxLetterValueBytes = 900 << 10

// maxLetterKeyBytes bounds the key of a dead letter for the same reason.
const maxLetterKeyBytes = 16 << 10

// Header value bounds, in bytes: a dead letter explains itself, it does not
// carry a dump.
const (
	maxErrorHeader = 1024
	maxShortHeader = 256
)

// SinkName is the sink label of the dead-letter topic's writer metrics.
const SinkName = "dlq"

// Kafka is a Sink that writes dead letters to a Kafka topic: the original
// value and key, with castle-destination-* headers saying why and where
// from. Write returns once every in-sync replica has the letters; its
// errors are *kafkaio.WriteError, classified (a missing topic, an ACL,
// unreachable brokers), so a caller can tell a dead-letter topic that
// cannot be written from a passing fault.
type Kafka struct {
	w         *kafkaio.Writer
	written   prometheus.Counter
	writeErrs prometheus.Counter
}

var _ Sink = (*Kafka)(nil)

// NewKafka builds the dead-letter topic's writer and registers its metrics
// on reg (nil: not registered). It does not connect: see Check.
func NewKafka(cluster kafkaio.Cluster, topic string, reg prometheus.Registerer) (*Kafka, error) {
	w, err := kafkaio.NewWriter(kafkaio.WriterConfig{Cluster: cluster, Topic: topic, Sink: SinkName}, reg)
	if err != nil {
		return nil, fmt.Errorf("dead-letter writer: %w", err)
	}
	k := &Kafka{
		w: w,
		written: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "castle_destination", Subsystem: "dlq", Name: "letters_written_total",
			Help: "Dead letters written to the dead-letter topic and acknowledged by the brokers."}),
		writeErrs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "castle_destination", Subsystem: "dlq", Name: "write_errors_total",
			Help: "Failed writes to the dead-letter topic (each failed Write counts once)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{k.written, k.writeErrs} {
			if err := reg.Register(c); err != nil {
				_ = w.Close()
				return nil, fmt.Errorf("register dead-letter metrics: %w", err)
			}
		}
	}
	return k, nil
}

// Check verifies that the brokers answer and that the dead-letter topic
// exists.
func (k *Kafka) Check(ctx context.Context) error {
	if err := k.w.Check(ctx); err != nil {
		return fmt.Errorf("dead-letter topic %q: %w", k.w.Topic(), err)
	}
	return nil
}

// Write writes the letters and returns once every in-sync replica acked
// them, or the error. It is safe for concurrent use.
func (k *Kafka) Write(ctx context.Context, letters ...Letter) error {
	if len(letters) == 0 {
		return nil
	}
	now := time.Now()
	msgs := make([]kafka.Message, len(letters))
	for i, l := range letters {
		msgs[i] = letterMessage(l, now)
	}
	if err := k.w.Write(ctx, msgs...); err != nil {
		k.writeErrs.Inc()
		return fmt.Errorf("dead letters: %w", err)
	}
	k.written.Add(float64(len(letters)))
	return nil
}

// Close flushes and closes the writer.
func (k *Kafka) Close() error {
	if err := k.w.Close(); err != nil {
		return fmt.Errorf("dead-letter writer: %w", err)
	}
	return nil
}

// letterMessage turns a letter into the Kafka message written to the
// dead-letter topic. now stands in for a zero Letter.Time.
func letterMessage(l Letter, now time.Time) kafka.Message {
	t := l.Time
	if t.IsZero() {
		t = now
	}
	key, value := l.Key, l.Value
	if len(key) > maxLetterKeyBytes {
		key = key[:maxLetterKeyBytes]
	}
	if len(value) > MaxLetterValueBytes {
		value = value[:MaxLetterValueBytes]
	}
	m := kafka.Message{
		Key:   key,
		Value: value,
		Time:  t,
		Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(truncate(l.Reason, maxShortHeader))},
			{Key: HeaderError, Value: []byte(truncate(l.Error, maxErrorHeader))},
			{Key: HeaderSourceTopic, Value: []byte(truncate(l.Source, maxShortHeader))},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(l.Partition))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(l.Offset, 10))},
			{Key: HeaderMessageID, Value: []byte(truncate(l.MessageID, maxShortHeader))},
			{Key: HeaderAttempts, Value: []byte(strconv.Itoa(l.Attempts))},
			{Key: HeaderTime, Value: []byte(t.UTC().Format(time.RFC3339Nano))},
		},
	}
	if len(value) < len(l.Value) {
		m.Headers = append(m.Headers, kafka.Header{Key: HeaderValueBytes, Value: []byte(strconv.Itoa(len(l.Value)))})
	}
	return m
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence and
// replaces invalid UTF-8, so header values are always valid text.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
