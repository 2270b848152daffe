// Package worker assembles the run subcommand: a Kafka consumer group feeds
// the pipeline, the pipeline delivers to Castle, dead letters go to a topic
// or to the log, and an HTTP server exposes metrics and health. It owns the
// shutdown order: stop fetching, let in-flight work finish within the
// shutdown timeout, commit what is done, leave the group.
package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/verdict"
	"github.com/castle-destination/castle-destination/version"
)

// Options are the parts a caller may supply; zero values get defaults.
type Options struct {
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// Registry receives every metric. Default: a new registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	// HTTPClient talks to Castle. Default: destination's tuned transport.
	HTTPClient *http.Client
	// Now is the clock of the mapping (JWT exp/nbf, request token age).
	Now func() time.Time
	// Listening, if set, is called with the ops server's address once it
	// listens (":0" picks a free port).
	Listening func(addr string)
	// UserRate overrides the per-user pacing of Castle requests (default:
	// Castle's documented limits). The benchmark turns it off to measure
	// the worker rather than Castle's per-user limit.
	UserRate *destination.UserRate
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registry == nil {
		o.Registry = NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewMapper builds the mapping from the settings, with the EVENT_MAP file
// read and parsed.
func NewMapper(cfg config.Config) (*mapping.Mapper, error) { return newMapper(cfg, false) }

// NewReplayMapper is NewMapper for replaying history: a userJwt's exp and
// nbf are checked at the event's time, when the token was used, not now.
// A replay of last month's archive would otherwise dead-letter every
// Secure Mode event whose token has expired since, which is all of them.
func NewReplayMapper(cfg config.Config) (*mapping.Mapper, error) { return newMapper(cfg, true) }

func newMapper(cfg config.Config, atEventTime bool) (*mapping.Mapper, error) {
	pt, err := mapping.ParsePageType(cfg.Mapping.PageType)
	if err != nil {
		return nil, fmt.Errorf("PAGE_TYPE (--page-type): %w", err)
	}
	events, err := cfg.Mapping.LoadEventMap()
	if err != nil {
		return nil, err
	}
	return mapping.New(mapping.Config{
		Secret:         []byte(cfg.Castle.APISecret.Reveal()),
		PageType:       pt,
		AcceptMobile:   cfg.Mapping.AcceptMobile,
		RequireUserJWT: cfg.Mapping.RequireUserJWT,
		Events:         events,
		Version:        version.Get().Version,

		VerifyAtEventTime: atEventTime,
	}), nil
}

// NewCastle builds the Castle API client from the settings; faults (may be
// nil) is told about systemic faults.
func NewCastle(cfg config.Castle, logger *zap.Logger, reg prometheus.Registerer, hc *http.Client, faults destination.Faults) (*destination.Client, error) {
	return newCastle(cfg, logger, reg, hc, nil, faults)
}

func newCastle(cfg config.Castle, logger *zap.Logger, reg prometheus.Registerer, hc *http.Client, rate *destination.UserRate, faults destination.Faults) (*destination.Client, error) {
	retry := destination.DefaultRetryPolicy()
	if cfg.RetryMaxElapsed > 0 {
		retry.MaxElapsed = cfg.RetryMaxElapsed
	}
	return destination.New(destination.Config{
		URL:         cfg.APIURL,
		Secret:      cfg.APISecret.Reveal(),
		Concurrency: cfg.Concurrency,
		Timeout:     cfg.Timeout,
		Retry:       retry,
		UserRate:    deref(rate),
		Faults:      faults,
	}, logger, reg, hc)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// PipelineConfig is the pipeline's share of the settings; faults (may be
// nil) is told when dead letters cannot be written.
func PipelineConfig(cfg config.Config, now func() time.Time, faults pipeline.Faults) pipeline.Config {
	target := "the log (DLQ_TOPIC is not set)"
	if cfg.Kafka.DLQTopic != "" {
		target = fmt.Sprintf("DLQ_TOPIC %q", cfg.Kafka.DLQTopic)
	}
	pc := pipeline.Config{
		Batch:            pipeline.BatchPolicy{Count: cfg.Batch.Size, Bytes: cfg.Batch.Bytes, Linger: cfg.Batch.Linger},
		Now:              now,
		Faults:           faults,
		DeadLetterTarget: target,
		DedupeSize:       cfg.Mapping.DedupeSize,
		UserCacheSize:    cfg.Mapping.UserCacheSize,
		Scoring:          cfg.Scoring.On,
		ScoringMaxAge:    cfg.Scoring.MaxAge,
	}
	if t := cfg.Scoring.VerdictTopic; t != "" {
		pc.VerdictTarget = fmt.Sprintf("VERDICT_TOPIC %q", t)
	}
	return pc
}

// ConsumerConfig is the consumer's share of the settings. Its errors are
// *config.SettingError.
func ConsumerConfig(cfg config.Config) (consumer.Config, error) {
	k := cfg.Kafka
	cluster, err := k.Cluster()
	if err != nil {
		return consumer.Config{}, err
	}
	start := kafka.FirstOffset
	if strings.EqualFold(k.StartOffset, "latest") {
		start = kafka.LastOffset
	}
	return consumer.Config{
		Brokers:          cluster.Brokers,
		Topic:            k.Topic,
		GroupID:          k.GroupID,
		ClientID:         cluster.ClientID,
		TLS:              cluster.TLS,
		SASL:             cluster.SASL,
		StartOffset:      start,
		MinBytes:         k.FetchMinBytes,
		MaxBytes:         k.FetchMaxBytes,
		MaxWait:          k.FetchMaxWait,
		SessionTimeout:   k.SessionTimeout,
		RebalanceTimeout: k.RebalanceTimeout,
		CommitInterval:   k.CommitInterval,
		MaxInFlight:      k.MaxInFlight,
		DrainTimeout:     cfg.Ops.ShutdownTimeout,
		JoinTimeout:      k.JoinTimeout,
	}, nil
}

// Run consumes until ctx ends, then drains: fetching stops at once, work in
// flight gets cfg.Ops.ShutdownTimeout to finish, what is done is committed.
// It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg config.Config, opt Options) (err error) {
	opt = opt.withDefaults()
	log, reg := opt.Logger, opt.Registry

	mapper, err := NewMapper(cfg)
	if err != nil {
		return err
	}
	board, err := hold.New(log.Named("hold"), reg, hold.Options{})
	if err != nil {
		return err
	}
	castle, err := newCastle(cfg.Castle, log.Named("castle"), reg, opt.HTTPClient, opt.UserRate, board)
	if err != nil {
		return err
	}
	defer castle.Close()

	if err := registerBuildInfo(reg); err != nil {
		return err
	}
	ccfg, err := ConsumerConfig(cfg)
	if err != nil {
		return err
	}
	dlq, dlqCloser, err := deadletter.NewSink(ccfg.Cluster(), cfg.Kafka.DLQTopic, log.Named("deadletter"), reg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dlqCloser.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	cons, err := consumer.New(ccfg, log.Named("kafka"), reg)
	if err != nil {
		return err
	}
	pcfg := PipelineConfig(cfg, opt.Now, board)
	if t := cfg.Scoring.VerdictTopic; t != "" {
		vw, err := verdict.NewKafka(ccfg.Cluster(), t, reg)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := vw.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close verdict writer: %w", cerr)
			}
		}()
		pcfg.Verdicts = vw
	}
	pipe, err := pipeline.New(pcfg, mapper, castle, dlq, log.Named("pipeline"), reg)
	if err != nil {
		return err
	}

	srv, err := ops.Listen(cfg.Ops.MetricsAddr, reg,
		ops.Check{Name: "kafka", Check: cons.Ready},
		ops.Check{Name: "castle", Check: castle.Reachable},
		ops.Check{Name: "hold", Check: board.Ready})
	if err != nil {
		// A port in use or an address not on this host: a setting to fix,
		// as a topic that does not exist is (exit 2).
		return &config.SettingError{Env: "METRICS_ADDR", Flag: "metrics-addr", Err: err}
	}
	if opt.Listening != nil {
		opt.Listening(srv.Addr())
	}
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	opsDone := make(chan error, 1)
	go func() { opsDone <- srv.Serve(opsCtx) }()
	defer func() {
		stopOps()
		if serr := <-opsDone; serr != nil && err == nil {
			err = serr
		}
	}()

	if err := CheckTopics(ctx, cfg.Kafka, cfg.Topics(true), log.Named("kafka")); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the brokers
		}
		return err
	}

	// Ask Castle whether it takes the secret and the URL before any event
	// does (once the settings passed): not ready until it answers, held if
	// it refuses.
	checkCtx, stopCheck := context.WithCancel(ctx)
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		if err := castle.Check(checkCtx); err == nil {
			log.Info("Castle takes CASTLE_API_SECRET at CASTLE_API_URL")
		}
	}()
	defer func() { stopCheck(); <-checked }()

	log.Info("starting",
		zap.String("version", version.Get().Version),
		zap.Strings("brokers", cfg.Kafka.Brokers),
		zap.String("topic", cfg.Kafka.Topic),
		zap.String("group", cfg.Kafka.GroupID),
		zap.String("castle", cfg.Castle.APIURL),
		zap.String("metrics", srv.Addr()))

	// Work (delivery, dead letters) outlives ctx by the shutdown timeout.
	// While Castle refuses everything (a held auth, route or tls fault),
	// nothing in flight can be delivered: it is canceled at once rather
	// than after the timeout, so that the restart that brings the fix is
	// not held up.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var heldAtStop atomic.Bool
	stopTimer := context.AfterFunc(ctx, func() {
		if class := board.Holding(); class != "" {
			heldAtStop.Store(true)
			log.Warn("shutting down while delivery is held: in-flight events, which cannot settle while it holds, are canceled now; their records stay uncommitted and will be read again",
				zap.String("class", class))
			cancelWork()
			cons.CutDrain()
			return
		}
		log.Info("shutting down: fetching stopped, draining in-flight work", zap.Duration("timeout", cfg.Ops.ShutdownTimeout))
		t := time.AfterFunc(cfg.Ops.ShutdownTimeout, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stopTimer()

	recs := make(chan *consumer.Record, 256)
	consDone := make(chan error, 1)
	consume, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()
	go func() { consDone <- cons.Run(consume, recs) }()

	perr := pipeline.Run(work, pipe, recs, record)
	stopConsuming() // the pipeline only stops early on failure
	for range recs {
		// Keep the consumer's shutdown going: records it still hands out
		// after the pipeline stopped are never acknowledged and are read
		// again.
	}
	cerr := <-consDone
	switch {
	case cerr != nil:
		return consumerError(cerr)
	case perr != nil && !errors.Is(perr, context.Canceled):
		return perr
	case perr != nil && !heldAtStop.Load():
		log.Warn("shutdown timeout reached: in-flight events were canceled; their records stay uncommitted and will be read again",
			zap.Duration("timeout", cfg.Ops.ShutdownTimeout))
	}
	log.Info("stopped")
	return nil
}

// record is what the pipeline needs of a Kafka record.
func record(r *consumer.Record) pipeline.Record {
	return pipeline.Record{Value: r.Value, Key: r.Key, Source: r.Topic, Partition: r.Partition, Offset: r.Offset, Acker: r}
}

// RegisterMetrics registers on reg every metric a running worker exports
// (the pipeline's, the Castle client's, the Kafka consumer's, the
// dead-letter writer's and the build information), without connecting to
// anything: for checks that dashboards and alerts query real metrics.
func RegisterMetrics(reg prometheus.Registerer) error {
	board, err := hold.New(nil, reg, hold.Options{})
	if err != nil {
		return err
	}
	castle, err := destination.New(destination.Config{URL: "http://127.0.0.1:9", Secret: "unused", Faults: board}, nil, reg, nil)
	if err != nil {
		return err
	}
	castle.Close()
	if _, err := consumer.New(consumer.Config{Brokers: []string{"127.0.0.1:9"}, Topic: "t", GroupID: "g"}, nil, reg); err != nil {
		return err
	}
	w, err := deadletter.NewKafka(kafkaio.Cluster{Brokers: []string{"127.0.0.1:9"}}, "dlq", reg)
	if err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := registerBuildInfo(reg); err != nil {
		return err
	}
	_, err = pipeline.New(pipeline.Config{}, nil, nil, nil, zap.NewNop(), reg)
	return err
}
