package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/consumer/kafkatest"
	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/selfcert"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/replay"
)

func TestKafkaTimeRange(t *testing.T) {
	t.Parallel()
	env, err := harness.Start(harness.Options{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	// Three hours of messages, one hour each; replay only the middle hour.
	w := &kafka.Writer{Addr: kafka.TCP(env.Brokers...), Topic: env.Topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	want := map[string]bool{}
	for hour := range 3 {
		var msgs []kafka.Message
		for i := range 60 {
			id := "k-" + itoa(hour) + "-" + itoa(i)
			v := `{"type":"track","event":"E","channel":"client","messageId":"` + id + `","userId":"u` + itoa(i) + `","properties":{"trace_id":"` + id + `"},"context":{"library":{"name":"analytics.js"}}}`
			msgs = append(msgs, kafka.Message{Key: []byte("u" + itoa(i)), Value: []byte(v), Time: base.Add(time.Duration(hour)*time.Hour + time.Duration(i)*time.Second)})
			if hour == 1 {
				want[id] = true
			}
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	src := &replay.Kafka{
		Brokers: env.Brokers, Topic: env.Topic,
		Since: base.Add(time.Hour), Until: base.Add(2 * time.Hour),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := dryRun(t, ctx, src, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), want)
	// The third hour's first minute is read too, within the grace past
	// --until, and not sent.
	if p := src.Progress(); p.Done != 120 || p.Total != 120 || src.OutsideWindow() != 60 {
		t.Errorf("progress %d of %d, %d outside the window; want 120 of 120, 60 outside", p.Done, p.Total, src.OutsideWindow())
	}
	// Two shards of the same range: disjoint, and together the whole.
	union := map[string]int{}
	for i := range 2 {
		cp := filepath.Join(t.TempDir(), "cp.json")
		part := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, Since: base.Add(time.Hour), Until: base.Add(2 * time.Hour)}
		r := dryRun(t, ctx, part, func(c *replay.Config) {
			c.Shard = replay.Shard{Index: i, Count: 2}
			c.Checkpoint = cp
		})
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := ids(t, r.out.Bytes())
		if len(got) == 0 || len(got) == len(want) {
			t.Errorf("shard %d/2 sent %d of %d", i, len(got), len(want))
		}
		for id, c := range got {
			union[id] += c
		}
		c, err := replay.LoadCheckpoint(cp)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Finished || len(c.After) != 3 || len(c.Open) != 0 {
			t.Errorf("shard %d/2: checkpoint %+v, want finished with the 3 partitions done", i, c)
		}
	}
	sameSet(t, union, want)

	// Production offsets are untouched: the worker's group has no commits.
	committed, err := env.Committed(context.Background(), "castle-destination")
	if errors.Is(err, kafka.GroupIdNotFound) {
		return // no group at all: nothing was committed
	}
	if err != nil {
		t.Fatal(err)
	}
	for p, off := range committed {
		if off >= 0 {
			t.Errorf("partition %d has a committed offset %d after a replay", p, off)
		}
	}
}

// A replay of a topic on a TLS listener without KAFKA_TLS fails at its
// first lookup with "unexpected EOF"; the error says what that may mean.
func TestKafkaReplayHintsAtTLS(t *testing.T) {
	ca, err := selfcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := ca.ServerTLS("kfake")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kafkatest.Start(kafkatest.Config{Topics: map[string]int{"in": 1}, ClientTLS: ca.ClientTLS(),
		Opts: []kfake.Opt{kfake.TLS(serverTLS)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	env := map[string]string{"CASTLE_API_SECRET": harness.Secret, "KAFKA_BROKERS": strings.Join(kc.Addrs(), ","), "KAFKA_TOPIC": "in"}
	cfg, err := harness.ParseConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = replay.Execute(ctx, replay.Settings{Config: cfg, Sources: []string{"kafka:in"}, DryRun: true, Progress: "off"},
		replay.Options{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "requires TLS (KAFKA_TLS)") {
		t.Errorf("replay: %v, want the TLS hint", err)
	}
}

// A topic a transactional producer wrote has a commit marker after every
// transaction, which kafka-go hands out as a message: the replay skips it
// rather than dead-letter it as malformed, and sends every record.
func TestKafkaReplaySkipsTransactionMarkers(t *testing.T) {
	t.Parallel()
	env, err := harness.Start(harness.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Brokers...), kgo.TransactionalID("castle-destination-replay-test"), kgo.DefaultProduceTopic(env.Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]bool{}
	for txn := range 2 {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			id := "txn-" + itoa(txn) + "-" + itoa(i)
			v := `{"type":"track","event":"E","channel":"client","messageId":"` + id + `","userId":"u` + itoa(i) + `","properties":{"trace_id":"` + id + `"},"context":{"library":{"name":"analytics.js"}}}`
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			want[id] = true
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	r := dryRun(t, ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), want)
	if len(r.letters) != 0 {
		t.Errorf("%d dead letters (first: %s %q)", len(r.letters), r.letters[0].Reason, r.letters[0].Value)
	}
}

// A replay of a topic that does not exist fails at start naming the topic
// (a setting: exit 2), sends nothing, and leaves no checkpoint in the way
// of the same command once the name is fixed.
func TestKafkaReplayOfAMissingTopicNamesIt(t *testing.T) {
	t.Parallel()
	env, err := harness.Start(harness.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	err = failAtStart(t, env.Brokers, "no-such-topic")
	var se *replay.SettingError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `"no-such-topic" does not exist`) || !strings.Contains(err.Error(), "kafka:no-such-topic") {
		t.Fatalf("replay: %v, want a setting error naming the topic", err)
	}
}

// A replay whose brokers do not answer fails at start naming the setting
// and the address it asked, sends nothing and leaves no checkpoint.
func TestKafkaReplayWithoutBrokersNamesTheSetting(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	err = failAtStart(t, []string{addr}, "segment")
	if err == nil || !strings.Contains(err.Error(), "KAFKA_BROKERS") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("replay: %v, want an error naming KAFKA_BROKERS and %s", err, addr)
	}
}

// failAtStart runs a replay of kafka:topic on brokers that is to fail
// before anything is sent: it checks that Castle got nothing and that no
// checkpoint was left in the way of the same command once the setting is
// fixed, and returns the replay's error.
func failAtStart(t *testing.T, brokers []string, topic string) error {
	t.Helper()
	srv, castleURL := castleServer(t, 0)
	s := settings(t, castleURL, "kafka:"+topic)
	s.Config.Kafka.Brokers, s.Config.Kafka.Topic = brokers, topic
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
	if n := srv.Stats().Accepted; n != 0 {
		t.Errorf("Castle accepted %d events", n)
	}
	if _, err := os.Stat(s.Checkpoint); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a checkpoint was left: %v", err)
	}
	return err
}

// Producers stamp records (CreateTime), so a partition's timestamps are
// not in offset order. A replay of a window reads from the first record
// stamped at or after --since to the first stamped TimestampGrace or more
// after --until, and sends exactly the records stamped inside the window:
// one written after a later-stamped record is not lost, one stamped
// outside is not sent but counted in the summary. Past the grace is the
// documented bound.
func TestKafkaWindowFollowsRecordTimestamps(t *testing.T) {
	t.Parallel()
	env, err := harness.Start(harness.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	since := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	until := since.Add(time.Hour)
	w := &kafka.Writer{Addr: kafka.TCP(env.Brokers...), Topic: env.Topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	// In offset order.
	stamps := []struct {
		id string
		at time.Time
	}{
		{"before", since.Add(-30 * time.Minute)},
		{"in-1", since.Add(10 * time.Minute)},
		{"late-before", since.Add(-10 * time.Minute)}, // read, stamped before the window
		{"after-1", until.Add(time.Minute)},           // read within the grace
		{"in-2", until.Add(-time.Minute)},             // after a record stamped past --until
		{"after-2", until.Add(2 * time.Minute)},
		{"past-grace", until.Add(replay.TimestampGrace + time.Minute)},
		{"in-beyond", until.Add(-2 * time.Minute)}, // after the grace: not read (the bound)
		{"after-3", until.Add(time.Hour)},
	}
	var msgs []kafka.Message
	for _, s := range stamps {
		v := `{"type":"track","event":"E","channel":"client","messageId":"` + s.id + `","userId":"u","properties":{"trace_id":"` + s.id + `"},"context":{"library":{"name":"analytics.js"}}}`
		msgs = append(msgs, kafka.Message{Value: []byte(v), Time: s.at})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, Since: since, Until: until}
	r := dryRun(t, ctx, src, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"in-1": true, "in-2": true})
	if n := src.OutsideWindow(); n != 3 {
		t.Errorf("%d records counted outside the window, want 3 (late-before, after-1, after-2)", n)
	}
	checkSummary(t, r, src, "3 Kafka records stamped outside --since/--until")
}

// kafkaTrack is a track message whose trace_id is id, sent at.
func kafkaTrack(id string, at time.Time) []byte {
	return []byte(`{"type":"track","event":"E","channel":"client","messageId":"` + id + `","userId":"u-` + id + `","timestamp":"` + at.UTC().Format(time.RFC3339) +
		`","properties":{"trace_id":"` + id + `"},"context":{"library":{"name":"analytics.js"}}}`)
}

// A record with a null value (a tombstone) is not a Segment message: the
// replay dead-letters it as malformed, as run does, rather than pass over
// it uncounted.
func TestKafkaReplayDeadLettersANullValue(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, time.Minute)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Brokers...), kgo.DefaultProduceTopic(env.Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now()
	for _, r := range []*kgo.Record{
		{Value: kafkaTrack("a", now)},
		{Key: []byte("user-1"), Value: nil},
		{Value: kafkaTrack("b", now)},
	} {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r := dryRun(t, ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"a": true, "b": true})
	if r.sum.Consumed != 3 || r.sum.DeadLettered["malformed"] != 1 {
		t.Errorf("%d records consumed, dead letters %v; want 3 consumed, the null value dead-lettered as malformed", r.sum.Consumed, r.sum.DeadLettered)
	}
	if len(r.letters) != 1 || r.letters[0].Offset != 1 || string(r.letters[0].Key) != "user-1" || r.letters[0].Value != nil {
		t.Errorf("dead letters %+v, want the null value at offset 1 with its key", r.letters)
	}
}

// stamped is a record for a partition, stamped at a time.
type stamped struct {
	partition int32
	id        string
	at        time.Time
}

// produceTo writes the records to their partitions, in order.
func produceTo(t *testing.T, ctx context.Context, brokers []string, topic string, recs []stamped) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		rec := &kgo.Record{Partition: r.partition, Value: kafkaTrack(r.id, r.at), Timestamp: r.at}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// A kafka: replay interrupted mid-way resumes after records arrived in a
// partition that had none in the window: the partitions are the
// checkpoint's units whatever their content, so the resume continues
// where the first run stopped, sends what the first run settled never
// again, and sends the records that arrived in the window.
func TestKafkaResumeAfterAnEmptyPartitionGainsRecords(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 3, Castle: castleserver.Config{MaxRecords: -1}}, 2*time.Minute)
	since := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	until := since.Add(time.Hour)
	const per = 150
	var first []stamped
	want := map[string]bool{}
	for _, p := range []int32{0, 2} {
		for i := range per {
			id := fmt.Sprintf("p%d-%d", p, i)
			first = append(first, stamped{p, id, since.Add(time.Duration(i) * time.Second)})
			want[id] = true
		}
	}
	// Partition 1 has a record, stamped before the window: empty in it.
	first = append(first, stamped{1, "p1-before", since.Add(-time.Minute)})
	// Partition 2 ends with a record past the grace: its span ends there.
	first = append(first, stamped{2, "p2-past-grace", until.Add(time.Hour)})
	produceTo(t, ctx, env.Brokers, env.Topic, first)

	s := settings(t, env.CastleURL, "kafka:"+env.Topic)
	s.Config.Kafka.Brokers, s.Config.Kafka.Topic = env.Brokers, env.Topic
	s.Since, s.Until = since, until
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	// The rate keeps the replay from reading everything at once, so the
	// interrupt lands mid-way.
	s.Rate = 100

	run1, stop := context.WithCancel(ctx)
	go func() {
		if env.Castle.WaitFor(run1, 100) == nil {
			stop()
		}
	}()
	_, err := replay.Execute(run1, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
	stop()
	if !errors.Is(err, replay.ErrInterrupted) {
		t.Fatalf("first run: %v, want interrupted", err)
	}
	firstRun := env.Castle.Stats().Accepted
	if firstRun == 0 || firstRun >= 2*per {
		t.Fatalf("the first run sent %d of %d: not interrupted mid-way", firstRun, 2*per)
	}

	// Records arrive: in the window, before it and after it, in the
	// partition that had none in the window; in the window at the end of
	// partition 0 (read on resume, like any record of its span), and
	// after partition 2's record past the grace (beyond its span: the
	// documented bound).
	produceTo(t, ctx, env.Brokers, env.Topic, []stamped{
		{1, "p1-old", since.Add(-2 * time.Minute)},
		{1, "p1-new-0", since.Add(10 * time.Minute)},
		{1, "p1-new-1", since.Add(20 * time.Minute)},
		{1, "p1-in-grace", until.Add(time.Minute)},
		{1, "p1-new-2", since.Add(30 * time.Minute)},
		{1, "p1-past-grace", until.Add(time.Hour)},
		{1, "p1-beyond", since.Add(40 * time.Minute)},
		{0, "p0-new", since.Add(50 * time.Minute)},
		{2, "p2-beyond", since.Add(50 * time.Minute)},
	})
	for _, id := range []string{"p1-new-0", "p1-new-1", "p1-new-2", "p0-new"} {
		want[id] = true
	}

	s.Resume, s.Rate = replay.ResumeOn, 0
	var out bytes.Buffer
	sum, err := replay.Execute(ctx, s, replay.Options{Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !sum.Finished {
		t.Errorf("the resumed replay did not finish")
	}
	// Nothing was deleted: the records before the window that arrived
	// in partition 1 are not reported as gone.
	if strings.Contains(out.String(), "skipped:") {
		t.Errorf("the resumed replay reports problems:\n%s", out.String())
	}
	got := sentByTraceID(env)
	sameSet(t, got, want)
}

// A replay without --until reads up to the log's end when it first
// starts. Its resume reads no further than the window it began: the
// records produced since (live traffic, which run delivers) are not sent,
// in a partition read to its end or one in progress.
func TestKafkaResumeWithoutUntilSendsNothingProducedSince(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2, Castle: castleserver.Config{MaxRecords: -1}}, 2*time.Minute)
	since := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	var history []stamped
	want := map[string]bool{}
	// Partition 0 has a few records, read to its end early; partition 1
	// many, still in progress at the interrupt.
	for p, n := range []int{5, 300} {
		for i := range n {
			id := fmt.Sprintf("p%d-%d", p, i)
			history = append(history, stamped{int32(p), id, since.Add(time.Duration(i) * time.Second)})
			want[id] = true
		}
	}
	produceTo(t, ctx, env.Brokers, env.Topic, history)

	s := settings(t, env.CastleURL, "kafka:"+env.Topic)
	s.Config.Kafka.Brokers, s.Config.Kafka.Topic = env.Brokers, env.Topic
	s.Since = since
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	s.Rate = 100 // so that the interrupt lands mid-way
	run1, stop := context.WithCancel(ctx)
	go func() {
		if env.Castle.WaitFor(run1, 100) == nil {
			stop()
		}
	}()
	_, err := replay.Execute(run1, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
	stop()
	if !errors.Is(err, replay.ErrInterrupted) {
		t.Fatalf("first run: %v, want interrupted", err)
	}
	if n := env.Castle.Stats().Accepted; n >= int64(len(want)) {
		t.Fatalf("the first run sent %d of %d: not interrupted mid-way", n, len(want))
	}

	// Live traffic, produced after the replay began, at the end of both
	// partitions.
	produceTo(t, ctx, env.Brokers, env.Topic, []stamped{{0, "live-0", time.Now()}, {1, "live-1", time.Now()}})

	s.Resume, s.Rate = replay.ResumeOn, 0
	if _, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	got := sentByTraceID(env)
	if got["live-0"]+got["live-1"] > 0 {
		t.Errorf("the resume sent live traffic produced after the replay began: %v", map[string]int{"live-0": got["live-0"], "live-1": got["live-1"]})
	}
	for id := range want {
		if got[id] == 0 {
			t.Errorf("%s of the window never sent", id)
		}
	}
}

// A Kafka replay's checkpoint of version 3 numbered the partitions with
// records in the window by position. It resumes, renumbered by partition,
// while those partitions are the same; once records arrived in one that
// had none it cannot say which partitions it meant, and is refused as
// before, saying what to do.
func TestKafkaCheckpointOfVersion3(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 3}, time.Minute)
	now := time.Now()
	var recs []stamped
	for _, p := range []int32{0, 2} {
		for i := range 10 {
			recs = append(recs, stamped{p, fmt.Sprintf("p%d-%d", p, i), now})
		}
	}
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	// Partition 0 done (unit #0), partition 2 (unit #1) up to offset 4
	// and offsets 6 and 7.
	cp := filepath.Join(t.TempDir(), "cp.json")
	v3 := `{"version":3,"replay":"sources=kafka:segment","done":1,"last":"segment/0",` +
		`"open":[{"seq":1,"name":"segment/2","next":4,"done":[[6,8]]}]}`
	write(t, cp, []byte(v3))
	resume := func(c *replay.Config) {
		c.Checkpoint, c.Resume, c.Describe = cp, replay.ResumeOn, "sources=kafka:segment"
	}
	r := dryRun(t, ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}, resume)
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"p2-4": true, "p2-5": true, "p2-8": true, "p2-9": true})
	c, err := replay.LoadCheckpoint(cp)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 4 || !c.Finished || len(c.After) != 3 {
		t.Errorf("checkpoint %+v, want version 4, finished, the 3 partitions done", c)
	}

	write(t, cp, []byte(v3))
	produceTo(t, ctx, env.Brokers, env.Topic, []stamped{{1, "p1-0", now}})
	r = dryRun(t, ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}, resume)
	if r.err == nil || !strings.Contains(r.err.Error(), `unit #1 is now "segment/1", the checkpoint names "segment/2"; start over without --resume`) {
		t.Errorf("resume of a version 3 checkpoint whose partitions changed: %v, want refused", r.err)
	}
	if r.out.Len() != 0 {
		t.Errorf("the refused resume sent:\n%s", r.out.String())
	}
	// Refused before anything was read, it is left as it was.
	if c, err := replay.LoadCheckpoint(cp); err != nil || c.Version != 3 || c.Done != 1 || c.Last != "segment/0" || len(c.Open) != 1 || c.Open[0].Next != 4 {
		t.Errorf("the checkpoint after a refused resume: %+v, %v; want version 3 as it was", c, err)
	}
}

