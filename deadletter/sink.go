package deadletter

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

// NewSink builds where dead letters go, for run and replay alike: the
// Kafka topic when topic is set (the dead-letter topic setting), else the
// log (logger). Close the returned Closer when done with the sink. It does
// not connect: a start-up check that the topic exists is the caller's (see
// Kafka.Check, or kafkaio.CheckTopics for every topic at once).
func NewSink(cluster kafkaio.Cluster, topic string, logger *zap.Logger, reg prometheus.Registerer) (Sink, io.Closer, error) {
	if topic == "" {
		if logger == nil {
			logger = zap.NewNop()
		}
		return NewLog(logger), nopCloser{}, nil
	}
	k, err := NewKafka(cluster, topic, reg)
	if err != nil {
		return nil, nil, err
	}
	return k, k, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
