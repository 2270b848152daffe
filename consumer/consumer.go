// Package consumer reads one Kafka topic as a member of a consumer group and
// hands its records out one by one; the caller acknowledges each record once it
// is done with it (delivered, dropped or dead-lettered). Offsets are committed
// per partition, in order, only past records that are acknowledged, so a
// crash, a rebalance or a shutdown never loses a record: the uncommitted ones
// are read again (at-least-once).
//
// It knows nothing of Segment or Castle: records are opaque bytes.
//
// It is built on kafka-go's ConsumerGroup/Generation API rather than the
// group-managed kafka.Reader: each generation gives this member its partitions
// and their committed offsets; one partition reader (a kafka.Reader with no
// group) per assigned partition fetches from there; commits go through
// Generation.CommitOffsets, so the broker rejects (fences) a commit from a
// generation that is over. The records of a generation carry its offset
// trackers: their acknowledgements never count towards a later generation,
// even one in which the same partition comes back to this member.
//
// Its log lines are for operators: a failure that repeats (brokers down, a
// partition that cannot be fetched) is logged the first few times and then
// once a minute, and kafka-go's own lines go to DEBUG unless they report a
// failure nothing else logs.
//
// What it does not do: batching, retries, decoding, writing to Kafka. Those
// belong to the pipeline that receives the records and to the sinks it
// writes to (deadletter).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/ops"
)

var (
	errTrackerClosed = errors.New("partition tracker closed")
	errNotMember     = errors.New("consumer: not a member of a consumer group generation")
	errStopped       = errors.New("consumer: stopped")
)

// Record is one Kafka message handed out by Run. Call Ack(nil) exactly when
// the record is done; records that are never acked, or acked with an error
// (abandoned), are re-read after a restart or a rebalance.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
	Time      time.Time

	tracker *tracker
	seq     uint64
	metrics *metrics
	acked   atomic.Bool
}

// Ack with a nil err marks the record done (delivered, dropped or
// dead-lettered): its offset may be committed once every earlier record of
// its partition is done too. A non-nil err says the record was abandoned:
// it stays uncommitted, and its partition's commits stop before it until
// the generation ends, so that it is read again. Safe from any goroutine;
// idempotent; a no-op (counted as a late ack) once the record's generation
// ended. On a Record not made by Run it does nothing.
func (r *Record) Ack(err error) {
	if err != nil || r == nil || r.tracker == nil || !r.acked.CompareAndSwap(false, true) {
		return
	}
	if r.tracker.ack(r.seq) {
		r.metrics.acks.Inc()
	} else {
		r.metrics.lateAcks.Inc()
	}
}

// Consumer is a consumer group member. Make one with New and call Run once.
type Consumer struct {
	cfg     Config
	cluster kafkaio.Cluster
	log     *zap.Logger
	metrics *metrics
	started atomic.Bool

	readyMu  sync.Mutex
	readyErr error

	// owned is the partition set of the latest generation, for deleting the
	// metric series of partitions that moved away. Generations run one after
	// the other, so only one goroutine uses it at a time.
	owned map[int]bool

	cut     chan struct{} // closed by CutDrain
	cutOnce sync.Once
}

// New validates cfg, applies defaults and registers the metrics on reg (nil:
// not registered). It does not connect to Kafka.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Consumer{
		cfg:      cfg,
		cluster:  cfg.Cluster(),
		log:      logger.With(zap.String("topic", cfg.Topic), zap.String("group", cfg.GroupID)),
		metrics:  m,
		readyErr: errNotMember,
		owned:    map[int]bool{},
		cut:      make(chan struct{}),
	}, nil
}

// CutDrain ends the shutdown drain, now or when it starts, as if its
// DrainTimeout had passed: what is acknowledged is committed, and records
// not acknowledged are read again. For a caller that knows the records in
// flight cannot finish (delivery is held).
func (c *Consumer) CutDrain() { c.cutOnce.Do(func() { close(c.cut) }) }

// Ready reports nil while the consumer is a member of a generation (even one
// with no partitions: a replica beyond the partition count is healthy), and
// an error saying why not otherwise. For /readyz.
func (c *Consumer) Ready() error {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	return c.readyErr
}

func (c *Consumer) setReady(err error) {
	c.readyMu.Lock()
	c.readyErr = err
	c.readyMu.Unlock()
}