// deleteRecords deletes a partition's records below offset, as retention
// does.
func deleteRecords(t *testing.T, brokers []string, topic string, partition int32, offset int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Error(err)
		return
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Error(err)
	}
}

// Records deleted (retention, DeleteRecords) after the replay looked the
// window up and before it read them cannot be sent: the Kafka client
// skips them without a word. The replay reports them, and ends when every
// record left of a partition's span was deleted, where it waited forever
// for a record past the span's end.
func TestKafkaRecordsDeletedUnderTheReplay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		below int64
		sent  int
	}{{4, 6}, {10, 0}} {
		t.Run("below "+itoa(int(c.below)), func(t *testing.T) {
			t.Parallel()
			env, err := harness.Start(harness.Options{Partitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(env.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			now := time.Now()
			recs := spread(10, 1, now)
			produceTo(t, ctx, env.Brokers, env.Topic, recs)
			// The first fetch waits while the records are deleted.
			var once atomic.Bool
			env.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
				if once.CompareAndSwap(false, true) {
					env.Cluster.SleepControl(func() { deleteRecords(t, env.Brokers, env.Topic, 0, c.below) })
				}
				return nil, nil, false
			})
			src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: 200 * time.Millisecond}
			cp := filepath.Join(t.TempDir(), "cp.json")
			r := dryRun(t, ctx, src, func(c *replay.Config) { c.Checkpoint = cp })
			if r.err != nil {
				t.Fatal(r.err)
			}
			if got := len(ids(t, r.out.Bytes())); got != c.sent {
				t.Errorf("sent %d, want %d", got, c.sent)
			}
			checkSummary(t, r, src, "skipped: segment/0: record 0: offsets 0 to "+itoa(int(c.below-1))+" were deleted (retention) before they were read: "+itoa(int(c.below))+" records not replayed")
			if p := src.Progress(); p.Done != 10 || p.Total != 10 {
				t.Errorf("progress %d of %d records, want 10 of 10", p.Done, p.Total)
			}
			if c, err := replay.LoadCheckpoint(cp); err != nil || !c.Finished {
				t.Errorf("checkpoint %+v, %v; want finished", c, err)
			}
		})
	}
}

