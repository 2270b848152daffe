package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/pipeline"
)

// maxProblems bounds the problems kept for the summary; the rest are
// counted and logged.
const maxProblems = 100

// problems collects what was reported and skipped.
type problems struct {
	mu    sync.Mutex
	kept  []Problem
	total int
}

func (p *problems) add(log *zap.Logger, pr Problem) {
	if log != nil {
		log.Warn("skipped part of an input", zap.String("input", pr.Path), zap.Int64("record", pr.Record), zap.Error(pr.Err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	if len(p.kept) < maxProblems {
		p.kept = append(p.kept, pr)
	}
}

// Problems returns the first problems reported (at most 100) and how many
// there were in all.
func (p *problems) Problems() ([]Problem, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Problem(nil), p.kept...), p.total
}

// Files is a source of archive files, read one after another in the
// order given (Expand sorts directory trees).
type Files struct {
	Inputs []Input
	Stdin  io.Reader // the input named "-"
	Logger *zap.Logger

	problems
	read  atomic.Int64 // bytes read from disk
	units atomic.Int64 // files read to the end or skipped as done
}

// Progress reports files and bytes read.
func (f *Files) Progress() Progress {
	var size int64
	for _, in := range f.Inputs {
		size += in.Size
	}
	return Progress{Unit: "files", Done: f.units.Load(), Total: int64(len(f.Inputs)), Bytes: f.read.Load(), Size: size}
}

// Read sends every file's records to feed.
func (f *Files) Read(ctx context.Context, feed *Feed) error {
	for i, in := range f.Inputs {
		u, err := feed.Open(ctx, int64(i), in.Path, 0)
		if err != nil {
			return err
		}
		if u == nil {
			f.read.Add(in.Size)
			f.units.Add(1)
			continue
		}
		n, err := f.readOne(ctx, in, u)
		if err != nil {
			return err
		}
		u.Close(n)
		f.units.Add(1)
	}
	return nil
}

// readOne sends the records of one file.
func (f *Files) readOne(ctx context.Context, in Input, u *Unit) (int64, error) {
	var r io.Reader
	if in.Path == "-" {
		if f.Stdin == nil {
			return 0, errors.New("replay: no standard input")
		}
		r = f.Stdin
	} else {
		file, err := os.Open(in.Path)
		if err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		defer file.Close()
		r = file
	}
	return decode(ctx, in.Path, counter{r, &f.read}, func(idx int64, value []byte) error {
		if value == nil { // reported: nothing to send
			u.Pass(idx)
			return nil
		}
		return u.Send(ctx, idx, pipeline.Record{Value: value, Source: in.Path, Offset: idx})
	}, func(p Problem) { f.add(f.Logger, p) })
}
