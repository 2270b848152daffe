// Package replay feeds historical Segment messages through the same
// pipeline as the run subcommand: archive files (plain or gzip NDJSON or
// JSON documents, directory trees of them, stdin), Segment's S3 archive
// (s3://BUCKET/PREFIX), and Kafka time ranges. It adds what a backfill
// needs: an event-time window, a rate cap, a dry run that prints the exact
// Castle requests (request tokens redacted), progress reporting, a checkpoint so an interrupted
// replay resumes without sending anything twice, and shards so that N
// processes (the pods of an indexed Job) each replay a disjoint part.
//
// Interrupting a replay (the context ends: SIGINT or SIGTERM) stops
// reading at once, lets the requests already started finish within
// Config.DrainTimeout, and then saves the checkpoint: what reached Castle
// is marked done, and a resumed replay skips it. Only events still
// unsettled at the drain timeout are canceled (at once, while Castle
// refuses everything: Config.Held); those may have reached Castle and are
// sent again on resume (counted in the summary).
//
// The memory a replay keeps for itself does not grow with the input: the
// checkpoint holds a watermark over finished units plus the units in
// progress (at most DefaultMaxOpenUnits), each as ranges of done records;
// S3 objects are listed one day folder at a time and read with a bounded
// read-ahead.
//
// It does not score: history goes to Castle's /v1/log only. It does not
// decide what a message becomes (the mapping does) nor how it is
// delivered (the pipeline and the Castle client do).
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/pipeline"
)

// Source is an input of a replay. Read opens each unit of the input in
// order on feed and sends its records, until the input ends (nil) or ctx
// ends (ctx.Err()). It does not close anything: Run closes the pipeline's
// input once Read returns.
type Source interface {
	Read(ctx context.Context, feed *Feed) error
	// Progress reports how far reading is.
	Progress() Progress
}

// Progress is how far a source has read.
type Progress struct {
	// Unit names what Done and Total count: "files", "objects" or
	// "records".
	Unit        string
	Done, Total int64 // Total 0: unknown
	// Bytes of Size read, when the source knows sizes (files, objects).
	Bytes, Size int64
}

// Resume says what to do with an existing checkpoint.
type Resume uint8

// Resume modes.
const (
	// ResumeOff starts a new replay; the checkpoint of an unfinished
	// replay is an error, so that its progress is never overwritten by
	// accident (a finished replay's is replaced).
	ResumeOff Resume = iota
	// ResumeOn continues from the checkpoint, which must exist.
	ResumeOn
	// ResumeAuto continues from the checkpoint when it exists and starts
	// a new replay otherwise (a Job whose pod restarts).
	ResumeAuto
)

// DefaultDrainTimeout is how long an interrupted replay waits for the
// requests in flight before it cancels them and saves its checkpoint.
const DefaultDrainTimeout = 25 * time.Second

// Config assembles a replay.
type Config struct {
	Pipeline    pipeline.Config
	Mapper      pipeline.Mapper
	Deliverer   pipeline.Deliverer
	DeadLetters deadletter.Sink
	// Rate caps events sent per second (0: no cap).
	Rate     float64
	Logger   *zap.Logger
	Registry *prometheus.Registry
	// Progress receives progress reports: a redrawn bar when Terminal,
	// else a line every ProgressEvery (default 10 s). Nil: none.
	Progress      io.Writer
	Terminal      bool
	ProgressEvery time.Duration

	// Shard selects the part of the input to send (zero: all of it).
	Shard Shard
	// Checkpoint, if set, is the file where progress is saved, every
	// SaveEvery (default 1 s) and at the end. It is written once before
	// anything is read, so a location that cannot be written fails the
	// replay before anything is sent.
	Checkpoint string
	Resume     Resume
	// Describe names this replay (sources, window, shard) in the
	// checkpoint; a resume whose Describe differs is refused, unless
	// DescribedEarlier accepts the checkpoint.
	Describe string
	// DescribedEarlier, if set, reports whether a checkpoint whose
	// Replay is not Describe is this replay's all the same, as an
	// earlier release named it. It is resumed, and saved as Describe
	// names it.
	DescribedEarlier func(*Checkpoint) bool
	SaveEvery        time.Duration
	// DrainTimeout bounds how long an interrupted replay waits for events
	// in flight (default DefaultDrainTimeout).
	DrainTimeout time.Duration
	// Check, if set, is asked once the checkpoint is checked and before
	// anything is read: an error ends the replay with nothing sent.
	Check func(ctx context.Context) error
	// Held, if set, names a held fault that keeps every event from
	// settling ("" if none: hold.Board's Holding). An interrupt
	// while one is held cancels the events in flight at once.
	Held func() string
	// MaxOpenUnits bounds the units in progress (default
	// DefaultMaxOpenUnits).
	MaxOpenUnits int
}

