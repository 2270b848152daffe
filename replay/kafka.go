package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/pipeline"
)

// TimestampGrace is how far past Until a Kafka replay reads. Producers
// stamp records (CreateTime), so a partition's timestamps are not in
// offset order: a record stamped inside the window may follow one stamped
// after Until. Reading on to the first record stamped TimestampGrace or
// more after Until catches it; one that follows a record stamped more
// than that past Until is not read.
const TimestampGrace = 5 * time.Minute

// Kafka is a source of the messages of a topic stamped between Since and
// Until (Kafka record timestamps). It reads each partition directly, in
// no consumer group and committing nothing, so production offsets are
// untouched: from the first offset stamped at or after Since (every
// record before it is stamped earlier) to the first stamped at or after
// Until+TimestampGrace, or the log's end at start. Of those it sends the
// records stamped in [Since, Until) and counts the others
// (OutsideWindow). Records deleted before they were read (retention) are
// reported as problems.
type Kafka struct {
	Brokers []string
	Topic   string
	Since   time.Time // zero: from the earliest offset
	// Until zero: the replay's first start (kept in the checkpoint, so
	// that a resume does not read on into what was produced since).
	Until  time.Time
	Dialer *kafka.Dialer
	// Transport carries the offset lookups (TLS/SASL like Dialer).
	Transport kafka.RoundTripper
	MaxBytes  int
	Logger    *zap.Logger
	// Hint, if set, explains a failed lookup (kafkaio.ClosedHint: a TLS
	// or SASL listener closing on a client without them); "" for none.
	Hint func(error) string

	// IdleCheck is how long a partition's read waits for a record before
	// it looks up whether the records left were deleted (default
	// DefaultIdleCheck).
	IdleCheck time.Duration

	// startEnds: Until is the replay's first start (fixWindow), not
	// --until.
	startEnds bool

	problems
	total   atomic.Int64
	done    atomic.Int64
	outside atomic.Int64
	deleted atomic.Int64
}

// DefaultIdleCheck is Kafka.IdleCheck's default.
const DefaultIdleCheck = 10 * time.Second

// client carries the offset lookups.
func (k *Kafka) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Transport: k.Transport, Timeout: 30 * time.Second}
}

// OutsideWindow is the number of records read but not sent because their
// timestamps are outside [Since, Until).
func (k *Kafka) OutsideWindow() int64 { return k.outside.Load() }

// inWindow reports whether a record stamped at t is in [Since, Until). A
// record without a timestamp (zero) is.
func (k *Kafka) inWindow(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	return (k.Since.IsZero() || !t.Before(k.Since)) && (k.Until.IsZero() || t.Before(k.Until))
}

// Progress reports records read of those in the range.
func (k *Kafka) Progress() Progress {
	return Progress{Unit: "records", Done: k.done.Load(), Total: k.total.Load()}
}

type span struct {
	partition  int
	start, end int64 // [start, end)
	first      int64 // the partition's first offset at the lookup
}