// Records deleted between an interrupted run and its resume are reported
// too: the partition now starts past where the earlier run stopped.
func TestKafkaRecordsDeletedBeforeTheResume(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, 20*time.Second)
	now := time.Now()
	recs := spread(10, 1, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	cp := filepath.Join(t.TempDir(), "cp.json")
	write(t, cp, []byte(`{"version":4,"replay":"sources=kafka:segment","open":[{"seq":0,"name":"segment/0","next":2}]}`))
	deleteRecords(t, env.Brokers, env.Topic, 0, 5)
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}
	r := dryRun(t, ctx, src, func(c *replay.Config) {
		c.Checkpoint, c.Resume, c.Describe = cp, replay.ResumeOn, "sources=kafka:segment"
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"r-5": true, "r-6": true, "r-7": true, "r-8": true, "r-9": true})
	checkSummary(t, r, src, "skipped: segment/0: record 2: offsets 2 to 4 were deleted (retention) before they were read: 3 records not replayed")
}

// A partition that cannot be fetched (its leader closes every fetch) holds
// the replay, as it holds run, but not in silence: the Kafka client
// retries inside itself and only logs, and the replay passes its lines on
// as a WARN (the replay said nothing). Interrupted, it saves what the
// other partitions sent.
func TestKafkaReplayLogsAPartitionItCannotFetch(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2}, 30*time.Second)
	now := time.Now()
	recs := spread(10, 2, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		for _, rt := range kr.(*kmsg.FetchRequest).Topics {
			for _, rp := range rt.Partitions {
				if rp.Partition == 1 {
					return nil, errors.New("partition 1 unavailable"), true // closes the connection
				}
			}
		}
		return nil, nil, false
	})
	// Interrupted once it has said so (a WARN, then DEBUG lines as the
	// client retries) and partition 0 is read.
	core, logs := observer.New(zap.DebugLevel)
	run, interrupt := context.WithCancel(ctx)
	defer interrupt()
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}
	var warned atomic.Bool
	log := zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		if strings.Contains(e.Message, "partition 1 of "+env.Topic) {
			if e.Level == zap.WarnLevel {
				warned.Store(true)
			}
			if warned.Load() && src.Progress().Done >= 5 {
				interrupt()
			}
		}
		return nil
	}))
	src.Logger = log
	cp := filepath.Join(t.TempDir(), "cp.json")
	r := dryRun(t, run, src, func(c *replay.Config) { c.Checkpoint, c.Logger = cp, log })
	if !errors.Is(r.err, replay.ErrInterrupted) {
		t.Fatalf("replay: %v, want interrupted", r.err)
	}
	if ctx.Err() != nil || logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("partition 1 of "+env.Topic).Len() != 1 {
		t.Fatal("no WARN about partition 1 before the deadline")
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"r-0": true, "r-2": true, "r-4": true, "r-6": true, "r-8": true})
	if c, err := replay.LoadCheckpoint(cp); err != nil || c.Finished || len(c.After) != 1 || c.After[0].Name != env.Topic+"/0" {
		t.Errorf("checkpoint %+v, %v; want partition 0 done, not finished", c, err)
	}
}

