package consumer

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/ops"
)

// How a generation ends, as seen from kafka-go v0.4.51's consumergroup.go:
//
//   - The group runs one generation at a time. Generation.Start runs a
//     function in a goroutine; when any started function returns, or the
//     heartbeat loop gets an error (RebalanceInProgress when a member joins
//     or leaves, or a connection error), the generation's done channel closes
//     and every started function sees its context end.
//   - The group then waits, in Generation.close, for every started function
//     to return before it closes the coordinator connection and joins the
//     next generation. So a started function can still commit with the
//     ending generation: the broker accepts commits of the current generation
//     while the group prepares a rebalance (Kafka and kfake alike), and the
//     rebalance waits (up to RebalanceTimeout) for this member to rejoin.
//   - ConsumerGroup.Close closes the group, ends the current generation the
//     same way, waits for the started functions, then sends LeaveGroup.
//   - Heartbeats stop as soon as the generation's done channel closes.
//
// Hence one supervisor per generation is started with Generation.Start; it
// owns the partition fetchers and the lag refresher (plain goroutines it
// waits for) so that no fetcher returning early can end the generation. On a
// rebalance it stops the fetchers, drains up to RebalanceDrain, commits and
// returns. On shutdown it does the same with DrainTimeout while the
// generation is still live (heartbeats continue), then waits for Run to close
// the group.

// generation is this member's share of one consumer group generation.
type generation struct {
	c        *Consumer
	gen      *kafka.Generation
	client   *kafka.Client
	out      chan<- *Record
	log      *zap.Logger
	trackers map[int]*tracker
	starts   map[int]int64 // partition -> offset the fetcher starts at
	// committed is the last offset committed per partition in this
	// generation (or the offset it started from).
	committed map[int]int64
}

func (c *Consumer) newGeneration(gen *kafka.Generation, client *kafka.Client, out chan<- *Record) *generation {
	return &generation{
		c:      c,
		gen:    gen,
		client: client,
		out:    out,
		log:    c.log.With(zap.Int32("generation", gen.ID)),
	}
}

// run is the generation's supervisor. finished closes once the generation's
// fetchers are stopped and its final commit is done.
func (g *generation) run(runCtx, genCtx context.Context, finished chan<- struct{}) {
	c := g.c
	assigned := g.gen.Assignments[c.cfg.Topic]
	sort.Slice(assigned, func(i, j int) bool { return assigned[i].ID < assigned[j].ID })
	ids := make([]int, len(assigned))
	for i, a := range assigned {
		ids[i] = a.ID
	}
	g.log.Info("joined consumer group generation", zap.String("member", g.gen.MemberID), zap.Ints("partitions", ids))
	g.setup(runCtx, assigned)
	if genCtx.Err() == nil { // a generation over before it began is no membership
		c.setReady(nil)
	}

	fetchCtx, stopFetch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range ids {
		wg.Go(func() { g.fetch(fetchCtx, p) })
	}
	wg.Go(func() { g.refreshLag(fetchCtx) })

	ticker := time.NewTicker(c.cfg.CommitInterval)
	defer ticker.Stop()
	shutdown := false
loop:
	for {
		select {
		case <-ticker.C:
			g.commit()
		case <-genCtx.Done():
			break loop
		case <-runCtx.Done():
			shutdown = true
			break loop
		}
	}

	stopFetch()
	wg.Wait()
	g.drain(genCtx, ticker.C)
	g.finish()
	c.setReady(errNotMember)
	close(finished)

	if shutdown {
		// Keep the generation (and its heartbeats) alive until Run closes
		// the group: returning here would end the generation and make the
		// group rejoin before it leaves.
		<-genCtx.Done()
	}
}

