package consumer

import (
	"crypto/tls"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go/sasl"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

// The dead-letter writer moved to package deadletter. These forwarders keep
// its callers (replay's command, the worker tests) building until they
// switch to package deadletter; then this file goes. They add nothing.

// Dead-letter header names and the value bound: the deadletter constants of
// the same names.
const (
	HeaderReason        = deadletter.HeaderReason
	HeaderValueBytes    = deadletter.HeaderValueBytes
	MaxLetterValueBytes = deadletter.MaxLetterValueBytes
)

// DLQConfig configures NewDeadLetterWriter. New code calls
// deadletter.NewSink.
type DLQConfig struct {
	Brokers    []string
	Topic      string
	TLS        *tls.Config
	SASL       sasl.Mechanism
	ClientID   string
	Registerer prometheus.Registerer
}

// NewDeadLetterWriter returns deadletter.NewKafka's writer. New code calls
// deadletter.NewSink.
func NewDeadLetterWriter(cfg DLQConfig, _ *zap.Logger) (*deadletter.Kafka, error) {
	return deadletter.NewKafka(kafkaio.Cluster{Brokers: cfg.Brokers, TLS: cfg.TLS, SASL: cfg.SASL, ClientID: cfg.ClientID},
		cfg.Topic, cfg.Registerer)
}