// A topic deleted while it is replayed fails the replay, saying so: the
// records left of the window are gone, and the Kafka client would retry
// them for ever (the replay waited in silence).
func TestKafkaTopicDeletedUnderTheReplay(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 4}, 30*time.Second)
	now := time.Now()
	recs := spread(40, 4, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	var once atomic.Bool
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		if once.CompareAndSwap(false, true) {
			env.Cluster.SleepControl(func() {
				cl, err := kgo.NewClient(kgo.SeedBrokers(env.Brokers...))
				if err != nil {
					t.Error(err)
					return
				}
				defer cl.Close()
				req := kmsg.NewPtrDeleteTopicsRequest()
				rt := kmsg.NewDeleteTopicsRequestTopic()
				rt.Topic = kmsg.StringPtr(env.Topic)
				req.Topics, req.TopicNames = append(req.Topics, rt), []string{env.Topic}
				if _, err := req.RequestWith(context.Background(), cl); err != nil {
					t.Error(err)
				}
			})
		}
		return nil, nil, false
	})
	r := dryRun(t, ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: 200 * time.Millisecond}, nil)
	if ctx.Err() != nil || r.err == nil || !strings.Contains(r.err.Error(), "replay source kafka:"+env.Topic+": the topic was deleted while partition") {
		t.Errorf("replay: %v, want it failed saying the topic was deleted", r.err)
	}
	// The partitions stopped because of it do not add "context canceled".
	if r.err != nil && strings.Contains(r.err.Error(), "context canceled") {
		t.Errorf("replay: %q, want the cause alone", r.err)
	}
}

// The summary of a resumed kafka: replay counts what it skipped as done
// in partitions, and the records of a partition it resumed past, not
// "whole records".
func TestKafkaResumeSummary(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2}, 20*time.Second)
	now := time.Now()
	recs := spread(20, 2, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	cp := filepath.Join(t.TempDir(), "cp.json")
	write(t, cp, []byte(`{"version":4,"replay":"sources=kafka:segment","after":[{"seq":0,"name":"segment/0","end":10}],"open":[{"seq":1,"name":"segment/1","next":4}]}`))
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}
	r := dryRun(t, ctx, src, func(c *replay.Config) {
		c.Checkpoint, c.Resume, c.Describe = cp, replay.ResumeOn, "sources=kafka:segment"
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"r-9": true, "r-11": true, "r-13": true, "r-15": true, "r-17": true, "r-19": true})
	checkSummary(t, r, src, "skipped as done in an earlier run (--resume): 4 records and 1 whole partitions\n")
}