// setup resolves start offsets, creates the trackers and updates the
// ownership-dependent metrics.
func (g *generation) setup(ctx context.Context, assigned []kafka.PartitionAssignment) {
	c := g.c
	g.trackers = make(map[int]*tracker, len(assigned))
	g.starts = make(map[int]int64, len(assigned))
	g.committed = make(map[int]int64, len(assigned))

	var relative []kafka.OffsetRequest
	for _, a := range assigned {
		g.starts[a.ID] = a.Offset
		if a.Offset < 0 {
			relative = append(relative, kafka.OffsetRequest{Partition: a.ID, Timestamp: a.Offset})
		}
	}
	if len(relative) > 0 {
		// Resolve FirstOffset/LastOffset now so the tracker (and the lag)
		// know where the partition starts; if this fails, the fetcher
		// resolves them and the tracker learns the start from the first
		// record.
		resolved, err := g.listOffsets(ctx, relative)
		if err != nil {
			g.log.Info("resolving start offsets failed; the partition readers will", zap.Error(err))
		}
		for p, o := range resolved {
			g.starts[p] = o
		}
	}

	owned := make(map[int]bool, len(assigned))
	pins := make(map[int]int64)
	for _, a := range assigned {
		start := g.starts[a.ID]
		g.trackers[a.ID] = newTracker(a.ID, c.cfg.MaxInFlight, SpanPerInFlight*c.cfg.MaxInFlight, start)
		g.committed[a.ID] = start
		if a.Offset < 0 && start >= 0 {
			// The group has no offset here yet: commit where it starts, or
			// the next owner of the partition would resolve StartOffset
			// again (a later log end, for LastOffset) and skip the records
			// handed out here and never acked. If this commit fails, the
			// committer retries it.
			g.committed[a.ID] = a.Offset
			pins[a.ID] = start
		}
		owned[a.ID] = true
	}
	g.commitOffsets(pins)
	for p := range c.owned {
		if !owned[p] {
			c.metrics.lag.DeleteLabelValues(partitionLabel(p))
			c.metrics.inFlight.DeleteLabelValues(partitionLabel(p))
		}
	}
	c.owned = owned
	c.metrics.assigned.Set(float64(len(assigned)))
}

// listOffsets returns the offsets asked for (FirstOffset or LastOffset per
// partition).
func (g *generation) listOffsets(ctx context.Context, reqs []kafka.OffsetRequest) (map[int]int64, error) {
	resp, err := g.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{g.c.cfg.Topic: reqs},
	})
	if err != nil {
		return nil, err
	}
	want := make(map[int]int64, len(reqs))
	for _, r := range reqs {
		want[r.Partition] = r.Timestamp
	}
	res := make(map[int]int64, len(reqs))
	var errs []error
	for _, po := range resp.Topics[g.c.cfg.Topic] {
		if po.Error != nil {
			errs = append(errs, po.Error)
			continue
		}
		switch want[po.Partition] {
		case kafka.FirstOffset:
			res[po.Partition] = po.FirstOffset
		case kafka.LastOffset:
			res[po.Partition] = po.LastOffset
		}
	}
	return res, errors.Join(errs...)
}

// fetch reads one partition from its start offset and hands the records out,
// blocking while MaxInFlight records of the partition are outstanding.
func (g *generation) fetch(ctx context.Context, partition int) {
	c := g.c
	t := g.trackers[partition]
	sugar := g.log.With(zap.Int("partition", partition)).Sugar()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:         c.cfg.Brokers,
		Topic:           c.cfg.Topic,
		Partition:       partition,
		Dialer:          c.cluster.Dialer(),
		MinBytes:        c.cfg.MinBytes,
		MaxBytes:        c.cfg.MaxBytes,
		MaxWait:         c.cfg.MaxWait,
		ReadLagInterval: -1, // lag is computed against the ack watermark instead
		// kafka-go panics on a ReadBackoffMax below ReadBackoffMin (100 ms
		// unless set): a RetryBackoff shorter than that lowers both.
		ReadBackoffMin: min(c.cfg.RetryBackoff, 100*time.Millisecond),
		ReadBackoffMax: c.cfg.RetryBackoff,
		Logger:         kafka.LoggerFunc(sugar.Debugf),
		ErrorLogger:    newReaderErrorLog(sugar.Desugar()),
	})
	defer r.Close()
	if err := r.SetOffset(g.starts[partition]); err != nil {
		// Only fails on a closed reader.
		sugar.Errorw("set partition offset", "error", err)
		return
	}
	failures := ops.NewThrottle(retryLogBurst, retryLogEvery)
	for {
		if err := t.reserve(ctx); err != nil {
			return
		}
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.metrics.fetchErrors.Inc()
			if ok, skipped := failures.Allow(time.Now()); ok {
				sugar.Warnw("fetch failed; retrying", "error", err, "lines_skipped", skipped)
			}
			if !sleep(ctx, c.cfg.RetryBackoff) {
				return
			}
			continue
		}
		if skipped := failures.Reset(); skipped > 0 {
			sugar.Infow("fetching again", "failures_not_logged", skipped)
		}
		if kafkaio.IsControlRecord(m.Key, m.Value) {
			// A transaction marker: nothing to deliver, done at once.
			t.ack(t.push(m.Offset))
			continue
		}
		seq := t.push(m.Offset)
		rec := &Record{
			Topic:     m.Topic,
			Partition: m.Partition,
			Offset:    m.Offset,
			Key:       m.Key,
			Value:     m.Value,
			Headers:   m.Headers,
			Time:      m.Time,
			tracker:   t,
			seq:       seq,
			metrics:   c.metrics,
		}
		select {
		case g.out <- rec:
			c.metrics.fetched.Inc()
		case <-ctx.Done():
			t.unpush(seq)
			return
		}
	}
}

