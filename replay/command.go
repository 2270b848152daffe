package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/worker"
)

// Settings are the replay subcommand's settings, parsed and validated by
// the command line.
type Settings struct {
	// Config holds the settings shared with run: Castle, mapping,
	// batching, logs, the shutdown timeout (the drain time of an
	// interrupted replay), and Kafka for kafka:TOPIC sources and DLQ_TOPIC.
	Config config.Config
	// Sources are files, directories, "-" (stdin), one kafka:TOPIC or one
	// s3://BUCKET/PREFIX.
	Sources      []string
	Since, Until time.Time
	Rate         float64
	DryRun       bool
	// Checkpoint is the progress file ("" none). It is not used with
	// --dry-run or stdin.
	Checkpoint string
	Resume     Resume
	Shard      Shard
	// Progress is auto (a bar on a terminal, lines otherwise), bar, lines
	// or off.
	Progress string
}

// Options are what the caller supplies; zero values get defaults.
type Options struct {
	Logger   *zap.Logger
	Registry *prometheus.Registry // default worker.NewRegistry()
	Stdin    io.Reader
	// Stdout receives the summary (and the dry run's requests, in which
	// case the summary goes to Stderr); Stderr the progress.
	Stdout, Stderr io.Writer
	// Terminal says Stderr is a terminal (progress as a redrawn bar).
	Terminal bool
	// HTTPClient talks to Castle (default: the Castle client's own).
	HTTPClient *http.Client
	// S3 is the S3 client of s3:// sources (default NewS3Client).
	S3 S3API
}

// IsS3 reports whether a source names an S3 archive.
func IsS3(source string) bool { return strings.HasPrefix(source, "s3://") }

// IsKafka reports whether a source names a Kafka topic.
func IsKafka(source string) bool { return strings.HasPrefix(source, "kafka:") }

// Execute runs the replay subcommand: it assembles the mapping, the
// Castle client (or the dry run's printer), the dead-letter sink and the
// source from s, replays, and prints the summary. It returns
// ErrInterrupted after an interrupt (the checkpoint saved), a
// *SettingError when a setting cannot work (nothing sent), and the
// summary in both cases.
func Execute(ctx context.Context, s Settings, o Options) (Summary, error) {
	if len(s.Sources) == 0 {
		// The command line refuses it too; the source and the checkpoint's
		// name are read from the first.
		return Summary{}, &SettingError{errors.New("replay: no source given (files, directories, - for stdin, s3://BUCKET/PREFIX or kafka:TOPIC)")}
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	reg := o.Registry
	if reg == nil {
		reg = worker.NewRegistry()
	}
	cfg := s.Config

	mapper, err := worker.NewReplayMapper(cfg)
	if err != nil {
		return Summary{}, &SettingError{err}
	}
	board, err := hold.New(log.Named("hold"), reg, hold.Options{})
	if err != nil {
		return Summary{}, err
	}
	var deliver pipeline.Deliverer
	var check func(context.Context) error
	var dry *DryRun
	if s.DryRun {
		dry = NewDryRun(o.Stdout)
		deliver = dry
	} else {
		castle, err := worker.NewCastle(cfg.Castle, log.Named("castle"), reg, o.HTTPClient, board)
		if err != nil {
			return Summary{}, err
		}
		defer castle.Close()
		check = func(ctx context.Context) error {
			return checkCastle(ctx, castle, board, max(3*cfg.Castle.Timeout, 30*time.Second))
		}
		deliver = castle
	}
	ccfg, err := worker.ConsumerConfig(cfg)
	if err != nil {
		return Summary{}, &SettingError{err}
	}
	dlq, dlqCloser, err := deadletter.NewSink(ccfg.Cluster(), cfg.Kafka.DLQTopic, log.Named("deadletter"), reg)
	if err != nil {
		return Summary{}, err
	}
	defer dlqCloser.Close()

	src, err := s.source(ctx, ccfg, o, log)
	if err != nil {
		return Summary{}, err
	}
	pcfg := worker.PipelineConfig(cfg, time.Now, board)
	// History goes to /v1/log only: scoring old events would fire Castle's
	// policies and webhooks now.
	pcfg.Scoring, pcfg.Verdicts = false, nil
	if !s.Since.IsZero() || !s.Until.IsZero() {
		pcfg.Keep = Window(s.Since, s.Until)
	}
	rcfg := Config{
		Pipeline: pcfg, Mapper: mapper, Deliverer: deliver, DeadLetters: dlq,
		Rate: s.Rate, Logger: log, Registry: reg,
		Shard: s.Shard, Resume: s.Resume, Describe: s.Describe(), DescribedEarlier: s.describedEarlier,
		DrainTimeout: cfg.Ops.ShutdownTimeout, Held: board.Holding, Check: check,
	}
	if !s.DryRun && !slices.Contains(s.Sources, "-") {
		rcfg.Checkpoint = s.Checkpoint
	} else if s.Resume == ResumeOn {
		return Summary{}, &SettingError{errors.New("REPLAY_RESUME (--resume): a dry run or a replay of stdin keeps no checkpoint to resume from")}
	} else {
		rcfg.Resume = ResumeOff
	}
	switch s.Progress {
	case "auto":
		rcfg.Progress, rcfg.Terminal = o.Stderr, o.Terminal
	case "bar":
		rcfg.Progress, rcfg.Terminal = o.Stderr, true
	case "lines":
		rcfg.Progress = o.Stderr
	}

	sum, err := Run(ctx, src, rcfg)
	if dry != nil {
		if ferr := dry.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("dry run output: %w", ferr)
		}
	}
	var se *SettingError
	if errors.As(err, &se) {
		return sum, err
	}
	out := o.Stdout
	if s.DryRun {
		out = o.Stderr
	}
	if out != nil {
		PrintSummary(out, sum, src)
		switch {
		case sum.AlreadyFinished:
			fmt.Fprintf(out, "The checkpoint %s records this replay as finished: nothing was sent. Remove it to replay again.\n", rcfg.Checkpoint)
		case errors.Is(err, ErrInterrupted) && rcfg.Checkpoint != "":
			fmt.Fprintf(out, "Interrupted. Continue with the same command plus --resume (checkpoint %s).\n", rcfg.Checkpoint)
		}
		if n := sum.DeadLettered[string(mapping.ReasonUserJWTInvalid)]; s.DryRun && n > 0 && cfg.Castle.APISecret.Reveal() == "" {
			fmt.Fprintf(out, "Without CASTLE_API_SECRET (--castle-api-secret) no userJwt can be verified: the %d user_jwt_invalid "+
				"messages above include every Secure Mode message. Give the dry run the secret to see them as a replay would send them.\n", n)
		}
	}
	return sum, err
}