// Run joins the group and sends records on out until ctx is done. Then it
// stops fetching, waits up to DrainTimeout for the records handed out to be
// acked (keep receiving from out and acking until it is closed: records
// still buffered in out count as handed out), commits, leaves the group,
// closes out and returns nil.
//
// It returns an error, without retrying, when the consumer cannot work: the
// topic does not exist at start, authentication or authorization fails, the
// broker rejects the group settings, TLS verification fails; and after
// JoinTimeout without group membership for any other error (brokers
// unreachable, coordinator unavailable), which it retries until then. Errors
// fetching a partition are retried for as long as the generation lasts
// (counted and logged). A topic deleted (or refused) while it runs is waited
// for: see awaitTopic.
func (c *Consumer) Run(ctx context.Context, out chan<- *Record) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called more than once")
	}
	defer close(out)
	defer c.setReady(errStopped)

	transport := c.cluster.Transport()
	defer transport.CloseIdleConnections()
	client := c.cluster.Client(transport, kafkaio.DialTimeout)

	if err := c.checkTopic(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}

	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    c.cfg.GroupID,
		Brokers:               c.cfg.Brokers,
		Dialer:                c.cluster.Dialer(),
		Topics:                []string{c.cfg.Topic},
		HeartbeatInterval:     c.cfg.HeartbeatInterval,
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      c.cfg.RebalanceTimeout,
		JoinGroupBackoff:      c.cfg.RetryBackoff,
		WatchPartitionChanges: true,
		StartOffset:           c.cfg.StartOffset,
		// Every failure the group logs on its error logger is also returned
		// by Next, which logs it below (throttled): kafka-go's lines are
		// detail.
		Logger:      kafka.LoggerFunc(c.log.Sugar().Debugf),
		ErrorLogger: kafka.LoggerFunc(c.log.Sugar().Debugf),
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	defer group.Close()

	lastMember := time.Now()
	joinFailures := ops.NewThrottle(retryLogBurst, retryLogEvery)
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if isFatal(err) {
				return fmt.Errorf("join consumer group %q: %w", c.cfg.GroupID, err)
			}
			if time.Since(lastMember) > c.cfg.JoinTimeout {
				return fmt.Errorf("join consumer group %q: no membership for over %s: %w", c.cfg.GroupID, c.cfg.JoinTimeout, err)
			}
			c.setReady(fmt.Errorf("consumer: joining group: %w", err))
			if ok, skipped := joinFailures.Allow(time.Now()); ok {
				c.log.Warn("joining consumer group failed; retrying", zap.Error(err), zap.Int("lines_skipped", skipped),
					zap.Duration("gives_up_after", c.cfg.JoinTimeout-time.Since(lastMember)))
			}
			continue
		}
		if skipped := joinFailures.Reset(); skipped > 0 {
			c.log.Info("consumer group joined again", zap.Int("failures_not_logged", skipped))
		}
		c.metrics.generations.Inc()
		g := c.newGeneration(gen, client, out)
		finished := make(chan struct{})
		gen.Start(func(genCtx context.Context) { g.run(ctx, genCtx, finished) })
		<-finished
		if ctx.Err() != nil {
			break
		}
		// kafka-go ends a generation at once, again and again, when the
		// topic is gone. No other pause here: kafka-go joins the next
		// generation by itself and parks it until Next takes it, watching
		// nothing meanwhile, so a pause would hold up every rebalance of
		// the group.
		if !c.awaitTopic(ctx) {
			break
		}
		lastMember = time.Now()
	}
	// Leave the group; this also ends the generation whose supervisor is
	// waiting for it after a shutdown drain.
	_ = group.Close()
	for p := range c.owned {
		c.metrics.lag.DeleteLabelValues(partitionLabel(p))
		c.metrics.inFlight.DeleteLabelValues(partitionLabel(p))
	}
	c.metrics.assigned.Set(0)
	c.log.Info("consumer stopped")
	return nil
}

// checkTopic fails when the topic does not exist: kafka-go's group would
// otherwise assign nothing and look healthy forever. Connection errors are
// retried until JoinTimeout.
func (c *Consumer) checkTopic(ctx context.Context) error {
	err := kafkaio.CheckTopics(ctx, c.cluster, []string{c.cfg.Topic}, kafkaio.CheckOptions{
		Wait:    c.cfg.JoinTimeout,
		Backoff: c.cfg.RetryBackoff,
		Logger:  c.log,
	})
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("consumer: %w", err)
}

// awaitTopic returns true at once when the topic can be consumed, or when
// the brokers give no answer on it (the join that follows retries those).
// When they answer that the topic is missing or not authorized (it was
// deleted, its ACLs changed), it reports not ready naming KAFKA_TOPIC, logs
// one ERROR line (repeated at most once a minute while it lasts), and
// checks again at a backoff that doubles from RetryBackoff up to
// maxRejoinPause until the topic can be consumed: then it returns true. It
// returns false when ctx ends first.
func (c *Consumer) awaitTopic(ctx context.Context) bool {
	err := c.topicUnusable(ctx)
	if err == nil {
		return true
	}
	since := time.Now()
	throttle := ops.NewThrottle(1, retryLogEvery)
	backoff := c.cfg.RetryBackoff
	for checks := 1; ; checks++ {
		c.setReady(err)
		if ok, skipped := throttle.Allow(time.Now()); ok {
			c.log.Error("consuming stopped: the topic cannot be read; checking again until it can", zap.Error(err),
				zap.Int("checks", checks), zap.Int("lines_skipped", skipped))
		}
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, maxRejoinPause)
		err = c.topicUnusable(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			c.setReady(errNotMember)
			c.log.Info("the topic can be read again; rejoining the group",
				zap.Duration("after", time.Since(since).Round(time.Millisecond)), zap.Int("checks", checks+1))
			return true
		}
	}
}

// topicUnusable runs the start-up check once: it returns an error naming
// KAFKA_TOPIC if the topic is missing or not authorized, nil otherwise.
func (c *Consumer) topicUnusable(ctx context.Context) error {
	err := kafkaio.CheckTopics(ctx, c.cluster, []string{c.cfg.Topic}, kafkaio.CheckOptions{})
	var te *kafkaio.TopicError
	if errors.As(err, &te) && (te.Class == kafkaio.TopicMissing || te.Class == kafkaio.NotAuthorized) {
		return fmt.Errorf("consumer: KAFKA_TOPIC: %w", te)
	}
	return nil
}

// maxRejoinPause bounds awaitTopic's backoff.
const maxRejoinPause = 30 * time.Second

// Log lines of a failure that repeats: the first retryLogBurst, then one
// per retryLogEvery.
const (
	retryLogBurst = 3
	retryLogEvery = time.Minute
)

// isFatal reports errors that retrying cannot fix: credentials, permissions,
// a missing topic, settings the broker refuses, TLS trust.
func isFatal(err error) bool {
	if kafkaio.Classify(err).Permanent() {
		return true
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.InvalidSessionTimeout, kafka.InvalidGroupId, kafka.InconsistentGroupProtocol:
			return true
		}
	}
	return false
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
