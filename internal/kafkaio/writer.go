package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	Cluster Cluster
	// Topic is the topic written to. Required. It must exist: the writer
	// never creates it.
	Topic string
	// Sink names what the records are ("dlq", "verdict"): the sink label of
	// the writer's metrics. A fixed name chosen by the caller, lower case
	// letters and underscores, so the label stays bounded.
	Sink string
	// Balancer picks the partition of each record. Default: by key hash,
	// round robin for records without a key.
	Balancer kafka.Balancer
}

var sinkName = regexp.MustCompile(`^[a-z][a-z_]*$`)

// Writer writes records to one Kafka topic and returns only once every
// in-sync replica has them (acks=all), so its callers can commit the
// source offsets a record stands for. It never creates the topic. Its
// errors are *WriteError, classified. It is safe for concurrent use.
type Writer struct {
	topic     string
	w         *kafka.Writer
	transport *kafka.Transport
	client    *kafka.Client
	m         writerMetrics
}

// WriteError is a failed Write: how many records, to which topic, and the
// class of the failure (a missing topic, an ACL, unreachable brokers, a
// record too large, ...).
type WriteError struct {
	Topic   string
	Records int
	Class   Class
	Err     error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("write %d records to topic %q (%s): %v", e.Records, e.Topic, e.Class, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// NewWriter validates cfg and builds the writer; it registers its metrics
// on reg (nil: not registered; writers of different sinks share them). It
// does not connect: see Check.
func NewWriter(cfg WriterConfig, reg prometheus.Registerer) (*Writer, error) {
	if len(cfg.Cluster.Brokers) == 0 {
		return nil, errors.New("kafka writer: no brokers")
	}
	if cfg.Topic == "" {
		return nil, errors.New("kafka writer: no topic")
	}
	if !sinkName.MatchString(cfg.Sink) {
		return nil, fmt.Errorf("kafka writer: sink name %q is not lower case letters and underscores", cfg.Sink)
	}
	m, err := newWriterMetrics(reg, cfg.Sink)
	if err != nil {
		return nil, err
	}
	bal := cfg.Balancer
	if bal == nil {
		bal = &kafka.Hash{}
	}
	tr := cfg.Cluster.Transport(cfg.Topic)
	return &Writer{
		topic: cfg.Topic,
		w: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Cluster.Brokers...),
			Topic:        cfg.Topic,
			Balancer:     bal,
			RequiredAcks: kafka.RequireAll,
			// The worker never creates topics; a missing one is an
			// error the operator must see (the zero value, said aloud).
			AllowAutoTopicCreation: false,
			BatchTimeout:           5 * time.Millisecond, // Write is synchronous: do not linger
			BatchSize:              1000,
			Transport:              tr,
		},
		transport: tr,
		client:    cfg.Cluster.Client(tr, DialTimeout),
		m:         m,
	}, nil
}

// Topic is the topic written to.
func (w *Writer) Topic() string { return w.topic }

// Check verifies that the brokers answer with these settings and that the
// topic exists: nil, or an error Classify maps to a Class.
func (w *Writer) Check(ctx context.Context) error {
	return TopicExists(ctx, w.client, w.topic)
}

// Write writes msgs and returns once every in-sync replica acked them, or a
// *WriteError. A failed Write may have stored some of msgs.
func (w *Writer) Write(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		class := Classify(err)
		w.m.errors.WithLabelValues(string(class)).Inc()
		return &WriteError{Topic: w.topic, Records: len(msgs), Class: class, Err: err}
	}
	w.m.written.Add(float64(len(msgs)))
	return nil
}

// Close flushes and closes the writer and its connections.
func (w *Writer) Close() error {
	err := w.w.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close writer of topic %q: %w", w.topic, err)
	}
	return nil
}

// writerMetrics are one sink's series of the writers' shared metrics.
type writerMetrics struct {
	written prometheus.Counter
	errors  *prometheus.CounterVec // by class
}

func newWriterMetrics(reg prometheus.Registerer, sink string) (writerMetrics, error) {
	written := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "castle_destination", Subsystem: "kafka", Name: "records_written_total",
		Help: "Records written to an output topic and acknowledged by every in-sync replica, by sink (dlq, verdict).",
	}, []string{"sink"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "castle_destination", Subsystem: "kafka", Name: "write_errors_total",
		Help: "Failed writes to an output topic (each failed Write counts once), by sink and class of failure.",
	}, []string{"sink", "class"})
	if reg != nil {
		var err error
		if written, err = registerShared(reg, written); err != nil {
			return writerMetrics{}, err
		}
		if errs, err = registerShared(reg, errs); err != nil {
			return writerMetrics{}, err
		}
	}
	for _, c := range Classes() {
		errs.WithLabelValues(sink, string(c))
	}
	return writerMetrics{written: written.WithLabelValues(sink), errors: errs.MustCurryWith(prometheus.Labels{"sink": sink})}, nil
}

// registerShared registers c, or returns the collector already registered
// under the same description: the writers of several sinks share one
// metric, told apart by their sink label.
func registerShared(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, fmt.Errorf("register Kafka writer metrics: %w", err)
}