// source builds the source the settings name.
func (s Settings) source(ctx context.Context, ccfg consumer.Config, o Options, log *zap.Logger) (Source, error) {
	switch first := s.Sources[0]; {
	case IsKafka(first):
		c := ccfg.Cluster()
		return &Kafka{
			Brokers: ccfg.Brokers, Topic: s.kafkaTopic(), Since: s.Since, Until: s.Until,
			Dialer: c.Dialer(), Transport: c.Transport(), MaxBytes: s.Config.Kafka.FetchMaxBytes, Logger: log,
			Hint: func(err error) string { return kafkaio.ClosedHint(c, err) },
		}, nil
	case IsS3(first):
		bucket, prefix, err := ParseS3URL(first)
		if err != nil {
			return nil, &SettingError{fmt.Errorf("replay source: %w", err)}
		}
		client := o.S3
		if client == nil {
			c, err := NewS3Client(ctx, log)
			if err != nil {
				return nil, err
			}
			client = c
		}
		return &S3{Client: client, Bucket: bucket, Prefix: prefix, Since: s.Since, Until: s.Until, Logger: log}, nil
	}
	inputs, err := Expand(s.Sources)
	if err != nil {
		return nil, &SettingError{err}
	}
	return &Files{Inputs: inputs, Stdin: o.Stdin, Logger: log}, nil
}

// kafkaTopic is the topic of a kafka: source: the one it names, or
// KAFKA_TOPIC for a bare kafka:.
func (s Settings) kafkaTopic() string {
	if t := strings.TrimPrefix(s.Sources[0], "kafka:"); t != "" {
		return t
	}
	return s.Config.Kafka.Topic
}

// Describe names the replay in its checkpoint: the sources, the window
// and the shard. A resume must match it. A kafka: source is named by its
// topic, kafka:TOPIC, however it was given: kafka: (KAFKA_TOPIC) and
// kafka:TOPIC of the same topic are the same replay, which a resume may
// name either way.
func (s Settings) Describe() string {
	sources := s.Sources
	if len(sources) > 0 && IsKafka(sources[0]) {
		sources = []string{"kafka:" + s.kafkaTopic()}
	}
	return s.describe(sources)
}

// describedEarlier reports whether cp is this replay's checkpoint as
// written before Describe named a kafka: source by its topic: with the
// source as given, a bare kafka: as "sources=kafka:", the topic
// (KAFKA_TOPIC then) only in its partitions' names, "TOPIC/N". It is when
// the rest matches and every partition it names is of this topic (one
// naming none has nothing done that could be another topic's).
func (s Settings) describedEarlier(cp *Checkpoint) bool {
	if !IsKafka(s.Sources[0]) || cp.Replay != s.describe([]string{"kafka:"}) {
		return false
	}
	ours := func(name string) bool { return name == "" || strings.HasPrefix(name, s.kafkaTopic()+"/") }
	if !ours(cp.Last) {
		return false
	}
	for _, u := range cp.After {
		if !ours(u.Name) {
			return false
		}
	}
	for _, u := range cp.Open {
		if !ours(u.Name) {
			return false
		}
	}
	return true
}