// commit commits every partition whose watermark advanced.
func (g *generation) commit() {
	offsets := make(map[int]int64)
	for p, t := range g.trackers {
		wm, unacked := t.state()
		g.c.metrics.inFlight.WithLabelValues(partitionLabel(p)).Set(float64(unacked))
		if wm > g.committed[p] {
			offsets[p] = wm
		}
	}
	g.commitOffsets(offsets)
}

func (g *generation) commitOffsets(offsets map[int]int64) {
	if len(offsets) == 0 {
		return
	}
	err := g.gen.CommitOffsets(map[string]map[int]int64{g.c.cfg.Topic: offsets})
	if err != nil {
		g.c.metrics.commitErrors.Inc()
		g.log.Warn("commit offsets failed", zap.Error(err), zap.Any("offsets", offsets))
		return
	}
	g.c.metrics.commits.Inc()
	for p, o := range offsets {
		g.committed[p] = o
	}
}

// drain waits for the records handed out to be acked: up to RebalanceDrain
// if the generation has ended, DrainTimeout otherwise (cut to RebalanceDrain
// if it ends meanwhile, and ended by CutDrain). It keeps committing on the
// ticker.
func (g *generation) drain(genCtx context.Context, tick <-chan time.Time) {
	c := g.c
	if g.idle() {
		return
	}
	ended := genCtx.Err() != nil
	limit := c.cfg.DrainTimeout
	if ended {
		limit = c.cfg.RebalanceDrain
	}
	deadline := time.Now().Add(limit)
	timer := time.NewTimer(limit)
	defer timer.Stop()

	waitCtx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	go func() {
		defer close(idle)
		for _, t := range g.trackers {
			if t.waitIdle(waitCtx) != nil {
				return
			}
		}
	}()
	defer func() { cancel(); <-idle }()

	genDone := genCtx.Done()
	cut := c.cut // only a shutdown drain is cut short
	if ended {
		genDone, cut = nil, nil
	}
	for {
		select {
		case <-idle:
			return
		case <-timer.C:
			g.log.Warn("drain timed out; un-acked records will be re-read", zap.Duration("timeout", limit))
			return
		case <-cut:
			g.log.Info("drain cut short; un-acked records will be re-read")
			return
		case <-tick:
			g.commit()
		case <-genDone:
			genDone = nil
			if time.Until(deadline) > c.cfg.RebalanceDrain {
				deadline = time.Now().Add(c.cfg.RebalanceDrain)
				limit = c.cfg.RebalanceDrain
				timer.Reset(c.cfg.RebalanceDrain)
			}
		}
	}
}

func (g *generation) idle() bool {
	for _, t := range g.trackers {
		if _, n := t.state(); n > 0 {
			return false
		}
	}
	return true
}

// finish closes the trackers, so later acks are ignored, and commits their
// final watermarks with this generation.
func (g *generation) finish() {
	offsets := make(map[int]int64)
	abandoned := 0
	for p, t := range g.trackers {
		wm, unacked := t.close()
		abandoned += unacked
		g.c.metrics.inFlight.WithLabelValues(partitionLabel(p)).Set(0)
		if wm > g.committed[p] {
			offsets[p] = wm
		}
	}
	g.c.metrics.abandoned.Add(float64(abandoned))
	g.commitOffsets(offsets)
	g.log.Info("generation finished", zap.Any("committed", g.committed), zap.Int("abandoned", abandoned))
}

// refreshLag sets the lag of each owned partition every LagInterval: log end
// offset minus the acked watermark.
func (g *generation) refreshLag(ctx context.Context) {
	if len(g.trackers) == 0 {
		return
	}
	reqs := make([]kafka.OffsetRequest, 0, len(g.trackers))
	for p := range g.trackers {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	ticker := time.NewTicker(g.c.cfg.LagInterval)
	defer ticker.Stop()
	for {
		ends, err := g.listOffsets(ctx, reqs)
		if err != nil && ctx.Err() == nil {
			g.log.Debug("refreshing lag failed", zap.Error(err))
		}
		for p, end := range ends {
			wm, _ := g.trackers[p].state()
			if wm < 0 {
				continue
			}
			g.c.metrics.lag.WithLabelValues(partitionLabel(p)).Set(float64(max(end-wm, 0)))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