// DefaultInFlight bounds the events a replay has read and not yet
// settled, unless --rate bounds them to a second of sending.
const DefaultInFlight = 4096

// Summary is what a replay did.
type Summary struct {
	pipeline.Outcomes
	Duration time.Duration
	// Interrupted is set when the context ended before the input did.
	Interrupted bool
	// Finished is set when the checkpoint, if any, records the whole
	// input as done; AlreadyFinished when it did so before this run.
	Finished, AlreadyFinished bool
	// Skipped counts records not sent because the checkpoint marked them
	// done; UnitsSkipped the files, objects or partitions skipped whole.
	Skipped, UnitsSkipped int64
	// OtherShards counts messages left to the other shards.
	OtherShards int64
	// Progress is the source's progress at the end.
	Progress Progress
}

// Sent is the number of events Castle accepted (or the dry run printed).
func (s Summary) Sent() int { return sumMap(s.Forwarded) }

// ErrInterrupted is returned by Run when its context ended before the
// input did. The checkpoint, if any, is saved.
var ErrInterrupted = errors.New("replay interrupted")

// SettingError is a replay setting that cannot work (a checkpoint that
// cannot be written, a resume without a checkpoint): nothing was sent.
type SettingError struct{ Err error }

func (e *SettingError) Error() string { return e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// sendStopper is a Deliverer that can stop starting requests, letting
// those in flight finish (destination.Client.StopSending).
type sendStopper interface{ StopSending() }

// Run replays src through the pipeline and returns what happened.
//
// When ctx ends, reading stops at once and the pipeline's input is
// closed. A Deliverer that is a sendStopper is told to stop sending:
// events not yet sent are canceled at once. Events in flight get
// cfg.DrainTimeout to settle, then the rest is canceled (not
// acknowledged, so not marked done). The checkpoint is
// saved after the pipeline stopped, and Run returns ErrInterrupted.
func Run(ctx context.Context, src Source, cfg Config) (Summary, error) {
	start := time.Now()
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cp, err := openCheckpoint(cfg, log)
	if err != nil {
		return Summary{}, err
	}
	if cp != nil && cp.Finished {
		log.Info("the checkpoint records this replay as finished: nothing to send", zap.String("checkpoint", cfg.Checkpoint))
		return Summary{Outcomes: emptyOutcomes(), Finished: true, AlreadyFinished: true}, nil
	}
	// dropFresh removes the checkpoint this run made, when it read
	// nothing: the same command starts afresh once the cause is fixed,
	// without --resume.
	dropFresh := func() {
		if cp == nil && cfg.Checkpoint != "" {
			_ = os.Remove(cfg.Checkpoint)
		}
	}
	if cfg.Check != nil {
		if err := cfg.Check(ctx); err != nil {
			dropFresh()
			return Summary{Outcomes: emptyOutcomes()}, err
		}
	}

	d := cfg.Deliverer
	if cfg.Rate > 0 {
		d = newPaced(d, time.Duration(float64(time.Second)/cfg.Rate))
		// Keep batches to a tenth of a second of sending, so the cap
		// holds over short windows too.
		cfg.Pipeline.Batch.Count = max(1, min(orDefault(cfg.Pipeline.Batch.Count, pipeline.DefaultBatchCount), int(cfg.Rate/10)))
		// Read no further ahead than a second of sending: what was read
		// is sent before an interrupted replay stops, within the drain time.
		if cfg.Pipeline.MaxInFlightEvents <= 0 {
			cfg.Pipeline.MaxInFlightEvents = max(2*cfg.Pipeline.Batch.Count, int(cfg.Rate))
		}
	}
	if cfg.Pipeline.MaxInFlightEvents <= 0 {
		// A replay reads far faster than Castle takes events: what it has
		// read waits in memory (the raw message for a dead letter, the
		// request body). DefaultInFlight keeps that small, and still many
		// times what the client's concurrency can use.
		cfg.Pipeline.MaxInFlightEvents = DefaultInFlight
	}
	p, err := pipeline.New(cfg.Pipeline, cfg.Mapper, d, cfg.DeadLetters, log, cfg.Registry)
	if err != nil {
		return Summary{}, err
	}
	// What the identify messages already read said of users holds for the
	// rest of a resumed replay, as in one never interrupted: the records
	// done are not read again (a whole file, an object or a Kafka span
	// is skipped), so the cache is kept beside the checkpoint.
	users := &usersFile{path: usersPath(cfg.Checkpoint), users: p.Users()}
	if cp != nil {
		users.load(log)
	} else {
		users.remove() // an older replay's
	}

	// Delivery outlives ctx by the drain timeout: requests already on the
	// wire are not aborted by an interrupt.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	drain := cfg.DrainTimeout
	if drain <= 0 {
		drain = DefaultDrainTimeout
	}
	stopDrainTimer := context.AfterFunc(ctx, func() {
		if cfg.Held != nil {
			if class := cfg.Held(); class != "" {
				log.Warn("interrupted while delivery is held: events in flight, which cannot reach Castle, are canceled now; they are sent again on --resume",
					zap.String("class", class))
				cancelWork()
				return
			}
		}
		if s, ok := d.(sendStopper); ok {
			// What was not sent yet is sent again on --resume: waiting
			// for it (a heavy user's pacing) would only delay the stop.
			log.Info("interrupted: reading stopped; requests in flight finish, events not yet sent are canceled and sent again on --resume",
				zap.Duration("timeout", drain))
			s.StopSending()
		} else {
			log.Info("interrupted: reading stopped, waiting for events in flight", zap.Duration("timeout", drain))
		}
		t := time.AfterFunc(drain, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stopDrainTimer()

	in := make(chan pipeline.Record, 64)
	feed := newFeed(in, cfg.Shard, cp, cfg.MaxOpenUnits)
	if k, ok := src.(*Kafka); ok && k.fixWindow(feed, time.Now()) && cfg.Checkpoint != "" {
		// The end of the window goes to the checkpoint before anything
		// is sent: a crash before the first periodic save would leave
		// the resume to end it at its own start, and send what was
		// produced in between.
		if err := saveAtStart(feed.snapshot(cfg.Describe), cfg.Checkpoint); err != nil {
			dropFresh()
			return Summary{}, err
		}
	}
	// Reading stops when ctx ends, or when the pipeline stops early.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	piped := make(chan error, 1)
	go func() {
		err := p.Run(work, in)
		stopReading()
		piped <- err
	}()
	stopSaving := saveLoop(cfg, feed, users, log)
	stopProgress := func() {}
	if cfg.Progress != nil {
		stopProgress = progress(cfg, src, start)
	}

	serr := src.Read(readCtx, feed)
	close(in)
	perr := <-piped
	stopSaving()
	stopProgress()

	interrupted := ctx.Err() != nil
	s := Summary{
		Duration:     time.Since(start),
		Interrupted:  interrupted,
		Skipped:      feed.skipped.Load(),
		UnitsSkipped: feed.resumed.Load(),
		OtherShards:  feed.others.Load(),
		Progress:     src.Progress(),
	}
	s.Finished = serr == nil && perr == nil && !interrupted && feed.settled()
	var cerr error
	var badSource *SettingError
	if cp == nil && serr != nil && (errors.As(serr, &badSource) || !interrupted && !feed.progressed()) {
		// The source is wrong (an S3 prefix with no archive, credentials
		// refused) or failed before anything was done: the checkpoint
		// would record nothing.
		dropFresh()
		users.remove()
	} else if cfg.Checkpoint != "" {
		snap := feed.snapshot(cfg.Describe)
		snap.Finished = s.Finished
		cerr = snap.Save(cfg.Checkpoint)
		if s.Finished {
			users.remove()
		} else if err := users.save(); err != nil {
			log.Warn("save the user cache beside the checkpoint; a resume starts without it", zap.Error(err))
		}
	}
	o, oerr := pipeline.Observe(cfg.Registry)
	s.Outcomes = o
	if perr != nil && errors.Is(perr, context.Canceled) {
		log.Warn("drain timeout reached: events still in flight were canceled; they are not marked done and are sent again on --resume",
			zap.Duration("timeout", drain), zap.Int("canceled", o.Canceled))
		perr = nil
	}
	if serr != nil && interrupted && errors.Is(serr, context.Canceled) {
		serr = nil
	}
	if err := errors.Join(serr, perr, cerr, oerr); err != nil {
		return s, err
	}
	if interrupted {
		return s, ErrInterrupted
	}
	return s, nil
}

func emptyOutcomes() pipeline.Outcomes {
	return pipeline.Outcomes{Forwarded: map[string]int{}, Dropped: map[string]int{}, DeadLettered: map[string]int{}}
}

// openCheckpoint loads the checkpoint to resume from (nil: start from the
// beginning) and proves the location writable by saving it before
// anything is read. Its errors are SettingErrors.
func openCheckpoint(cfg Config, log *zap.Logger) (*Checkpoint, error) {
	if cfg.Checkpoint == "" {
		if cfg.Resume == ResumeOn {
			return nil, &SettingError{errors.New("REPLAY_RESUME (--resume): needs a checkpoint (--checkpoint)")}
		}
		return nil, nil
	}
	var cp *Checkpoint
	switch cfg.Resume {
	case ResumeOn, ResumeAuto:
		c, err := LoadCheckpoint(cfg.Checkpoint)
		switch {
		case errors.Is(err, ErrNoCheckpoint) && cfg.Resume == ResumeAuto:
			log.Info("no checkpoint yet: starting from the beginning", zap.String("checkpoint", cfg.Checkpoint))
		case errors.Is(err, ErrNoCheckpoint):
			return nil, &SettingError{fmt.Errorf("REPLAY_RESUME (--resume): there is no checkpoint at %s to resume from "+
				"(check --checkpoint, or use --resume=auto to start from the beginning when there is none)", cfg.Checkpoint)}
		case err != nil:
			return nil, &SettingError{fmt.Errorf("REPLAY_CHECKPOINT (--checkpoint): %w", err)}
		default:
			if !cfg.describes(c) {
				return nil, &SettingError{fmt.Errorf("REPLAY_CHECKPOINT (--checkpoint): %s is the checkpoint of another replay (%s), not of this one (%s); "+
					"resume with the same sources and settings, or use another checkpoint", cfg.Checkpoint, c.Replay, cfg.Describe)}
			}
			c.Replay = cfg.Describe // saved so, if an earlier release named it otherwise
			cp = c
		}
	default:
		// Starting over where an unfinished replay left its checkpoint
		// would send again what it recorded as done: refuse. A finished
		// replay's checkpoint is replaced.
		if _, err := os.Stat(cfg.Checkpoint); err == nil {
			c, err := LoadCheckpoint(cfg.Checkpoint)
			if err == nil && !c.Finished && !cfg.describes(c) {
				// --resume would be refused too: another replay's.
				return nil, &SettingError{fmt.Errorf("REPLAY_CHECKPOINT (--checkpoint): %s holds the progress of another, unfinished replay (%s): "+
					"give this one its own --checkpoint (each shard needs one), or remove the file", cfg.Checkpoint, c.Replay)}
			}
			if err != nil || !c.Finished {
				return nil, &SettingError{fmt.Errorf("REPLAY_CHECKPOINT (--checkpoint): %s holds the progress of an unfinished replay: add --resume to continue it, "+
					"or remove the file to start over (starting over sends again what it recorded as done)", cfg.Checkpoint)}
			}
			log.Info("replacing the checkpoint of a finished replay", zap.String("checkpoint", cfg.Checkpoint))
		}
	}
	first := cp
	if first == nil {
		first = &Checkpoint{Version: checkpointVersion, Replay: cfg.Describe}
	}
	if err := saveAtStart(first, cfg.Checkpoint); err != nil {
		return nil, err
	}
	return cp, nil
}

// describes reports whether c is the checkpoint of the replay cfg names.
func (cfg Config) describes(c *Checkpoint) bool {
	return c.Replay == cfg.Describe || cfg.DescribedEarlier != nil && cfg.DescribedEarlier(c)
}

// saveAtStart saves cp to path before anything is sent; failing, it is a
// setting to fix.
func saveAtStart(cp *Checkpoint, path string) error {
	if err := cp.Save(path); err != nil {
		return &SettingError{fmt.Errorf("REPLAY_CHECKPOINT (--checkpoint): cannot be written, so progress could not be saved: %w", err)}
	}
	return nil
}

// saveLoop saves the checkpoint periodically until the returned func is
// called.
func saveLoop(cfg Config, feed *Feed, users *usersFile, log *zap.Logger) func() {
	if cfg.Checkpoint == "" {
		return func() {}
	}
	every := cfg.SaveEvery
	if every <= 0 {
		every = time.Second
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := feed.snapshot(cfg.Describe).Save(cfg.Checkpoint); err != nil {
					log.Warn("save checkpoint", zap.Error(err))
				}
				// The user cache less often: it can be tens of MB. A
				// replay that crashes resumes with the last one saved.
				if users.due() {
					if err := users.save(); err != nil {
						log.Warn("save the user cache beside the checkpoint", zap.Error(err))
					}
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}