// describe is Describe of these sources.
func (s Settings) describe(sources []string) string {
	var b strings.Builder
	b.WriteString("sources=")
	b.WriteString(strings.Join(sources, ","))
	for _, t := range []struct {
		name string
		v    time.Time
	}{{"since", s.Since}, {"until", s.Until}} {
		if !t.v.IsZero() {
			fmt.Fprintf(&b, " %s=%s", t.name, t.v.UTC().Format(time.RFC3339Nano))
		}
	}
	if sh := s.Shard.String(); sh != "" {
		b.WriteString(" shard=" + sh)
	}
	return b.String()
}

// PrintSummary writes what a replay did: a table of outcomes, totals, and
// what was skipped.
func PrintSummary(w io.Writer, s Summary, src Source) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "outcome\treason / type\tmessages\t\n")
	for _, k := range sortedKeys(s.Forwarded) {
		fmt.Fprintf(tw, "forwarded\t%s\t%d\t\n", k, s.Forwarded[k])
	}
	fmt.Fprintf(tw, "identified\tidentify\t%d\t\n", s.Identified)
	for _, k := range sortedKeys(s.Dropped) {
		fmt.Fprintf(tw, "dropped\t%s\t%d\t\n", k, s.Dropped[k])
	}
	for _, k := range sortedKeys(s.DeadLettered) {
		fmt.Fprintf(tw, "dead-lettered\t%s\t%d\t\n", k, s.DeadLettered[k])
	}
	if s.Canceled > 0 {
		fmt.Fprintf(tw, "canceled when interrupted (sent again on --resume)\t\t%d\t\n", s.Canceled)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d events sent; %d records read in %s", s.Sent(), s.Consumed, s.Duration.Round(time.Millisecond))
	if sec := s.Duration.Seconds(); sec > 0 {
		fmt.Fprintf(w, " (%.0f records/s)", float64(s.Consumed)/sec)
	}
	fmt.Fprintln(w)
	if p := s.Progress; p.Unit != "" && p.Total > 0 {
		fmt.Fprintf(w, "%d of %d %s read\n", p.Done, p.Total, p.Unit)
	}
	if s.OtherShards > 0 {
		fmt.Fprintf(w, "%d messages left to the other shards\n", s.OtherShards)
	}
	if s.Skipped > 0 || s.UnitsSkipped > 0 {
		fmt.Fprintf(w, "skipped as done in an earlier run (--resume): %d records", s.Skipped)
		if s.UnitsSkipped > 0 {
			units := s.Progress.Unit
			if _, ok := src.(*Kafka); ok {
				units = "partitions" // its progress counts records
			}
			fmt.Fprintf(w, " and %d whole %s", s.UnitsSkipped, units)
		}
		fmt.Fprintln(w)
	}
	if k, ok := src.(*Kafka); ok && k.OutsideWindow() > 0 {
		if k.startEnds {
			// No --until: the window ended at the first start, by this
			// host's clock, which a producer's may run ahead of.
			fmt.Fprintf(w, "%d Kafka records stamped outside the window, --since to the replay's first start (%s; no --until) by this host's clock "+
				"(read from the first stamped at --since to the first stamped %s past its end, as producers' timestamps are not in offset order; "+
				"one in the log at the start but stamped after it has a producer's clock ahead of this host's): not sent\n",
				k.OutsideWindow(), k.Until.UTC().Format(time.RFC3339), TimestampGrace)
		} else {
			fmt.Fprintf(w, "%d Kafka records stamped outside --since/--until (read from the first stamped at --since to the first stamped %s past --until, as producers' timestamps are not in offset order): not sent\n",
				k.OutsideWindow(), TimestampGrace)
		}
	}
	if ps, ok := src.(interface{ Problems() ([]Problem, int) }); ok {
		kept, total := ps.Problems()
		for _, p := range kept {
			fmt.Fprintf(w, "skipped: %v\n", p)
		}
		if total > len(kept) {
			fmt.Fprintf(w, "skipped: %d more problems (see the log)\n", total-len(kept))
		}
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkCastle asks Castle, before anything is read, whether it takes the
// secret and the URL (Client.Check, one request that records nothing). A
// replay that could send nothing says so at once: a refused secret or a
// route Castle does not serve is a setting to fix (exit 2), and no answer
// within wait fails the replay (exit 1), where run would hold and wait.
func checkCastle(ctx context.Context, c *destination.Client, board *hold.Board, wait time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Check(cctx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil:
				return ErrInterrupted
			case board.Holding() != "":
				return &SettingError{fmt.Errorf("%v: nothing was sent", board.Ready())}
			}
			return fmt.Errorf("replay: no answer from Castle at CASTLE_API_URL but errors and timeouts for %v: nothing was sent", wait)
		case <-tick.C:
			if board.Holding() != "" {
				cancel() // Castle answered: no need to ask again
			}
		}
	}
}