// spans maps the time window to offsets per partition: from the first
// record stamped at or after Since to the first stamped at or after
// Until+TimestampGrace. Every partition has one, empty or not.
func (k *Kafka) spans(ctx context.Context) ([]span, error) {
	c := k.client()
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{k.Topic}})
	if err != nil {
		// Name the setting: a bare "connection refused" does not say
		// which address was asked.
		err = fmt.Errorf("replay: no metadata of topic %q from the Kafka brokers %s (KAFKA_BROKERS): %w",
			k.Topic, strings.Join(k.Brokers, ","), err)
		if k.Hint != nil {
			if h := k.Hint(err); h != "" {
				return nil, fmt.Errorf("%w; %s", err, h)
			}
		}
		return nil, err
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) == 0 {
		var terr error = kafka.UnknownTopicOrPartition
		if len(meta.Topics) == 1 && meta.Topics[0].Error != nil {
			terr = meta.Topics[0].Error
		}
		te := &kafkaio.TopicError{Topic: k.Topic, Class: kafkaio.Classify(terr), Err: terr}
		switch te.Class {
		case kafkaio.TopicMissing, kafkaio.NotAuthorized:
			// The source names it: a setting to fix, with nothing read.
			return nil, &SettingError{fmt.Errorf("replay source kafka:%s: %w", k.Topic, te)}
		}
		return nil, fmt.Errorf("replay: %w", te)
	}
	parts := meta.Topics[0].Partitions
	// One request kind per call: a ListOffsets request must not name a
	// partition twice.
	list := func(req func(partition int) kafka.OffsetRequest) (map[int]kafka.PartitionOffsets, error) {
		reqs := make([]kafka.OffsetRequest, 0, len(parts))
		for _, p := range parts {
			reqs = append(reqs, req(p.ID))
		}
		res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{k.Topic: reqs}})
		if err != nil {
			return nil, fmt.Errorf("replay: kafka offsets: %w", err)
		}
		out := make(map[int]kafka.PartitionOffsets, len(parts))
		for _, po := range res.Topics[k.Topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("replay: partition %d offsets: %w", po.Partition, po.Error)
			}
			out[po.Partition] = po
		}
		return out, nil
	}
	first, err := list(kafka.FirstOffsetOf)
	if err != nil {
		return nil, err
	}
	last, err := list(kafka.LastOffsetOf)
	if err != nil {
		return nil, err
	}
	var since, until map[int]kafka.PartitionOffsets
	if !k.Since.IsZero() {
		if since, err = list(func(p int) kafka.OffsetRequest { return kafka.TimeOffsetOf(p, k.Since) }); err != nil {
			return nil, err
		}
	}
	if !k.Until.IsZero() {
		if until, err = list(func(p int) kafka.OffsetRequest { return kafka.TimeOffsetOf(p, k.Until.Add(TimestampGrace)) }); err != nil {
			return nil, err
		}
	}
	var out []span
	for _, p := range parts {
		s := span{partition: p.ID, start: first[p.ID].FirstOffset, end: last[p.ID].LastOffset, first: first[p.ID].FirstOffset}
		if since != nil {
			s.start = max(s.start, offsetAt(since[p.ID], s.end))
		}
		if until != nil {
			s.end = min(s.end, offsetAt(until[p.ID], s.end))
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b span) int { return a.partition - b.partition })
	return out, nil
}

// offsetAt is the first offset at or after the requested time, or end when
// no record is that late (the broker answers offset -1, which kafka-go
// files as LastOffset, leaving Offsets empty).
func offsetAt(po kafka.PartitionOffsets, end int64) int64 {
	best := int64(-1)
	for off := range po.Offsets {
		if best < 0 || off < best {
			best = off
		}
	}
	if best < 0 {
		return end
	}
	return best
}

// fixWindow ends a window that names no end (Until zero) where the
// replay first started, which the feed's checkpoint keeps, or else at now:
// up to the log's end at the start, which a resume must not move, as what
// was produced since is live traffic, which run delivers. It reports
// whether it fixed the end now, which the checkpoint does not keep yet.
func (k *Kafka) fixWindow(feed *Feed, now time.Time) bool {
	if !k.Until.IsZero() {
		return false
	}
	k.Until, k.startEnds = feed.fixUntil(now), true
	return k.Until.Equal(now)
}