// A sharded kafka: replay of 64 partitions, three empty in the window
// (SPEC's indexed Job): each shard interrupted mid-way, records arriving
// in one of them (20, before most others), each shard resumed. Castle
// gets every event of the window once, the shards' parts disjoint and
// together the whole.
func TestKafkaShardsOf64PartitionsResume(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 64, Castle: castleserver.Config{MaxRecords: -1, RateLimitOff: true}}, 2*time.Minute)
	since := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	until := since.Add(time.Hour)
	var recs []stamped
	want := map[string]bool{}
	empty := map[int32]bool{20: true, 41: true, 63: true}
	for i := range 640 {
		p := int32(i % 64)
		if empty[p] {
			continue
		}
		id := fmt.Sprintf("s-%d", i)
		recs = append(recs, stamped{p, id, since.Add(time.Duration(i) * time.Second)})
		want[id] = true
	}
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	var shards []replay.Settings
	for i := range 2 {
		s := settings(t, env.CastleURL, "kafka:"+env.Topic)
		s.Config.Kafka.Brokers, s.Config.Kafka.Topic = env.Brokers, env.Topic
		s.Since, s.Until = since, until
		s.Shard = replay.Shard{Index: i, Count: 2}
		s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
		s.Rate = 200 // reads a second ahead: the interrupt lands mid-way
		before := env.Castle.Stats().Accepted
		run, interrupt := context.WithCancel(ctx)
		go func() {
			if env.Castle.WaitFor(run, int(before)+100) == nil {
				interrupt()
			}
		}()
		_, err := replay.Execute(run, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
		interrupt()
		if !errors.Is(err, replay.ErrInterrupted) {
			t.Fatalf("shard %d: %v, want interrupted", i, err)
		}
		shards = append(shards, s)
	}
	var late []stamped
	for i := range 20 {
		id := fmt.Sprintf("late-%d", i)
		late = append(late, stamped{20, id, since.Add(time.Minute)})
		want[id] = true
	}
	produceTo(t, ctx, env.Brokers, env.Topic, late)
	for i, s := range shards {
		s.Resume, s.Rate = replay.ResumeOn, 0
		sum, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
		if err != nil || !sum.Finished || sum.Skipped == 0 {
			t.Fatalf("shard %d resumed: %v, finished %v, %d records skipped as done", i, err, sum.Finished, sum.Skipped)
		}
	}
	got := sentByTraceID(env)
	sameSet(t, got, want)
}

// A topic deleted and created again under the replay (by its operator, or
// by a broker that auto-creates topics, at a client's metadata request:
// the replay's own reader asks for that) starts its offsets again from 0:
// the records left of the window are gone as surely as when it stays
// deleted, and the new log ends before where the replay is. The replay
// fails saying so; it waited for ever for offsets the new log may never
// reach (or read the new topic's records in their place).
func TestKafkaTopicRecreatedUnderTheReplay(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2}, 20*time.Second)
	now := time.Now()
	recs := spread(20, 2, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	// The first fetch waits while the topic is deleted and created again.
	var once atomic.Bool
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		if once.CompareAndSwap(false, true) {
			env.Cluster.SleepControl(func() {
				adminRequest(t, env.Brokers, func() kmsg.Request {
					req := kmsg.NewPtrDeleteTopicsRequest()
					rt := kmsg.NewDeleteTopicsRequestTopic()
					rt.Topic = kmsg.StringPtr(env.Topic)
					req.Topics, req.TopicNames = append(req.Topics, rt), []string{env.Topic}
					return req
				}())
				adminRequest(t, env.Brokers, func() kmsg.Request {
					req := kmsg.NewPtrCreateTopicsRequest()
					rt := kmsg.NewCreateTopicsRequestTopic()
					rt.Topic, rt.NumPartitions, rt.ReplicationFactor = env.Topic, 2, 1
					req.Topics = append(req.Topics, rt)
					return req
				}())
			})
		}
		return nil, nil, false
	})
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: 200 * time.Millisecond}
	r := dryRun(t, ctx, src, nil)
	if ctx.Err() != nil || r.err == nil || !strings.Contains(r.err.Error(), "replay source kafka:"+env.Topic+": the topic was deleted while partition") {
		t.Errorf("replay: %v, want it failed saying the topic was deleted", r.err)
	}
}

// adminRequest sends an admin request to the brokers.
func adminRequest(t *testing.T, brokers []string, req kmsg.Request) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	if _, err := cl.Request(context.Background(), req); err != nil {
		t.Error(err)
	}
}

// A lookup that answers once that the topic is missing (a broker whose
// metadata lags, a partition moving) does not fail the replay: only two
// idle checks in a row do, with no record read between them. Here the
// partition's fetch stalls twice, the records read in between, and one
// lookup of each stall answers that the topic is missing.
func TestKafkaTopicMissingOnceInEachOfTwoStalls(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, 20*time.Second)
	// Records of 300 KB: a fetch (1 MiB) brings three or four.
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Brokers...), kgo.DefaultProduceTopic(env.Topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pad := strings.Repeat("x", 300<<10)
	for i := range 10 {
		v := append([]byte(`{"pad":"`+pad+`",`), kafkaTrack("r-"+itoa(i), time.Now())[1:]...)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The first fetch, and the third (records read since), wait until a
	// lookup was answered that the topic is missing.
	var fetches atomic.Int32
	var answered chan struct{}
	var mu sync.Mutex
	done := make(chan struct{})
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		if n := fetches.Add(1); n == 1 || n == 3 {
			a := make(chan struct{})
			mu.Lock()
			answered = a
			mu.Unlock()
			env.Cluster.SleepControl(func() {
				select {
				case <-a:
				case <-done:
				}
			})
		}
		return nil, nil, false
	})
	env.Cluster.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		if answered == nil {
			return nil, nil, false
		}
		select {
		case <-answered:
			return nil, nil, false
		default:
		}
		close(answered)
		req := kr.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: 200 * time.Millisecond}
	r := dryRun(t, ctx, src, nil)
	close(done)
	if r.err != nil {
		t.Fatalf("replay: %v, want it finished", r.err)
	}
	if n := fetches.Load(); n < 3 {
		t.Fatalf("%d fetches: the partition did not stall twice", n)
	}
	if r.sum.Consumed != 10 {
		t.Errorf("%d records consumed, want 10", r.sum.Consumed)
	}
}

// Records deleted before the resume that the earlier run had sent (done
// above where the checkpoint's partition was done up to: acknowledged
// before records below them) are not reported as not replayed.
func TestKafkaRecordsDeletedBeforeTheResumeSomeSent(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, 20*time.Second)
	now := time.Now()
	recs := spread(10, 1, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	cp := filepath.Join(t.TempDir(), "cp.json")
	write(t, cp, []byte(`{"version":4,"replay":"sources=kafka:segment","open":[{"seq":0,"name":"segment/0","next":2,"done":[[5,8]]}]}`))
	deleteRecords(t, env.Brokers, env.Topic, 0, 9)
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}
	r := dryRun(t, ctx, src, func(c *replay.Config) {
		c.Checkpoint, c.Resume, c.Describe = cp, replay.ResumeOn, "sources=kafka:segment"
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"r-9": true})
	summary := checkSummary(t, r, src,
		"segment/0: record 2: offsets 2 to 4 were deleted (retention) before they were read: 3 records not replayed",
		"segment/0: record 8: offsets 8 to 8 were deleted (retention) before they were read: 1 records not replayed")
	if strings.Contains(summary, "offsets 2 to 8") {
		t.Errorf("the summary reports records sent before the resume as not replayed:\n%s", summary)
	}
}

