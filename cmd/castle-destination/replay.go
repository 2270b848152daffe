package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/replay"
	"github.com/castle-destination/castle-destination/worker"
)

const replayUsage = `Usage: castle-destination replay [flags] SOURCE...

SOURCE is a file (.json, .ndjson, .jsonl, gzip-compressed or not), a
directory tree of them (Segment's archive layout), "-" for stdin, or
kafka:TOPIC for the messages of a Kafka topic between --since and --until.

Flags:
`

type replaySettings struct {
	cfg        config.Config
	since      timeFlag
	until      timeFlag
	rate       float64
	dryRun     bool
	checkpoint string
	resume     bool
	progress   string
	sources    []string
}

// timeFlag accepts RFC 3339 times and plain dates (UTC midnight).
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			f.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("%q is not an RFC 3339 time or a YYYY-MM-DD date", s)
}

func parseReplay(args []string, getenv func(string) string, stderr io.Writer) (replaySettings, error) {
	var s replaySettings
	f := config.NewFlags("replay", stderr)
	fs := f.FlagSet()
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayUsage)
		fs.PrintDefaults()
	}
	s.cfg.RegisterKafka(f)
	s.cfg.RegisterCastle(f)
	s.cfg.RegisterMapping(f)
	s.cfg.RegisterBatch(f)
	s.cfg.RegisterOps(f, false)
	f.Var(&s.since, "since", "REPLAY_SINCE", "replay messages whose event time is at or after this (RFC 3339 or YYYY-MM-DD)")
	f.Var(&s.until, "until", "REPLAY_UNTIL", "replay messages whose event time is before this")
	f.Float(&s.rate, "rate", "REPLAY_RATE", 0, "events per second at most (0: no cap beyond Castle's per-user pacing)")
	f.Bool(&s.dryRun, "dry-run", "REPLAY_DRY_RUN", false, "print the Castle request bodies as NDJSON on stdout; send nothing")
	f.String(&s.checkpoint, "checkpoint", "REPLAY_CHECKPOINT", "castle-replay.checkpoint.json",
		"file recording which records are done, for --resume (file sources only; empty: none)")
	f.Bool(&s.resume, "resume", "REPLAY_RESUME", false, "continue an interrupted replay from --checkpoint")
	f.String(&s.progress, "progress", "REPLAY_PROGRESS", "auto", "progress on stderr: auto (a bar on a terminal, lines otherwise), bar, lines or off")
	if err := f.Parse(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, err
		}
		return s, usageError{err}
	}
	s.sources = f.Args()
	if len(s.sources) == 0 {
		return s, usageError{errors.New("replay: no SOURCE given (files, directories, - for stdin, or kafka:TOPIC)")}
	}
	if !s.since.t.IsZero() && !s.until.t.IsZero() && !s.until.t.After(s.since.t) {
		return s, usageError{errors.New("REPLAY_UNTIL (--until): must be after --since")}
	}
	if s.rate < 0 {
		return s, usageError{errors.New("REPLAY_RATE (--rate): must not be negative")}
	}
	switch s.progress {
	case "auto", "bar", "lines", "off":
	default:
		return s, usageError{fmt.Errorf("REPLAY_PROGRESS (--progress): %q is not auto, bar, lines or off", s.progress)}
	}
	kafkaSrc := strings.HasPrefix(s.sources[0], "kafka:")
	if kafkaSrc {
		if len(s.sources) > 1 {
			return s, usageError{errors.New("replay: a kafka:TOPIC source cannot be combined with other sources")}
		}
		if t := strings.TrimPrefix(s.sources[0], "kafka:"); t != "" {
			s.cfg.Kafka.Topic = t
		}
	}
	if s.resume && s.checkpoint == "" {
		return s, usageError{errors.New("REPLAY_RESUME (--resume): needs --checkpoint")}
	}
	checks := []func() error{
		func() error { return s.cfg.Castle.Validate(!s.dryRun) },
		s.cfg.Mapping.Validate,
		s.cfg.Batch.Validate,
	}
	if kafkaSrc || s.cfg.Kafka.DLQTopic != "" {
		checks = append(checks, s.cfg.Kafka.Validate)
	}
	for _, v := range checks {
		if err := v(); err != nil {
			return s, usageError{err}
		}
	}
	return s, nil
}

func replayCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	s, err := parseReplay(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger, err := ops.NewLogger(s.cfg.Ops.LogLevel, s.cfg.Ops.LogFormat, stderr)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = logger.Sync() }()
	for _, note := range ops.TuneRuntime(getenv) {
		logger.Info(note)
	}
	reg := worker.NewRegistry()

	mapper, seen, err := worker.NewMapper(s.cfg)
	if err != nil {
		return usageError{err}
	}
	var deliver pipeline.Deliverer
	var dry *replay.DryRun
	if s.dryRun {
		dry = replay.NewDryRun(stdout)
		deliver = dry
	} else {
		castle, err := worker.NewCastle(s.cfg.Castle, logger.Named("castle"), reg, nil, nil)
		if err != nil {
			return err
		}
		defer castle.Close()
		deliver = castle
	}
	var dlq deadletter.Sink = deadletter.NewLog(logger.Named("deadletter"))
	ccfg, err := worker.ConsumerConfig(s.cfg)
	if err != nil {
		return usageError{err}
	}
	if s.cfg.Kafka.DLQTopic != "" {
		w, err := consumer.NewDeadLetterWriter(consumer.DLQConfig{
			Brokers: ccfg.Brokers, Topic: s.cfg.Kafka.DLQTopic, TLS: ccfg.TLS, SASL: ccfg.SASL, ClientID: ccfg.ClientID, Registerer: reg,
		}, logger.Named("dlq"))
		if err != nil {
			return fmt.Errorf("dead-letter writer: %w", err)
		}
		defer w.Close()
		dlq = w
	}

	var src replay.Source
	var files *replay.Files
	if strings.HasPrefix(s.sources[0], "kafka:") {
		dialer, transport := ccfg.Cluster().Dialer(), ccfg.Cluster().Transport()
		src = &replay.Kafka{
			Brokers: ccfg.Brokers, Topic: s.cfg.Kafka.Topic, Since: s.since.t, Until: s.until.t,
			Dialer: dialer, Transport: transport, MaxBytes: s.cfg.Kafka.FetchMaxBytes, Logger: logger,
		}
	} else {
		inputs, err := replay.Expand(s.sources)
		if err != nil {
			return usageError{err}
		}
		files = &replay.Files{Inputs: inputs, Stdin: stdin, Resume: s.resume, Logger: logger}
		if !s.dryRun && !hasStdin(inputs) {
			files.Checkpoint = s.checkpoint
		}
		src = files
	}

	pcfg := worker.PipelineConfig(s.cfg, time.Now, nil)
	if !s.since.t.IsZero() || !s.until.t.IsZero() {
		pcfg.Keep = replay.Window(s.since.t, s.until.t)
	}
	rcfg := replay.Config{
		Pipeline: pcfg, Mapper: mapper, Deliverer: deliver, DeadLetters: dlq,
		Rate: s.rate, Logger: logger, Registry: reg,
	}
	if seen != nil {
		rcfg.Seen = seen
	}
	term := isTerminal(stderr)
	switch s.progress {
	case "auto":
		rcfg.Progress, rcfg.Terminal = stderr, term
	case "bar":
		rcfg.Progress, rcfg.Terminal = stderr, true
	case "lines":
		rcfg.Progress = stderr
	}
	sum, err := replay.Run(ctx, src, rcfg)
	if dry != nil {
		if ferr := dry.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("dry run output: %w", ferr)
		}
	}
	out := stdout
	if s.dryRun {
		out = stderr
	}
	printReplaySummary(out, sum, files)
	if err != nil && ctx.Err() != nil && files != nil && files.Checkpoint != "" {
		fmt.Fprintf(out, "Interrupted. Continue with the same command plus --resume (checkpoint %s).\n", files.Checkpoint)
	}
	return err
}

func hasStdin(inputs []replay.Input) bool {
	for _, in := range inputs {
		if in.Path == "-" {
			return true
		}
	}
	return false
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printReplaySummary(w io.Writer, s replay.Summary, files *replay.Files) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "outcome\treason / type\tmessages\t\n")
	for _, k := range keys(s.Forwarded, nil) {
		fmt.Fprintf(tw, "forwarded\t%s\t%d\t\n", k, s.Forwarded[k])
	}
	fmt.Fprintf(tw, "identified\tidentify\t%d\t\n", s.Identified)
	for _, k := range keys(s.Dropped, nil) {
		fmt.Fprintf(tw, "dropped\t%s\t%d\t\n", k, s.Dropped[k])
	}
	for _, k := range keys(s.DeadLettered, nil) {
		fmt.Fprintf(tw, "dead-lettered\t%s\t%d\t\n", k, s.DeadLettered[k])
	}
	if s.Canceled > 0 {
		fmt.Fprintf(tw, "not sent (interrupted)\t\t%d\t\n", s.Canceled)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d records read in %s", s.Consumed, s.Duration.Round(time.Millisecond))
	if sec := s.Duration.Seconds(); sec > 0 {
		fmt.Fprintf(w, " (%.0f records/s)", float64(s.Consumed)/sec)
	}
	fmt.Fprintln(w)
	if files != nil {
		if n := files.Skipped(); n > 0 {
			fmt.Fprintf(w, "%d records skipped: done in an earlier run (--resume)\n", n)
		}
		for _, p := range files.Problems() {
			fmt.Fprintf(w, "skipped: %v\n", p)
		}
	}
}