// Read reads every partition's span concurrently and sends the records to
// feed; each partition is a unit of the checkpoint, numbered by partition
// whether it has records in the window or not, its records by offset. A
// resume reads each partition's span as it is then, from where the
// earlier run left it: records that arrived in a partition since (one
// that had none in the window among them) are read like the others.
func (k *Kafka) Read(ctx context.Context, feed *Feed) error {
	k.fixWindow(feed, time.Now()) // Run has done it, before the checkpoint's first save
	spans, err := k.spans(ctx)
	if err != nil {
		return err
	}
	var all, numbered []UnitRef
	for _, s := range spans {
		u := UnitRef{Seq: int64(s.partition), Name: k.unitName(s.partition), End: s.end}
		all = append(all, u)
		if s.end > s.start {
			k.total.Add(s.end - s.start)
			numbered = append(numbered, u)
		}
	}
	if err := feed.byKey(all, numbered); err != nil {
		return err
	}
	for _, s := range spans {
		// A partition's span only grows: its end (the log's end, or the
		// first record stamped past the window) never comes back. One
		// that ends before where the checkpoint has it is of a topic
		// created again, or a log truncated: offsets name other records.
		if at, ok := feed.recorded(int64(s.partition)); ok && at > s.end {
			return fmt.Errorf("the input changed since the checkpoint was written: partition %d now ends at offset %d, before offset %d where the checkpoint has it "+
				"(the topic was deleted and created again, or the log truncated): what was left of the window is gone; start over without --resume (or with another --checkpoint)", s.partition, s.end, at)
		}
	}
	log := k.Logger
	if log == nil {
		log = zap.NewNop()
	}
	// kafka-go retries a partition it cannot fetch inside the reader and
	// only logs: those lines are the only word of it.
	logs := readerLogs{debug: kafka.LoggerFunc(log.Sugar().Debugf), errors: consumer.ReaderErrorLog(log)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(spans))
	for i, s := range spans {
		wg.Go(func() {
			if err := k.readSpan(ctx, s, feed, logs); err != nil {
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	// A partition that failed stopped the others: their context.Canceled
	// is not news, and must not pass the failure for an interrupt.
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	return errors.Join(errs...)
}

// unitName names a partition in the checkpoint.
func (k *Kafka) unitName(partition int) string { return fmt.Sprintf("%s/%d", k.Topic, partition) }

// readerLogs are the loggers of the partitions' readers.
type readerLogs struct{ debug, errors kafka.Logger }

// readSpan reads a partition's span into its unit of feed, from where the
// checkpoint left it.
func (k *Kafka) readSpan(ctx context.Context, s span, feed *Feed, logs readerLogs) error {
	u, err := feed.OpenUpTo(ctx, int64(s.partition), k.unitName(s.partition), s.start, s.end)
	if err != nil || u == nil {
		if u == nil && err == nil {
			k.done.Add(max(0, s.end-s.start))
		}
		return err
	}
	p := &partitionRead{k: k, s: s, u: u, logs: logs, idle: k.IdleCheck}
	if p.idle <= 0 {
		p.idle = DefaultIdleCheck
	}
	p.resume(feed)
	if p.next >= s.end {
		p.finish(ctx)
		return nil
	}
	return p.read(ctx)
}

// partitionRead is the read of one partition's span into its unit.
//
// The Kafka client skips, without a word, records deleted (retention,
// DeleteRecords) before it fetched them: the partition's first offset is
// looked up when a record comes after a gap (compacted away, or deleted),
// or when none came for IdleCheck (every record left was deleted: none
// may ever come).
type partitionRead struct {
	k    *Kafka
	s    span
	u    *Unit
	logs readerLogs
	idle time.Duration // IdleCheck, or its default
	next int64         // the first offset not read

	first  int64     // the partition's first offset, when last looked up
	looked time.Time // when it was looked up
	// pending are gaps a failed lookup could not tell (the first few):
	// the next lookup that answers does, the first offset only growing.
	pending []Span
	// missing counts the idle checks in a row, no record between them,
	// that found the topic missing or its log shorter.
	missing int
}

// resume starts the read where the checkpoint left the unit, counting
// what is done as read, and reports the records deleted since that the
// earlier run had not sent.
func (p *partitionRead) resume(feed *Feed) {
	s, u := p.s, p.u
	if from := u.resumedFrom; from >= 0 && from < min(s.first, s.end) {
		// Where the earlier run stopped, the partition now starts later:
		// deleted in between, but for the records it had sent.
		for _, d := range u.notDoneBefore(from, min(s.first, s.end)) {
			p.k.reportDeleted(s.partition, d.From, d.To)
		}
	}
	p.next = max(s.start, u.resumeAt())
	done := max(0, min(p.next, s.end)-s.start)
	p.k.done.Add(done)
	if u.resumedFrom >= 0 {
		// Done in an earlier run: not read again.
		feed.skipped.Add(done)
	}
}

// read fetches the partition's records from next to the span's end and
// sends those stamped in the window.
func (p *partitionRead) read(ctx context.Context) error {
	r := p.k.reader(p.s.partition, p.logs)
	defer r.Close()
	if err := r.SetOffset(p.next); err != nil {
		return fmt.Errorf("replay: partition %d: %w", p.s.partition, err)
	}
	for p.next < p.s.end {
		m, stalled, err := p.fetch(ctx, r)
		if err != nil {
			return err
		}
		if stalled {
			if err := p.idleCheck(ctx); err != nil {
				return err
			}
			continue
		}
		p.missing = 0 // a record came: the topic is there
		p.gapBefore(ctx, m.Offset)
		if m.Offset >= p.s.end {
			break
		}
		if err := p.take(ctx, m); err != nil {
			return err
		}
	}
	p.finish(ctx)
	return nil
}

// reader reads a partition, in no consumer group.
func (k *Kafka) reader(partition int, logs readerLogs) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:     k.Brokers,
		Topic:       k.Topic,
		Partition:   partition,
		Dialer:      k.Dialer,
		MaxBytes:    max(k.MaxBytes, 1<<20),
		MaxWait:     500 * time.Millisecond,
		Logger:      logs.debug,
		ErrorLogger: logs.errors,
	})
}

// fetch waits up to the idle check's time for the partition's next
// record; it fails only when ctx ends, and reports stalled when none
// came. A fetch the broker refuses (not authorized, a storage error)
// holds the read, as it holds run: kafka-go retries it inside the
// reader, at its backoff, but hands the error to the fetch instead of
// logging it. It goes to the readers' error log (a throttled WARN), and
// the fetch waits on: the refusal says nothing of deleted records, which
// the idle check would look up again at every retry.
func (p *partitionRead) fetch(ctx context.Context, r *kafka.Reader) (kafka.Message, bool, error) {
	fctx, cancel := context.WithTimeout(ctx, p.idle)
	defer cancel()
	for {
		m, err := r.FetchMessage(fctx)
		switch {
		case err == nil:
			return m, false, nil
		case ctx.Err() != nil:
			return m, false, ctx.Err()
		case fctx.Err() != nil:
			return m, true, nil
		}
		p.logs.errors.Printf("replay: fetching partition %d of %s failed, retrying: %v", p.s.partition, p.k.Topic, err)
	}
}

// idleCheck follows a stall: the records left may have been deleted,
// and are then reported and passed over, or the topic with them, which
// fails the read (checkGone).
func (p *partitionRead) idleCheck(ctx context.Context) error {
	err := p.lookFirstNow(ctx)
	if err == nil && p.first > p.next {
		to := min(p.first, p.s.end)
		p.k.reportDeleted(p.s.partition, p.next, to)
		p.k.done.Add(to - p.next)
		p.next = to
		if p.next >= p.s.end {
			return nil
		}
	}
	return p.checkGone(ctx, err)
}

// checkGone fails the read when the topic was deleted under it, and
// maybe created again: two idle checks in a row, no record between them,
// found it missing or the partition's log ending before the span. lookErr
// is the idle check's lookup of the first offset.
func (p *partitionRead) checkGone(ctx context.Context, lookErr error) error {
	k, s := p.k, p.s
	var shrunk int64 = -1 // the log's end, when it is before the span's
	if lookErr == nil {
		// The log reached the span's end when the window was looked up;
		// it ends before it only when the topic was deleted and created
		// again (by its operator, or by a broker that creates topics a
		// client asks for: this reader's metadata requests do) or the
		// log truncated.
		switch last, err := k.lastOffset(ctx, s.partition); {
		case err != nil:
			lookErr = err
		case last < s.end:
			shrunk = last
		}
	}
	switch {
	case lookErr != nil && kafkaio.Classify(lookErr) == kafkaio.TopicMissing:
		// Deleted while being read: what is left of the window is gone,
		// and will not come back with the topic.
		if p.missing++; p.missing >= 2 {
			return fmt.Errorf("replay source kafka:%s: the topic was deleted while partition %d was read (at offset %d of %d): %w", k.Topic, s.partition, p.next, s.end, lookErr)
		}
	case shrunk >= 0:
		if p.missing++; p.missing >= 2 {
			return fmt.Errorf("replay source kafka:%s: the topic was deleted while partition %d was read (at offset %d of %d): the partition's log now ends at offset %d (the topic was created again, or the log truncated)", k.Topic, s.partition, p.next, s.end, shrunk)
		}
	default:
		p.missing = 0
	}
	return nil
}

// gapBefore tells the offsets the client jumped over to reach the record
// at off: those below the partition's first offset were deleted. A gap
// the lookup cannot tell now waits in pending.
func (p *partitionRead) gapBefore(ctx context.Context, off int64) {
	if off <= p.next {
		return
	}
	switch err := p.lookFirst(ctx); {
	case err != nil:
		if len(p.pending) < maxPendingGaps {
			p.pending = append(p.pending, Span{p.next, min(off, p.s.end)})
		}
	case p.first > p.next:
		p.k.reportDeleted(p.s.partition, p.next, min(p.first, off, p.s.end))
	}
}

// take moves the read past the record m, sending it when it is a message
// stamped in the window.
func (p *partitionRead) take(ctx context.Context, m kafka.Message) error {
	p.k.done.Add(m.Offset + 1 - p.next)
	p.next = m.Offset + 1
	// A transaction marker is not a message: its offset is a gap, which
	// the unit counts as done.
	if kafkaio.IsControlRecord(m.Key, m.Value) {
		return nil
	}
	if !p.k.inWindow(m.Time) {
		// Read within the grace, or after Since's offset, but stamped
		// outside: done, with nothing to send.
		p.k.outside.Add(1)
		p.u.Pass(m.Offset)
		return nil
	}
	// A null value (a tombstone) is sent too: the mapping dead-letters it
	// as malformed, as run does.
	rec := pipeline.Record{Value: m.Value, Key: m.Key, Source: m.Topic, Partition: m.Partition, Offset: m.Offset}
	return p.u.Send(ctx, m.Offset, rec)
}

// lookFirst looks up the partition's first offset, once a second at most
// (a compacted partition has a gap at every record), and tells the
// pending gaps by it.
func (p *partitionRead) lookFirst(ctx context.Context) error {
	if time.Since(p.looked) < time.Second {
		return nil
	}
	f, err := p.k.firstOffset(ctx, p.s.partition)
	if err != nil {
		return err
	}
	p.first, p.looked = f, time.Now()
	for _, g := range p.pending {
		p.k.reportDeleted(p.s.partition, g.From, min(p.first, g.To))
	}
	p.pending = nil
	return nil
}

// lookFirstNow is lookFirst however recent the last lookup.
func (p *partitionRead) lookFirstNow(ctx context.Context) error {
	p.looked = time.Time{}
	return p.lookFirst(ctx)
}

// finish closes the unit: every offset up to the span's end is read. The
// gaps no lookup could tell get one more, and are reported as untold if
// it fails too.
func (p *partitionRead) finish(ctx context.Context) {
	if len(p.pending) > 0 {
		if err := p.lookFirstNow(ctx); err != nil && ctx.Err() == nil {
			for _, g := range p.pending {
				p.k.add(p.k.Logger, Problem{Path: p.k.unitName(p.s.partition), Record: g.From,
					Err: fmt.Errorf("offsets %d to %d were not in the log when read (deleted by retention, or compacted away); the lookup to tell failed: %w", g.From, g.To-1, err)})
			}
		}
	}
	p.k.done.Add(max(0, p.s.end-p.next))
	p.u.Close(p.s.end)
}

// maxPendingGaps bounds the gaps a partition's read keeps while its
// lookups fail.
const maxPendingGaps = 16

// reportDeleted reports that a partition's records [from, to) were
// deleted before they were read.
func (k *Kafka) reportDeleted(partition int, from, to int64) {
	if to <= from {
		return
	}
	k.deleted.Add(to - from)
	k.add(k.Logger, Problem{Path: k.unitName(partition), Record: from,
		Err: fmt.Errorf("offsets %d to %d were deleted (retention) before they were read: %d records not replayed", from, to-1, to-from)})
}

// firstOffset looks up a partition's first offset.
func (k *Kafka) firstOffset(ctx context.Context, partition int) (int64, error) {
	po, err := k.offsets(ctx, kafka.FirstOffsetOf(partition))
	return po.FirstOffset, err
}

// lastOffset looks up a partition's last offset (the log's end).
func (k *Kafka) lastOffset(ctx context.Context, partition int) (int64, error) {
	po, err := k.offsets(ctx, kafka.LastOffsetOf(partition))
	return po.LastOffset, err
}

// offsets looks up one offset of a partition.
func (k *Kafka) offsets(ctx context.Context, req kafka.OffsetRequest) (kafka.PartitionOffsets, error) {
	res, err := k.client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{k.Topic: {req}}})
	if err != nil {
		return kafka.PartitionOffsets{}, err
	}
	for _, po := range res.Topics[k.Topic] {
		if po.Partition == req.Partition {
			return po, po.Error
		}
	}
	return kafka.PartitionOffsets{}, fmt.Errorf("no offsets for partition %d", req.Partition)
}
