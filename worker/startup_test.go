package worker_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/worker"
)

// RegisterMetrics registers what a running worker exports, the build
// information and the Kafka writers' metrics among them.
func TestRegisterMetricsIncludesBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := worker.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
	}
	for _, n := range []string{"castle_destination_build_info", "castle_destination_kafka_write_errors_total",
		"castle_destination_dlq_letters_written_total", "castle_destination_dlq_write_errors_total"} {
		if !found[n] {
			t.Errorf("RegisterMetrics does not register %s", n)
		}
	}
}

// The run settings' defaults make a consumer configuration the consumer
// accepts, with the values config documents.
func TestConsumerConfigFromDefaults(t *testing.T) {
	cfg, err := harness.ParseConfig(func(k string) string {
		return map[string]string{"KAFKA_BROKERS": "k:9092", "KAFKA_TOPIC": "t", "CASTLE_API_SECRET": "s"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := worker.ConsumerConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Validate(); err != nil {
		t.Fatalf("the consumer refuses the default settings: %v", err)
	}
	if cc.DrainTimeout != consumer.DefaultDrainTimeout || cc.MaxBytes != consumer.DefaultMaxBytes ||
		cc.MaxWait != consumer.DefaultMaxWait || cc.JoinTimeout != consumer.DefaultJoinTimeout || cc.ClientID != consumer.DefaultClientID {
		t.Errorf("consumer config %+v does not carry the consumer's defaults", cc)
	}
}

// A METRICS_ADDR whose port is taken fails the start as a bad setting
// (exit 2), naming it.
func TestMetricsAddrInUseIsASettingError(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg, err := env.Config(map[string]string{"METRICS_ADDR": l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = worker.Run(ctx, cfg, worker.Options{Registry: worker.NewRegistry()})
	var se *config.SettingError
	if !errors.As(err, &se) || se.Env != "METRICS_ADDR" {
		t.Fatalf("Run = %v, want a METRICS_ADDR SettingError", err)
	}
}
