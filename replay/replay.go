// Package replay feeds historical Segment messages through the same
// pipeline as the run subcommand: archive files (plain or gzip NDJSON or
// JSON documents, directory trees of them, stdin) and Kafka time ranges.
// It adds what a one-off backfill needs: an event-time window, a rate cap,
// a dry run that prints the exact Castle requests, progress reporting, and
// a checkpoint so an interrupted file replay can resume.
package replay

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/pipeline"
)

// Files is a source of archive files.
type Files struct {
	Inputs []Input
	Stdin  io.Reader // the input named "-"
	// Checkpoint, if set, is the file where progress is saved (every
	// SaveEvery and at the end); with Resume, records it marks as done are
	// not sent again.
	Checkpoint string
	Resume     bool
	SaveEvery  time.Duration // default 1 s
	Logger     *zap.Logger

	read     atomic.Int64 // bytes read from disk
	skipped  atomic.Int64 // records skipped as already done (resume)
	mu       sync.Mutex
	problems []Problem
}

// Progress reports bytes read of the total (0 when unknown, e.g. stdin).
func (f *Files) Progress() (done, total int64) {
	for _, in := range f.Inputs {
		total += in.Size
	}
	return f.read.Load(), total
}

// Problems returns what was reported and skipped.
func (f *Files) Problems() []Problem {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Problem(nil), f.problems...)
}

// Skipped is the number of records not sent because a checkpoint marked
// them done.
func (f *Files) Skipped() int64 { return f.skipped.Load() }

// Run reads every input in order and sends its records on out, then closes
// out. Progress is checkpointed as records are acknowledged; Run saves the
// final checkpoint after wait returns (the pipeline has settled everything).
func (f *Files) Run(ctx context.Context, out chan<- pipeline.Record, wait func()) error {
	log := f.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cp := &Checkpoint{Version: 1, Files: map[string]*FileMark{}}
	if f.Checkpoint != "" && f.Resume {
		var err error
		if cp, err = LoadCheckpoint(f.Checkpoint); err != nil {
			close(out)
			return err
		}
	}
	for _, in := range f.Inputs {
		if in.Path == "-" && f.Checkpoint != "" {
			close(out)
			return errors.New("replay: stdin cannot be checkpointed; drop --checkpoint/--resume or replay files")
		}
	}
	t := newTracker(cp)
	stopSaving := f.saveLoop(t, log)

	var readErr error
	func() {
		defer close(out)
		for _, in := range f.Inputs {
			from, done := t.start(in.Path)
			if done {
				log.Info("already replayed", zap.String("file", in.Path))
				f.read.Add(in.Size)
				continue
			}
			n := int64(0)
			err := readFile(ctx, in, f.Stdin, &f.read, func(idx int64, value []byte) error {
				n = idx + 1
				if idx < from {
					f.skipped.Add(1)
					return nil
				}
				a := &ack{t: t, path: in.Path, idx: idx}
				if value == nil {
					a.Ack(nil)
					return nil
				}
				select {
				case out <- pipeline.Record{Value: value, Source: in.Path, Offset: idx, Acker: a}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}, func(p Problem) {
				log.Warn("skipped part of an input", zap.String("file", p.Path), zap.Int64("record", p.Record), zap.Error(p.Err))
				f.mu.Lock()
				f.problems = append(f.problems, p)
				f.mu.Unlock()
			})
			if err != nil {
				readErr = err
				return
			}
			t.finish(in.Path, n)
		}
	}()
	wait()
	stopSaving()
	if f.Checkpoint != "" {
		if err := t.snapshot().Save(f.Checkpoint); err != nil {
			return errors.Join(readErr, err)
		}
	}
	return readErr
}

// saveLoop saves the checkpoint periodically until the returned func is
// called.
func (f *Files) saveLoop(t *tracker, log *zap.Logger) func() {
	if f.Checkpoint == "" {
		return func() {}
	}
	every := f.SaveEvery
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
				if err := t.snapshot().Save(f.Checkpoint); err != nil {
					log.Warn("save checkpoint", zap.Error(err))
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}
