package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// checkpointVersion is the format written. Version 1 (one entry per file,
// no record ranges) is not read: it could not say which records after a
// gap were done. Version 2 numbered the records of a file or object after
// a damaged gzip member otherwise than now (the member's records before
// the damage were sent and counted; the resync began further on): its
// files and objects in progress are read again from their start (some of
// their records sent twice, none skipped), and the rest kept. Version 3
// numbered a Kafka replay's partitions by position among those with
// records in the window, so records arriving in a partition that had none
// shifted the numbers and the resume was refused; version 4 numbers them
// by partition and keeps each finished partition's end. A version 2 or 3
// checkpoint of a Kafka replay is renumbered when the replay resumes, if
// its partitions still match (Feed.byKey), and refused as before if not;
// of other replays it is read as it is.
const checkpointVersion = 4

// legacyKafkaVersion is the version a Kafka replay's checkpoint numbered
// by position keeps until it is renumbered.
const legacyKafkaVersion = 3

// Checkpoint is the progress of a replay, saved so that an interrupted
// replay can continue (--resume) without sending again what was settled
// (delivered, dropped or dead-lettered).
//
// The input of a replay is a sequence of units in a fixed order: files,
// S3 objects, or Kafka partitions. A unit's records are numbered (line or
// value index in a file or object, offset in a partition). The checkpoint
// keeps, in a size that does not grow with the input:
//   - a watermark: the first Done units are finished;
//   - the finished units after the watermark (a unit can finish while an
//     earlier one still waits for a slow record);
//   - for each unit in progress, the index below which every record is
//     done and the ranges of done records above it.
//
// A Kafka replay's units are its partitions, numbered by partition, each
// one a unit whether it has records in the window or not. It keeps no
// watermark: its finished partitions are in After, each with the offset
// it was read to (End), so that records arriving there before a resume
// are read on from that offset.
//
// Names are kept beside positions so that a resume over an input that
// changed (a file or object added or removed before the watermark) is
// refused instead of skipping the wrong units.
type Checkpoint struct {
	Version int `json:"version"`
	// Replay describes the replay the checkpoint belongs to (sources,
	// window, shard); a resume with other settings is refused.
	Replay string `json:"replay"`
	// Finished is set once the whole input was read and settled.
	Finished bool `json:"finished,omitempty"`
	// Done is the number of leading units that are finished; Last is the
	// name of the last of them.
	Done int64  `json:"done"`
	Last string `json:"last,omitempty"`
	// After are finished units past the watermark, by position.
	After []UnitRef `json:"after,omitempty"`
	// Open are units in progress.
	Open []UnitMark `json:"open,omitempty"`
	// Until is where a Kafka replay without --until ends its window: the
	// time it first started, when it read up to the log's end. Its
	// resumes read up to the same time, not to the log's end then, which
	// would send what was produced since (the live traffic run delivers).
	Until time.Time `json:"until,omitzero"`

	// legacy is set on a Kafka replay's checkpoint of version 2 or 3,
	// whose partitions are numbered by position (Feed.byKey).
	legacy bool
}

// UnitRef names a unit at its position in the input (a Kafka partition:
// by its number).
type UnitRef struct {
	Seq  int64  `json:"seq"`
	Name string `json:"name"`
	// End is where a finished Kafka partition was read to: its records
	// below End are done.
	End int64 `json:"end,omitempty"`
}

// UnitMark is the progress inside one unit.
type UnitMark struct {
	UnitRef
	// Next is the index of the first record not known to be done.
	Next int64 `json:"next"`
	// Done are ranges [from, to) of done records above Next.
	Done []Span `json:"done,omitempty"`
}

// Span is a range [From, To) of record indexes, written as [from, to].
type Span struct{ From, To int64 }

// MarshalJSON writes the span as a two-element array.
func (s Span) MarshalJSON() ([]byte, error) { return json.Marshal([2]int64{s.From, s.To}) }

// UnmarshalJSON reads a two-element array.
func (s *Span) UnmarshalJSON(b []byte) error {
	var a [2]int64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if a[1] <= a[0] {
		return fmt.Errorf("empty range [%d, %d)", a[0], a[1])
	}
	s.From, s.To = a[0], a[1]
	return nil
}

// ErrNoCheckpoint is returned by LoadCheckpoint when the file does not
// exist.
var ErrNoCheckpoint = errors.New("no checkpoint")

// LoadCheckpoint reads a checkpoint.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCheckpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	kafka := strings.HasPrefix(cp.Replay, "sources=kafka:")
	switch cp.Version {
	case 2:
		if !kafka { // a Kafka partition's records are its offsets
			cp.Open = nil
		}
		fallthrough
	case 3:
		if kafka {
			// Renumbered once the partitions are known; until then it
			// is saved as it is.
			cp.Version, cp.legacy = legacyKafkaVersion, true
			return &cp, nil
		}
		cp.Version = checkpointVersion
	}
	if cp.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s: version %d is not %d (written by another release); delete it to start over", path, cp.Version, checkpointVersion)
	}
	return &cp, nil
}

// Save writes the checkpoint atomically, so a crash leaves the old or the
// new one, never a torn file.
func (cp *Checkpoint) Save(path string) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// writeAtomic writes path through write: into a temporary file in the same
// directory, synced and renamed over path. The file is its owner's alone
// (mode 0600, as os.CreateTemp makes it): the user cache saved beside a
// checkpoint holds the users' Secure Mode tokens.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := write(tmp); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// spans is a sorted set of disjoint, non-adjacent ranges.
type spans []Span

// add inserts i, merging neighbours. Acknowledgements arrive mostly in
// order, so the common case appends to or extends the last range.
func (s spans) add(i int64) spans {
	n := len(s)
	if n > 0 && s[n-1].To == i {
		s[n-1].To++
		return s
	}
	if n == 0 || s[n-1].To < i {
		return append(s, Span{i, i + 1})
	}
	k, _ := slices.BinarySearchFunc(s, i, func(sp Span, v int64) int {
		switch {
		case sp.To <= v:
			return -1
		case sp.From > v:
			return 1
		}
		return 0
	})
	if k < n && s[k].From <= i && i < s[k].To {
		return s // already there
	}
	left := k > 0 && s[k-1].To == i
	right := k < n && s[k].From == i+1
	switch {
	case left && right:
		s[k-1].To = s[k].To
		return slices.Delete(s, k, k+1)
	case left:
		s[k-1].To++
	case right:
		s[k].From--
	default:
		s = slices.Insert(s, k, Span{i, i + 1})
	}
	return s
}

// normalize turns ranges read from a checkpoint (which a person may have
// edited) into a sorted set of disjoint ranges.
func normalize(in []Span) spans {
	s := slices.Clone(in)
	slices.SortFunc(s, func(a, b Span) int { return cmpInt(a.From, b.From) })
	out := spans{}
	for _, sp := range s {
		if n := len(out); n > 0 && sp.From <= out[n-1].To {
			out[n-1].To = max(out[n-1].To, sp.To)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// has reports whether i is in the set.
func (s spans) has(i int64) bool {
	_, ok := slices.BinarySearchFunc(s, i, func(sp Span, v int64) int {
		switch {
		case sp.To <= v:
			return -1
		case sp.From > v:
			return 1
		}
		return 0
	})
	return ok
}

// popFront removes the first range when it starts at next and returns
// where the run of done records ends.
func (s spans) popFront(next int64) (spans, int64) {
	if len(s) > 0 && s[0].From <= next {
		next = max(next, s[0].To)
		return s[1:], next
	}
	return s, next
}
