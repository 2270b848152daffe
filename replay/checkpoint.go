package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Checkpoint is the progress of a file replay, saved so that an
// interrupted replay can continue (--resume) without re-sending what was
// delivered. Per file it keeps the count of leading records that are done
// (delivered, dropped or dead-lettered); records after a gap are sent
// again on resume (at least once, never lost).
type Checkpoint struct {
	Version int                  `json:"version"`
	Files   map[string]*FileMark `json:"files"`
}

// FileMark is one file's progress.
type FileMark struct {
	// Next is the index of the first record not known to be done.
	Next int64 `json:"next"`
	// Done is set once every record of the file is done.
	Done bool `json:"done,omitempty"`
}

// LoadCheckpoint reads a checkpoint; a missing file is an empty one.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	cp := &Checkpoint{Version: 1, Files: map[string]*FileMark{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if cp.Version != 1 {
		return nil, fmt.Errorf("checkpoint %s: unknown version %d", path, cp.Version)
	}
	if cp.Files == nil {
		cp.Files = map[string]*FileMark{}
	}
	return cp, nil
}

// Save writes the checkpoint atomically (a temporary file renamed over it).
func (cp *Checkpoint) Save(path string) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// tracker follows which records of each file are done.
type tracker struct {
	mu    sync.Mutex
	files map[string]*fileTrack
}

type fileTrack struct {
	next  int64              // every record below is done
	acked map[int64]struct{} // done records at or above next
	total int64              // records in the file, once read to the end; -1 before
}

func newTracker(cp *Checkpoint) *tracker {
	t := &tracker{files: map[string]*fileTrack{}}
	for path, m := range cp.Files {
		ft := &fileTrack{next: m.Next, acked: map[int64]struct{}{}, total: -1}
		if m.Done {
			ft.total = m.Next
		}
		t.files[path] = ft
	}
	return t
}

// start returns the index of the first record of path to send, and whether
// the file is already done.
func (t *tracker) start(path string) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ft := t.files[path]
	if ft == nil {
		t.files[path] = &fileTrack{acked: map[int64]struct{}{}, total: -1}
		return 0, false
	}
	return ft.next, ft.total >= 0 && ft.next >= ft.total
}

func (t *tracker) ack(path string, idx int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ft := t.files[path]
	if idx < ft.next {
		return
	}
	ft.acked[idx] = struct{}{}
	for {
		if _, ok := ft.acked[ft.next]; !ok {
			break
		}
		delete(ft.acked, ft.next)
		ft.next++
	}
}

// skip marks records that were read but produced nothing to wait for
// (skipped as already done).
func (t *tracker) finish(path string, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.files[path].total = total
}

func (t *tracker) snapshot() *Checkpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := &Checkpoint{Version: 1, Files: make(map[string]*FileMark, len(t.files))}
	for path, ft := range t.files {
		cp.Files[path] = &FileMark{Next: ft.next, Done: ft.total >= 0 && ft.next >= ft.total}
	}
	return cp
}

// ack is one record's acknowledgement.
type ack struct {
	t    *tracker
	path string
	idx  int64
}

// Ack marks the record done; an abandoned record (err != nil) stays undone,
// so that --resume sends it again.
func (a *ack) Ack(err error) {
	if err == nil {
		a.t.ack(a.path, a.idx)
	}
}
