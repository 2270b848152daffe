package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
)

// Dead-letter header names. Values are strings.
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
// topic configured for it, a DLQ topic with Kafka's default 1 MiB limit);
// such a letter keeps its first MaxLetterValueBytes bytes and says how long
// the original was, rather than failing forever and stalling its partition.
// The original stays in the source topic until retention removes it.
const MaxLetterValueBytes = 900 << 10

// maxLetterKeyBytes bounds the key of a dead letter for the same reason.
const maxLetterKeyBytes = 16 << 10

// Header value bounds, in bytes: a dead letter explains itself, it does not
// carry a dump.
const (
	maxErrorHeader = 1024
	maxShortHeader = 256
)

// DLQConfig configures a DeadLetterWriter.
type DLQConfig struct {
	Brokers  []string
	Topic    string
	TLS      *tls.Config    // nil = plaintext
	SASL     sasl.Mechanism // nil = none
	ClientID string         // default "castle-destination"
	// Registerer, if not nil, gets the writer's metrics (letters written,
	// write errors).
	Registerer prometheus.Registerer
}

// Validate reports the first bad setting, naming the field.
func (c DLQConfig) Validate() error {
	if err := validateBrokers(c.Brokers); err != nil {
		return fmt.Errorf("dead-letter %w", err)
	}
	if strings.TrimSpace(c.Topic) == "" {
		return errors.New("dead-letter config: Topic is required")
	}
	return nil
}

// Cluster returns the connection settings of c.
func (c DLQConfig) Cluster() Cluster {
	id := c.ClientID
	if id == "" {
		id = DefaultClientID
	}
	return Cluster{Brokers: c.Brokers, TLS: c.TLS, SASL: c.SASL, ClientID: id}
}

// DeadLetterWriter writes dead letters to a Kafka topic: the original value
// and key, with castle-destination-* headers saying why and where from. It
// implements deadletter.Sink.
type DeadLetterWriter struct {
	topic     string
	w         *kafka.Writer
	transport *kafka.Transport
	client    *kafka.Client
	log       *zap.Logger
	written   prometheus.Counter
	writeErrs prometheus.Counter
}

var _ deadletter.Sink = (*DeadLetterWriter)(nil)

// NewDeadLetterWriter validates cfg and builds the writer; it registers its
// metrics on cfg.Registerer (nil: not registered). It does not connect: see
// Check.
func NewDeadLetterWriter(cfg DLQConfig, logger *zap.Logger) (*DeadLetterWriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	tr := cfg.Cluster().Transport()
	dw := &DeadLetterWriter{
		topic: cfg.Topic,
		w: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Topic:        cfg.Topic,
			Balancer:     &kafka.Hash{}, // by original key; round robin without one
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 5 * time.Millisecond, // Write is synchronous: do not linger
			BatchSize:    1000,
			Transport:    tr,
		},
		transport: tr,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: tr},
		log:       logger.With(zap.String("dlq_topic", cfg.Topic)),
		written: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "dlq", Name: "letters_written_total",
			Help: "Dead letters written to the dead-letter topic and acknowledged by the brokers."}),
		writeErrs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "dlq", Name: "write_errors_total",
			Help: "Failed writes to the dead-letter topic (each failed Write counts once)."}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{dw.written, dw.writeErrs} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register dead-letter metrics: %w", err)
			}
		}
	}
	return dw, nil
}

// Check verifies that the brokers are reachable with these settings and that
// the dead-letter topic exists. Call it at start so a misconfigured DLQ fails
// loudly instead of on the first dead letter.
func (w *DeadLetterWriter) Check(ctx context.Context) error {
	resp, err := w.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{w.topic}})
	if err != nil {
		return fmt.Errorf("dead-letter topic %q: %w", w.topic, err)
	}
	for _, t := range resp.Topics {
		if t.Name == w.topic {
			if t.Error != nil {
				return fmt.Errorf("dead-letter topic %q: %w", w.topic, t.Error)
			}
			return nil
		}
	}
	return fmt.Errorf("dead-letter topic %q: %w", w.topic, kafka.UnknownTopicOrPartition)
}

// Write writes the letters and returns once every replica in sync acked them
// (RequireAll), or the error. It is safe for concurrent use.
func (w *DeadLetterWriter) Write(ctx context.Context, letters ...deadletter.Letter) error {
	if len(letters) == 0 {
		return nil
	}
	now := time.Now()
	msgs := make([]kafka.Message, len(letters))
	for i, l := range letters {
		msgs[i] = letterMessage(l, now)
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		w.writeErrs.Inc()
		return fmt.Errorf("write %d dead letters to %q: %w", len(letters), w.topic, err)
	}
	w.written.Add(float64(len(letters)))
	return nil
}

// Close flushes and closes the writer.
func (w *DeadLetterWriter) Close() error {
	err := w.w.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close dead-letter writer: %w", err)
	}
	return nil
}

// letterMessage turns a letter into the Kafka message written to the DLQ.
// now stands in for a zero Letter.Time.
func letterMessage(l deadletter.Letter, now time.Time) kafka.Message {
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