// A partition whose fetch stalls for several idle checks (a broker pause)
// with its records all there is read on once the fetch comes back: the
// idle check ends a partition only when its records were deleted.
func TestKafkaPartitionStalledPastIdleCheckIsReadOn(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, 20*time.Second)
	now := time.Now()
	var recs []stamped
	want := map[string]bool{}
	for i := range 10 {
		recs = append(recs, stamped{0, "r-" + itoa(i), now})
		want["r-"+itoa(i)] = true
	}
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	// The first fetch waits for three idle checks' lookups (each looks
	// up the first offset and the log's end).
	var stalled atomic.Bool
	var lookups atomic.Int32
	looked := make(chan struct{})
	done := make(chan struct{})
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		stalled.Store(true)
		env.Cluster.SleepControl(func() {
			select {
			case <-looked:
			case <-done:
			}
		})
		return nil, nil, false
	})
	env.Cluster.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		if stalled.Load() && lookups.Add(1) == 6 {
			close(looked)
		}
		return nil, nil, false
	})
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: 100 * time.Millisecond}
	r := dryRun(t, ctx, src, nil)
	close(done)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if lookups.Load() < 6 {
		t.Fatalf("%d lookups: the fetch did not stall past three idle checks", lookups.Load())
	}
	sameSet(t, ids(t, r.out.Bytes()), want)
	if problems, n := src.Problems(); n != 0 {
		t.Errorf("problems reported: %v", problems)
	}
}

// Records deleted under the replay are reported though the lookup that
// came with the gap failed (a broker restarting, a leader moving): a
// later lookup, at the latest when the partition is read, tells.
func TestKafkaRecordsDeletedUnderTheReplayLookupFails(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, 20*time.Second)
	now := time.Now()
	recs := spread(10, 1, now)
	produceTo(t, ctx, env.Brokers, env.Topic, recs)
	// The first fetch waits while the records below 4 are deleted; the
	// replay's first lookup of the partition's first offset after that
	// fails.
	var failed atomic.Bool
	deleteAtFirstFetch(t, env, 4, func() bool { return failed.CompareAndSwap(false, true) })
	// No idle check comes before the partition is read: the gap's lookup
	// is the one that fails.
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: time.Minute}
	r := dryRun(t, ctx, src, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !failed.Load() {
		t.Fatal("no lookup failed")
	}
	if got := len(ids(t, r.out.Bytes())); got != 6 {
		t.Errorf("sent %d, want 6", got)
	}
	checkSummary(t, r, src, "skipped: segment/0: record 0: offsets 0 to 3 were deleted (retention) before they were read: 4 records not replayed")
}

