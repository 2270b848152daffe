package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/replay"
)

const replayUsage = `Usage: castle-destination replay [flags] SOURCE...

SOURCE is a file (.json, .ndjson, .jsonl, gzip-compressed or not: a
message per line, or a JSON array of messages), a directory tree of them
(Segment's archive layout), "-" for stdin, s3://BUCKET/PREFIX for
Segment's S3 archive (AWS credentials, region and AWS_ENDPOINT_URL as the
AWS SDK reads them), or kafka:TOPIC for the messages of a Kafka topic
between --since and --until.

Interrupted (SIGINT, SIGTERM), a replay lets the requests in flight finish
(at most --shutdown-timeout) and cancels what it has not sent yet, saves
its checkpoint and exits 1; the same command with --resume continues
without sending anything twice.

Flags:
`

type replaySettings struct {
	cfg        config.Config
	since      timeFlag
	until      timeFlag
	rate       float64
	dryRun     bool
	checkpoint string
	resume     resumeFlag
	shard      shardFlag
	progress   string
	sources    []string
}

// defaultCheckpoint is --checkpoint's default.
const defaultCheckpoint = "castle-replay.checkpoint.json"

// settings is what replay.Execute takes.
func (s replaySettings) settings() replay.Settings {
	cp := s.checkpoint
	if cp == defaultCheckpoint && s.shard.s.Count > 1 {
		// Shards run beside each other need a checkpoint each.
		cp = fmt.Sprintf("castle-replay.shard-%d-of-%d.checkpoint.json", s.shard.s.Index, s.shard.s.Count)
	}
	return replay.Settings{
		Config: s.cfg, Sources: s.sources, Since: s.since.t, Until: s.until.t, Rate: s.rate, DryRun: s.dryRun,
		Checkpoint: cp, Resume: s.resume.r, Shard: s.shard.s, Progress: s.progress,
	}
}

// resumeFlag is --resume (true), --resume=false, or --resume=auto (resume
// when a checkpoint exists, else start from the beginning).
type resumeFlag struct{ r replay.Resume }

func (f *resumeFlag) IsBoolFlag() bool { return true }

func (f *resumeFlag) String() string {
	if f == nil {
		return "false"
	}
	switch f.r {
	case replay.ResumeOn:
		return "true"
	case replay.ResumeAuto:
		return "auto"
	}
	return "false"
}

func (f *resumeFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		f.r = replay.ResumeOn
	case "false", "0", "no", "off":
		f.r = replay.ResumeOff
	case "auto":
		f.r = replay.ResumeAuto
	default:
		return errors.New("is not true, false or auto")
	}
	return nil
}

// shardFlag is --shard I/N.
type shardFlag struct{ s replay.Shard }

func (f *shardFlag) String() string {
	if f == nil {
		return ""
	}
	return f.s.String()
}

func (f *shardFlag) Set(v string) error {
	s, err := replay.ParseShard(v)
	if err != nil {
		return err
	}
	f.s = s
	return nil
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
	return errors.New("is not an RFC 3339 time or a YYYY-MM-DD date")
}

// parseReplay parses and validates the replay settings. -h writes the
// usage, with only the settings that apply to replay, to stdout. Errors
// name the setting.
func parseReplay(args []string, getenv func(string) string, stdout io.Writer) (replaySettings, error) {
	var s replaySettings
	f := config.NewFlags("replay", stdout)
	fs := f.FlagSet()
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayUsage)
		f.PrintDefaults()
	}
	s.cfg.RegisterReplay(f)
	f.Var(&s.since, "since", "REPLAY_SINCE", "replay messages whose event time is at or after this (RFC 3339 or YYYY-MM-DD)")
	f.Var(&s.until, "until", "REPLAY_UNTIL", "replay messages whose event time is before this")
	f.Float(&s.rate, "rate", "REPLAY_RATE", 0, "events per second at most (0: no cap beyond Castle's per-user pacing)")
	f.Bool(&s.dryRun, "dry-run", "REPLAY_DRY_RUN", false, "print the Castle request bodies as NDJSON on stdout, request tokens redacted; send nothing")
	f.String(&s.checkpoint, "checkpoint", "REPLAY_CHECKPOINT", defaultCheckpoint,
		"file recording which records are done, for --resume (written before anything is sent; empty: none; with --shard I/N: castle-replay.shard-I-of-N.checkpoint.json)")
	f.Var(&s.resume, "resume", "REPLAY_RESUME", "continue an interrupted replay from --checkpoint; --resume=auto: continue if the checkpoint exists, else start (a Job's restarted pod)")
	f.Var(&s.shard, "shard", "REPLAY_SHARD", "replay only part I of N (I/N, from 0), split by user; N processes with 0..N-1 replay everything once")
	f.Duration(&s.cfg.Ops.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", replay.DefaultDrainTimeout,
		"longest an interrupted replay waits for requests in flight before it saves its checkpoint and exits")
	f.String(&s.progress, "progress", "REPLAY_PROGRESS", "auto", "progress on stderr: auto (a bar on a terminal, lines otherwise), bar, lines or off")
	if err := f.Parse(args, getenv); err != nil {
		return s, err
	}
	s.sources = f.Args()
	if len(s.sources) == 0 {
		return s, usageError{errors.New("replay: no SOURCE given (files, directories, - for stdin, s3://BUCKET/PREFIX or kafka:TOPIC)")}
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
	kafkaSrc := replay.IsKafka(s.sources[0])
	for _, src := range s.sources {
		if (replay.IsKafka(src) || replay.IsS3(src)) && len(s.sources) > 1 {
			return s, usageError{fmt.Errorf("replay: %s cannot be combined with other sources", src)}
		}
	}
	if replay.IsS3(s.sources[0]) {
		if _, _, err := replay.ParseS3URL(s.sources[0]); err != nil {
			return s, usageError{fmt.Errorf("replay source: %w", err)}
		}
	}
	if kafkaSrc {
		if t := strings.TrimPrefix(s.sources[0], "kafka:"); t != "" {
			s.cfg.Kafka.Topic = t
		}
	}
	if s.resume.r == replay.ResumeOn && s.checkpoint == "" {
		return s, usageError{errors.New("REPLAY_RESUME (--resume): needs --checkpoint")}
	}
	if s.cfg.Ops.ShutdownTimeout < 0 {
		return s, usageError{errors.New("SHUTDOWN_TIMEOUT (--shutdown-timeout): must not be negative")}
	}
	if err := s.cfg.ValidateReplay(s.dryRun, kafkaSrc); err != nil {
		return s, err
	}
	return s, nil
}

func replayCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	s, err := parseReplay(args, getenv, stdout)
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
	warnSettings(logger, s.cfg)
	_, err = replay.Execute(ctx, s.settings(), replay.Options{
		Logger: logger, Stdin: stdin, Stdout: stdout, Stderr: stderr, Terminal: isTerminal(stderr),
	})
	var se *replay.SettingError
	if errors.As(err, &se) {
		return usageError{err}
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