// A topic deleted and created again between an interrupted run and its
// resume starts its offsets again: where the checkpoint has a partition
// is past the new log's end, and what the old topic had left of the
// window is gone. The resume is refused, saying so; it finished as if
// the partition were done, sending nothing and reporting nothing.
func TestKafkaResumeAfterTheTopicWasCreatedAgain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, cp string }{
		{"in progress", `{"version":4,"replay":"sources=kafka:segment","open":[{"seq":0,"name":"segment/0","next":8}]}`},
		{"finished", `{"version":4,"replay":"sources=kafka:segment","after":[{"seq":0,"name":"segment/0","end":10}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env, err := harness.Start(harness.Options{Partitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(env.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			now := time.Now()
			// The new topic has 3 records; the old one had 10.
			produceTo(t, ctx, env.Brokers, env.Topic, []stamped{{0, "new-0", now}, {0, "new-1", now}, {0, "new-2", now}})
			cp := filepath.Join(t.TempDir(), "cp.json")
			write(t, cp, []byte(c.cp))
			r := dryRun(t, ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}, func(c *replay.Config) {
				c.Checkpoint, c.Resume, c.Describe = cp, replay.ResumeOn, "sources=kafka:segment"
			})
			if r.err == nil || !strings.Contains(r.err.Error(), "partition 0 now ends at offset 3, before offset "+map[string]string{"in progress": "8", "finished": "10"}[c.name]) {
				t.Errorf("resume: %v, want refused saying the partition ends before where the checkpoint has it", r.err)
			}
			if r.out.Len() != 0 {
				t.Errorf("the refused resume sent:\n%s", r.out.String())
			}
		})
	}
}

// kafkaEnv starts a broker and a Castle-compatible server, closed when the
// test ends, and a context for the test that ends after d.
func kafkaEnv(t *testing.T, o harness.Options, d time.Duration) (*harness.Env, context.Context) {
	t.Helper()
	env, err := harness.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return env, ctx
}

// checkSummary prints the summary of the replay r of src, fails t for
// each of wants it does not say, and returns it.
func checkSummary(t *testing.T, r *run, src replay.Source, wants ...string) string {
	t.Helper()
	var b bytes.Buffer
	replay.PrintSummary(&b, r.sum, src)
	for _, want := range wants {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the summary does not say %q:\n%s", want, b.String())
		}
	}
	return b.String()
}

// deleteAtFirstFetch makes partition 0's first fetch wait while its
// records below offset end are deleted; after that, each of the replay's
// lookups of the partition's first offset (not the Kafka reader's own, of
// version 1) fails with NotLeaderForPartition when fail says so.
func deleteAtFirstFetch(t *testing.T, env *harness.Env, end int64, fail func() bool) {
	var fetched atomic.Bool
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		if fetched.CompareAndSwap(false, true) {
			env.Cluster.SleepControl(func() { deleteRecords(t, env.Brokers, env.Topic, 0, end) })
		}
		return nil, nil, false
	})
	env.Cluster.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		req := kr.(*kmsg.ListOffsetsRequest)
		if !fetched.Load() || req.Version < 2 || req.Topics[0].Partitions[0].Timestamp != -2 || !fail() {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		resp.Version = req.Version
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = req.Topics[0].Topic
		sp := kmsg.NewListOffsetsResponseTopicPartition()
		sp.Partition, sp.ErrorCode = 0, kerr.NotLeaderForPartition.Code
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		return resp, nil, true
	})
}

// sentByTraceID counts the events Castle accepted by their trace_id
// property (the id kafkaTrack gives a record).
func sentByTraceID(env *harness.Env) map[string]int {
	got := map[string]int{}
	for _, r := range env.Castle.Accepted() {
		id, _ := r.Properties["trace_id"].(string)
		got[id]++
	}
	return got
}

// spread is n records r-0, r-1, ... stamped at, dealt over the first
// parts partitions in turn.
func spread(n int, parts int32, at time.Time) []stamped {
	recs := make([]stamped, n)
	for i := range recs {
		recs[i] = stamped{int32(i) % parts, "r-" + itoa(i), at}
	}
	return recs
}

// A Kafka replay without --until fixes its window's end at the start, and
// the checkpoint keeps it before anything is sent: a crash before the
// first periodic save must not leave a checkpoint whose resume ends the
// window at its own start, sending what was produced in between (the
// live traffic run delivers).
func TestKafkaReplayKeepsTheWindowsEndBeforeSending(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, time.Minute)
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	produceTo(t, ctx, env.Brokers, env.Topic, []stamped{{0, "a", at}, {0, "b", at.Add(time.Second)}})

	path := filepath.Join(t.TempDir(), "cp.json")
	var onDisk *replay.Checkpoint // what a crash at the first send leaves
	var loadErr error
	var once sync.Once
	deliver := deliverFunc(func(ctx context.Context, evs []destinationEvent, settled func(int, destinationResult)) {
		once.Do(func() { onDisk, loadErr = replay.LoadCheckpoint(path) })
		for i := range evs {
			settled(i, destinationResult{Status: destination.Delivered})
		}
	})
	sum, err := replay.Run(ctx, &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic}, replay.Config{
		Pipeline: pipeline.Config{Batch: destinationBatch()}, Mapper: mapping.New(mapping.Config{}), Deliverer: deliver,
		DeadLetters: deadletter.SinkFunc(func(context.Context, ...deadletter.Letter) error { return nil }),
		Registry:    prometheus.NewRegistry(), Checkpoint: path, SaveEvery: time.Hour, // no periodic save in the test
	})
	if err != nil || sum.Sent() != 2 {
		t.Fatalf("replay: %v, %d sent; want nil, 2", err, sum.Sent())
	}
	if loadErr != nil {
		t.Fatalf("the checkpoint at the first send: %v", loadErr)
	}
	if onDisk.Until.IsZero() {
		t.Fatalf("at the first send the checkpoint keeps no end of the window (until): a crash then resumes up to the log's end at the resume")
	}
	final, err := replay.LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if !final.Until.Equal(onDisk.Until) {
		t.Errorf("the window's end moved: %v at the first send, %v at the end", onDisk.Until, final.Until)
	}
}

// Without --until the window ends at the replay's first start, by this
// host's clock: a record already in the log then but stamped later (its
// producer's clock ahead) is outside it, read and not sent. The summary
// says where the window ended, not "--until", which was not given.
func TestKafkaReplayWithoutUntilSaysWhereTheWindowEnded(t *testing.T) {
	t.Parallel()
	env, err := harness.Start(harness.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now()
	produceTo(t, ctx, env.Brokers, env.Topic, []stamped{
		{0, "past", now.Add(-time.Hour)},
		{0, "ahead", now.Add(2 * time.Minute)}, // a producer's clock 2 minutes ahead
	})
	srv, castleURL := castleServer(t, 0)
	s := settings(t, castleURL, "kafka:"+env.Topic)
	s.Config.Kafka.Brokers, s.Config.Kafka.Topic = env.Brokers, env.Topic
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	var out bytes.Buffer
	sum, err := replay.Execute(ctx, s, replay.Options{Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Stats().Accepted; n != 1 || sum.Sent() != 1 {
		t.Fatalf("Castle accepted %d, the summary says %d sent; want 1 (the record stamped before the start)", n, sum.Sent())
	}
	cp, err := replay.LoadCheckpoint(s.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	for l := range strings.Lines(out.String()) {
		if strings.Contains(l, "outside") {
			line = l
		}
	}
	end := cp.Until.UTC().Format(time.RFC3339)
	if !strings.HasPrefix(line, "1 Kafka record") || !strings.Contains(line, "first start") || !strings.Contains(line, end) {
		t.Fatalf("the summary says of the record outside the window: %q; want it to name the replay's first start, %s, where the window ended", line, end)
	}
}

// A kafka: replay names its topic either way, kafka: (KAFKA_TOPIC) or
// kafka:TOPIC: a resume may spell it the other way and continues where
// the last run stopped, sending nothing twice. A resume naming another
// topic, either way, is refused before anything is sent.
func TestKafkaResumeNamesTheTopicEitherWay(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2, Castle: castleserver.Config{MaxRecords: -1}}, 2*time.Minute)
	since := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	recs := spread(300, 2, since)
	want := map[string]bool{}
	for _, r := range recs {
		want[r.id] = true
	}
	produceTo(t, ctx, env.Brokers, env.Topic, recs)

	checkpoint := filepath.Join(t.TempDir(), "cp.json")
	named := func(source, topic string) replay.Settings {
		s := settings(t, env.CastleURL, source)
		s.Config.Kafka.Brokers, s.Config.Kafka.Topic = env.Brokers, topic
		s.Since, s.Until = since, since.Add(time.Hour)
		s.Checkpoint, s.Resume = checkpoint, replay.ResumeOn
		s.Rate = 100 // so that the interrupts land mid-way
		return s
	}
	for run, c := range []struct {
		s      replay.Settings
		stopAt int
	}{
		{named("kafka:", env.Topic), 50},
		{named("kafka:"+env.Topic, env.Topic), 150},
		{named("kafka:", env.Topic), 0},
	} {
		if run == 0 {
			c.s.Resume = replay.ResumeOff
		}
		if c.stopAt == 0 {
			c.s.Rate = 0
		}
		runCtx, stop := context.WithCancel(ctx)
		if c.stopAt > 0 {
			go func() {
				if env.Castle.WaitFor(runCtx, c.stopAt) == nil {
					stop()
				}
			}()
		}
		_, err := replay.Execute(runCtx, c.s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
		stop()
		if c.stopAt > 0 && !errors.Is(err, replay.ErrInterrupted) || c.stopAt == 0 && err != nil {
			t.Fatalf("run %d (%s, KAFKA_TOPIC %s): %v", run, c.s.Sources[0], c.s.Config.Kafka.Topic, err)
		}
		if n := env.Castle.Stats().Accepted; c.stopAt > 0 && n >= int64(len(want)) {
			t.Fatalf("run %d sent %d of %d: not interrupted mid-way", run, n, len(want))
		}
		if run > 0 {
			continue
		}
		// Another topic, named either way: refused, nothing sent.
		before := env.Castle.Stats().Requests
		for _, other := range []replay.Settings{named("kafka:other", "other"), named("kafka:", "other")} {
			_, err := replay.Execute(ctx, other, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
			var se *replay.SettingError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), "the checkpoint of another replay") {
				t.Errorf("resume of %s with KAFKA_TOPIC %s: %v, want refused as another replay's", other.Sources[0], other.Config.Kafka.Topic, err)
			}
		}
		if n := env.Castle.Stats().Requests; n != before {
			t.Errorf("the refused resumes sent %d requests", n-before)
		}
	}
	sameSet(t, sentByTraceID(env), want)
}

// A checkpoint written before a kafka: source was described by its topic
// names a bare kafka: as given ("sources=kafka:"), the topic only in its
// partitions' names. It resumes under either spelling of that topic, and
// is saved under the topic's name; one whose partitions are another
// topic's is refused.
func TestKafkaResumeOfACheckpointNamingTheTopicAsGiven(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2, Castle: castleserver.Config{MaxRecords: -1}}, time.Minute)
	since := time.Now().Add(-time.Hour).Truncate(time.Second)
	until := since.Add(30 * time.Minute)
	produceTo(t, ctx, env.Brokers, env.Topic, spread(20, 2, since))
	// r-1, r-3, ... are partition 1's offsets 0, 1, ...: partition 0 done,
	// partition 1 up to offset 4 and offsets 6 and 7.
	window := " since=" + since.UTC().Format(time.RFC3339Nano) + " until=" + until.UTC().Format(time.RFC3339Nano)
	asGiven := func(topic string) []byte {
		return []byte(`{"version":4,"replay":"sources=kafka:` + window + `","done":0,` +
			`"after":[{"seq":0,"name":"` + topic + `/0","end":10}],` +
			`"open":[{"seq":1,"name":"` + topic + `/1","next":4,"done":[[6,8]]}]}`)
	}
	resume := func(source string) replay.Settings {
		s := settings(t, env.CastleURL, source)
		s.Config.Kafka.Brokers, s.Config.Kafka.Topic = env.Brokers, env.Topic
		s.Since, s.Until = since, until
		s.Checkpoint, s.Resume = filepath.Join(t.TempDir(), "cp.json"), replay.ResumeOn
		return s
	}

	for _, source := range []string{"kafka:", "kafka:" + env.Topic} {
		s := resume(source)
		write(t, s.Checkpoint, asGiven(env.Topic))
		env.Castle.Reset()
		if _, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard}); err != nil {
			t.Fatalf("resume as %s: %v", source, err)
		}
		sameSet(t, sentByTraceID(env), map[string]bool{"r-9": true, "r-11": true, "r-17": true, "r-19": true})
		c, err := replay.LoadCheckpoint(s.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		if want := "sources=kafka:" + env.Topic + window; !c.Finished || c.Replay != want {
			t.Errorf("resume as %s: checkpoint finished %v as %q; want finished as %q", source, c.Finished, c.Replay, want)
		}
	}

	s := resume("kafka:" + env.Topic)
	write(t, s.Checkpoint, asGiven("other"))
	env.Castle.Reset()
	_, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, Stderr: io.Discard})
	var se *replay.SettingError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "the checkpoint of another replay") {
		t.Errorf("resume of another topic's checkpoint: %v, want refused as another replay's", err)
	}
	if n := env.Castle.Stats().Requests; n != 0 {
		t.Errorf("the refused resume sent %d requests", n)
	}
}

// A partition whose fetches the broker refuses (here not authorized: an
// ACL changed under the replay) holds the replay, as it holds run, and
// says so, at the reader's own pace. kafka-go hands such an error to the
// fetch instead of logging it; the replay dropped it without a word and
// took it for an idle check, looking the partition's offsets up again
// at every retry of the reader's.
func TestKafkaReplayWarnsOfARefusedFetch(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 2}, 30*time.Second)
	produceTo(t, ctx, env.Brokers, env.Topic, spread(10, 2, time.Now()))
	run, interrupt := context.WithCancel(ctx)
	defer interrupt()
	// No idle check is due while the test runs: any lookup of partition
	// 1's offsets after a refusal is one the refusal caused.
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: time.Hour}
	var refused, lookups atomic.Int64
	env.Cluster.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		if len(req.Topics) != 1 || len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Partition != 1 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = req.Topics[0].Topic, req.Topics[0].TopicID
		sp := kmsg.NewFetchResponseTopicPartition()
		sp.Partition, sp.ErrorCode, sp.HighWatermark, sp.LastStableOffset = 1, kerr.TopicAuthorizationFailed.Code, -1, -1
		st.Partitions = append(st.Partitions, sp)
		resp.Topics = append(resp.Topics, st)
		// Interrupted once the reader retried a few times and partition
		// 0 is read.
		if refused.Add(1) >= 5 && src.Progress().Done >= 5 {
			interrupt()
		}
		return resp, nil, true
	})
	env.Cluster.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		env.Cluster.KeepControl()
		req := kr.(*kmsg.ListOffsetsRequest)
		// The replay's lookups (version 2 and up), not the reader's own.
		if refused.Load() > 0 && req.Version >= 2 && req.Topics[0].Partitions[0].Partition == 1 {
			lookups.Add(1)
		}
		return nil, nil, false
	})
	core, logs := observer.New(zap.DebugLevel)
	src.Logger = zap.New(core)
	r := dryRun(t, run, src, func(c *replay.Config) { c.Checkpoint, c.Logger = filepath.Join(t.TempDir(), "cp.json"), src.Logger })
	if !errors.Is(r.err, replay.ErrInterrupted) {
		t.Fatalf("replay: %v, want interrupted", r.err)
	}
	if ctx.Err() != nil {
		t.Fatal("the test's deadline passed: partition 0 not read, or partition 1 never fetched")
	}
	sameSet(t, ids(t, r.out.Bytes()), map[string]bool{"r-0": true, "r-2": true, "r-4": true, "r-6": true, "r-8": true})
	warned := logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("partition 1 of " + env.Topic).FilterMessageSnippet("Topic Authorization Failed")
	if warned.Len() != 1 {
		t.Errorf("%d WARNs naming partition 1 and the refusal after %d refused fetches, want 1 (throttled)", warned.Len(), refused.Load())
	}
	if n := lookups.Load(); n > 0 {
		t.Errorf("%d lookups of partition 1's offsets after %d refused fetches, no idle check due: want none", n, refused.Load())
	}
}

// Records deleted under the replay whose every lookup fails, up to the
// partition's end, cannot be told from records compacted away: the
// summary reports the gap, and that the lookup to tell failed.
func TestKafkaRecordsMissingUnderTheReplayEveryLookupFails(t *testing.T) {
	t.Parallel()
	env, ctx := kafkaEnv(t, harness.Options{Partitions: 1}, 20*time.Second)
	produceTo(t, ctx, env.Brokers, env.Topic, spread(10, 1, time.Now()))
	// The first fetch waits while the records below 4 are deleted; every
	// lookup of the partition's first offset after that fails.
	var failed atomic.Int64
	deleteAtFirstFetch(t, env, 4, func() bool { failed.Add(1); return true })
	src := &replay.Kafka{Brokers: env.Brokers, Topic: env.Topic, IdleCheck: time.Minute}
	r := dryRun(t, ctx, src, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if n := failed.Load(); n != 2 {
		t.Errorf("%d lookups failed, want 2: the gap's and the partition's end's", n)
	}
	if got := len(ids(t, r.out.Bytes())); got != 6 {
		t.Errorf("sent %d, want 6", got)
	}
	checkSummary(t, r, src, "skipped: segment/0: record 0: offsets 0 to 3 were not in the log when read (deleted by retention, or compacted away); the lookup to tell failed: ")
}
