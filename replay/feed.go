package replay

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/castle-destination/castle-destination/pipeline"
)

// DefaultMaxOpenUnits bounds the units (files, objects, partitions) that
// are started but not yet behind the checkpoint's watermark. When one
// record holds the watermark back (a paced user, an event being retried),
// reading continues over this many units and then waits, so the progress
// kept in memory and in the checkpoint stays bounded.
const DefaultMaxOpenUnits = 4096

// Feed is where a source sends its records. It skips records a checkpoint
// marks done, keeps only this shard's part of each record, and follows the
// pipeline's acknowledgements to know which records are done.
//
// A source calls Open for each unit of its input in order, Send for each
// record of the unit, and Close when the unit is read to its end.
type Feed struct {
	out   chan<- pipeline.Record
	shard Shard

	mu sync.Mutex
	// watermark: units [0, done) are finished; last names unit done-1.
	done  int64
	last  string
	after map[int64]finishedUnit // finished units past the watermark
	open  map[int64]*Unit
	// prior are the units the loaded checkpoint had in progress, taken
	// over by Open.
	prior map[int64]UnitMark
	slots chan struct{} // one per unit opened and not yet behind the watermark
	// moved is set once a record or a unit is done in this run: the
	// checkpoint then records progress.
	moved bool
	// keyed is set when a unit's seq is a key of its own (a Kafka
	// partition) rather than its position in the input (byKey): a
	// finished unit then stays in after with its end, and no watermark
	// is kept.
	keyed bool
	// legacy is set while the loaded checkpoint numbers Kafka partitions
	// by position among those with records in the window (version 3);
	// byKey renumbers it.
	legacy bool
	// until is the end of the window the source fixed (fixUntil).
	until time.Time

	skipped   atomic.Int64 // records done in an earlier run (resume)
	others    atomic.Int64 // records or envelope items of other shards
	nfinished atomic.Int64 // units finished in this run
	resumed   atomic.Int64 // units skipped as finished in an earlier run
}

func newFeed(out chan<- pipeline.Record, shard Shard, cp *Checkpoint, maxOpen int) *Feed {
	if maxOpen <= 0 {
		maxOpen = DefaultMaxOpenUnits
	}
	f := &Feed{
		out: out, shard: shard,
		after: map[int64]finishedUnit{}, open: map[int64]*Unit{}, prior: map[int64]UnitMark{},
		slots: make(chan struct{}, maxOpen),
	}
	if cp != nil {
		f.done, f.last, f.legacy, f.until = cp.Done, cp.Last, cp.legacy, cp.Until
		for _, u := range cp.After {
			f.after[u.Seq] = finishedUnit{name: u.Name, end: u.End}
		}
		for _, u := range cp.Open {
			f.prior[u.Seq] = u
		}
	}
	return f
}

// fixUntil returns the end of the window of a replay that names none:
// the one the checkpoint keeps from the replay's first start, or else now,
// which the checkpoint then keeps for the resumes.
func (f *Feed) fixUntil(now time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.until.IsZero() {
		f.until = now
	}
	return f.until
}

// ChangedError says that the input is not the one the checkpoint was
// written for.
type ChangedError struct {
	Seq      int64
	Was, Now string
}

func (e *ChangedError) Error() string {
	if e.Now == "" {
		return fmt.Sprintf("the input changed since the checkpoint was written: it names %q (unit #%d), which the input no longer has; start over without --resume (or with another --checkpoint)", e.Was, e.Seq)
	}
	return fmt.Sprintf("the input changed since the checkpoint was written: unit #%d is now %q, the checkpoint names %q; start over without --resume (or with another --checkpoint)", e.Seq, e.Now, e.Was)
}

// finishedUnit is a unit finished past the watermark (or any finished
// unit, keyed); slot is set when it holds one of Feed.slots (it was opened
// in this run). end is a keyed unit's: its records below end are done.
type finishedUnit struct {
	name string
	slot bool
	end  int64
}

// byKey makes the units keyed: the source numbers each unit by a key of
// its own (a Kafka partition), opens every unit, records or none, and
// gives each its end (OpenUpTo). A unit finished in an earlier run is
// then skipped only when it has not grown since: one whose input grew
// (records arrived in a partition) is read on from where it ended, so a
// unit gaining records or another becoming empty changes nothing else.
//
// all are the units by key; numbered are those a checkpoint of version 3
// numbered by position (a Kafka replay's partitions with records in the
// window, in order), each with its end now. Such a checkpoint is
// renumbered by key, and refused when its names do not match, as it was
// before. A checkpoint naming a key that is not in all is refused.
func (f *Feed) byKey(all, numbered []UnitRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.legacy {
		at := func(pos int64, name string) (UnitRef, error) {
			if pos < 0 || pos >= int64(len(numbered)) {
				return UnitRef{}, &ChangedError{Seq: pos, Was: name}
			}
			if u := numbered[pos]; name == "" || u.Name == name {
				return u, nil
			}
			return UnitRef{}, &ChangedError{Seq: pos, Was: name, Now: numbered[pos].Name}
		}
		after := map[int64]finishedUnit{}
		for pos := range f.done {
			name := ""
			if pos == f.done-1 {
				name = f.last
			}
			u, err := at(pos, name)
			if err != nil {
				return err
			}
			// Finished whole, up to its end now: as version 3 skipped it.
			after[u.Seq] = finishedUnit{name: u.Name, end: u.End}
		}
		for pos, fu := range f.after {
			u, err := at(pos, fu.name)
			if err != nil {
				return err
			}
			after[u.Seq] = finishedUnit{name: u.Name, end: u.End}
		}
		prior := map[int64]UnitMark{}
		for pos, m := range f.prior {
			u, err := at(pos, m.Name)
			if err != nil {
				return err
			}
			m.Seq = u.Seq
			prior[u.Seq] = m
		}
		f.done, f.last, f.after, f.prior, f.legacy = 0, "", after, prior, false
	}
	if f.done > 0 {
		return fmt.Errorf("the checkpoint counts %d units finished in order (%q the last); this input's units are not in order: start over without --resume (or with another --checkpoint)", f.done, f.last)
	}
	names := make(map[int64]string, len(all))
	for _, u := range all {
		names[u.Seq] = u.Name
	}
	check := func(seq int64, was string) error {
		if now, ok := names[seq]; !ok || now != was {
			return &ChangedError{Seq: seq, Was: was, Now: now}
		}
		return nil
	}
	for seq, fu := range f.after {
		if err := check(seq, fu.name); err != nil {
			return err
		}
	}
	for seq, m := range f.prior {
		if err := check(seq, m.Name); err != nil {
			return err
		}
	}
	f.keyed = true
	return nil
}

// recorded returns where the checkpoint has the keyed unit at seq: the
// end of a finished one, or where one in progress was done up to.
func (f *Feed) recorded(seq int64) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fu, ok := f.after[seq]; ok {
		return fu.end, true
	}
	if m, ok := f.prior[seq]; ok {
		return m.Next, true
	}
	return 0, false
}

// Unit is one file, S3 object or Kafka partition being read.
type Unit struct {
	f    *Feed
	seq  int64
	name string
	// guarded by f.mu
	next   int64 // every record below is done
	done   spans // done records above next
	end    int64 // records [.., end) once read to the end; -1 before
	expect int64 // index of the next record the source should send
	// resumedFrom is the index the checkpoint said the unit was done up
	// to, -1 when it had no mark; resumedDone the ranges it said were done
	// above it.
	resumedFrom int64
	resumedDone spans
	// acks are the acknowledgements Send hands out, made ackChunk at a
	// time; touched only by Send's caller.
	acks []ack
}

// ackChunk is how many acknowledgements a Unit makes at once: one
// allocation for that many records instead of one each.
const ackChunk = 64

// Open starts the unit at position seq of the input, named name, whose
// first record has index first. It returns nil when a checkpoint says the
// unit is finished: the source skips it. Open waits while the maximum of
// units are open (Config.MaxOpenUnits); it fails when ctx ends or when
// the checkpoint names another unit at this position.
func (f *Feed) Open(ctx context.Context, seq int64, name string, first int64) (*Unit, error) {
	return f.OpenUpTo(ctx, seq, name, first, -1)
}

// OpenUpTo is Open for a unit whose records are [first, end) (end -1:
// not known before it is read). Keyed units (byKey) give their end: a
// unit finished earlier whose end has grown since is opened again, from
// where it ended.
func (f *Feed) OpenUpTo(ctx context.Context, seq int64, name string, first, end int64) (*Unit, error) {
	if done, err := f.finished(seq, name, end); done || err != nil {
		if done {
			f.resumed.Add(1)
		}
		return nil, err
	}
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := &Unit{f: f, seq: seq, name: name, next: first, end: -1, expect: first, resumedFrom: -1}
	if m, ok := f.prior[seq]; ok {
		u.resumedFrom = m.Next
		if m.Name != name {
			<-f.slots
			return nil, &ChangedError{Seq: seq, Was: m.Name, Now: name}
		}
		delete(f.prior, seq)
		u.next = max(first, m.Next)
		u.expect = u.next
		u.done = normalize(m.Done)
		u.resumedDone = slices.Clone(u.done)
		u.done, u.next = u.done.popFront(u.next)
	}
	f.open[seq] = u
	return u, nil
}

// finished reports whether the checkpoint marks the unit at seq finished,
// and fails when it names another unit there. A keyed unit is finished
// when it ended at end or later; one that ended earlier is marked done up
// to where it ended, and read on.
func (f *Feed) finished(seq int64, name string, end int64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keyed {
		fu, ok := f.after[seq]
		switch {
		case !ok:
			return false, nil
		case fu.name != name:
			return false, &ChangedError{Seq: seq, Was: fu.name, Now: name}
		case end >= 0 && end > fu.end:
			delete(f.after, seq)
			f.prior[seq] = UnitMark{UnitRef: UnitRef{Seq: seq, Name: name}, Next: fu.end}
			return false, nil
		}
		return true, nil
	}
	if seq < f.done {
		if seq == f.done-1 && f.last != "" && f.last != name {
			return false, &ChangedError{Seq: seq, Was: f.last, Now: name}
		}
		return true, nil
	}
	if was, ok := f.after[seq]; ok {
		if was.name != name {
			return false, &ChangedError{Seq: seq, Was: was.name, Now: name}
		}
		return true, nil
	}
	return false, nil
}

// notDoneBefore returns the ranges of [from, to) that the checkpoint the
// unit resumed from did not mark done.
func (u *Unit) notDoneBefore(from, to int64) []Span {
	var out []Span
	for _, d := range u.resumedDone {
		if d.From >= to {
			break
		}
		if d.From > from {
			out = append(out, Span{from, d.From})
		}
		from = max(from, d.To)
	}
	if from < to {
		out = append(out, Span{from, to})
	}
	return out
}

// resumeAt is the index of the first record not known to be done: a
// source that can seek (a Kafka partition) starts there.
func (u *Unit) resumeAt() int64 {
	u.f.mu.Lock()
	defer u.f.mu.Unlock()
	return u.next
}

// Send hands the record at index idx of the unit to the pipeline, or
// skips it when it is done already or belongs to another shard. A nil
// rec.Value is sent like any other (a Kafka record with a null value: the
// mapping dead-letters it as malformed, as run does); a record with
// nothing to send goes to Pass instead. Indexes must increase; indexes
// jumped over (a Kafka offset gap) count as done. Send blocks while the
// pipeline is full and fails only when ctx ends.
func (u *Unit) Send(ctx context.Context, idx int64, rec pipeline.Record) error {
	f := u.f
	if u.reach(idx) {
		f.skipped.Add(1)
		return nil
	}
	value, mine, others := f.shard.Select(rec.Value)
	if others > 0 {
		f.others.Add(int64(others))
	}
	if !mine {
		u.ack(idx)
		return nil
	}
	rec.Value = value
	if len(u.acks) == 0 {
		u.acks = make([]ack, ackChunk)
	}
	a := &u.acks[0]
	u.acks = u.acks[1:]
	*a = ack{u: u, idx: idx}
	rec.Acker = a
	select {
	case f.out <- rec:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pass marks the record at index idx of the unit read, with nothing to
// send: the source reported or counted why (a line too long, a Kafka
// record stamped outside the window). Indexes must increase, as for Send.
func (u *Unit) Pass(idx int64) {
	if u.reach(idx) {
		u.f.skipped.Add(1)
		return
	}
	u.ack(idx)
}

// reach moves the unit on to the record at idx, marking the indexes jumped
// over done, and reports whether that record was done already.
func (u *Unit) reach(idx int64) bool {
	f := u.f
	f.mu.Lock()
	defer f.mu.Unlock()
	u.jumpLocked(idx)
	u.expect = max(u.expect, idx+1)
	return idx < u.next || u.done.has(idx)
}

// Close says the unit was read to its end: its records are [first, end).
func (u *Unit) Close(end int64) {
	f := u.f
	f.mu.Lock()
	defer f.mu.Unlock()
	u.jumpLocked(end)
	u.end = end
	u.maybeFinishLocked()
}

// jumpLocked marks the indexes from the next expected up to idx done:
// the source skipped them (gaps, control records). f.mu must be held.
func (u *Unit) jumpLocked(idx int64) {
	for u.expect < idx {
		u.ackLocked(u.expect)
		u.expect++
	}
}

func (u *Unit) ack(idx int64) {
	u.f.mu.Lock()
	defer u.f.mu.Unlock()
	u.ackLocked(idx)
}

func (u *Unit) ackLocked(idx int64) {
	if idx < u.next {
		return
	}
	u.f.moved = true
	if idx == u.next {
		u.next++
		u.done, u.next = u.done.popFront(u.next)
	} else {
		u.done = u.done.add(idx)
	}
	u.maybeFinishLocked()
}

// maybeFinishLocked moves a unit whose every record is done out of the
// open set and advances the watermark over finished units.
func (u *Unit) maybeFinishLocked() {
	f := u.f
	if u.end < 0 || u.next < u.end || f.open[u.seq] != u {
		return
	}
	delete(f.open, u.seq)
	f.moved = true
	f.nfinished.Add(1)
	if f.keyed {
		f.after[u.seq] = finishedUnit{name: u.name, end: u.end}
		<-f.slots
		return
	}
	f.after[u.seq] = finishedUnit{name: u.name, slot: true}
	for {
		fu, ok := f.after[f.done]
		if !ok {
			return
		}
		delete(f.after, f.done)
		f.done++
		f.last = fu.name
		if fu.slot {
			<-f.slots
		}
	}
}

// snapshot is the checkpoint of the progress so far.
func (f *Feed) snapshot(replay string) *Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := &Checkpoint{Version: checkpointVersion, Replay: replay, Done: f.done, Last: f.last, Until: f.until}
	if f.legacy {
		// Not renumbered yet (the source failed before): kept as it was.
		cp.Version, cp.legacy = legacyKafkaVersion, true
	}
	for seq, fu := range f.after {
		cp.After = append(cp.After, UnitRef{Seq: seq, Name: fu.name, End: fu.end})
	}
	slices.SortFunc(cp.After, func(a, b UnitRef) int { return cmpInt(a.Seq, b.Seq) })
	for _, u := range f.open {
		cp.Open = append(cp.Open, UnitMark{UnitRef: UnitRef{Seq: u.seq, Name: u.name}, Next: u.next, Done: slices.Clone([]Span(u.done))})
	}
	// Units in progress at the last run's stop that this run has not
	// reached yet keep their marks.
	for _, m := range f.prior {
		cp.Open = append(cp.Open, m)
	}
	slices.SortFunc(cp.Open, func(a, b UnitMark) int { return cmpInt(a.Seq, b.Seq) })
	return cp
}

// settled reports whether every unit opened is finished and none of the
// checkpoint's units in progress is left (and, units being in order, none
// finished past the watermark).
func (f *Feed) settled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.open) == 0 && len(f.prior) == 0 && (f.keyed || len(f.after) == 0)
}

// progressed reports whether any record or unit was done in this run.
func (f *Feed) progressed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.moved
}

// openUnits is the number of units in memory: open, or finished past the
// watermark.
func (f *Feed) openUnits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.open) + len(f.after)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ack is one record's acknowledgement.
type ack struct {
	u   *Unit
	idx int64
}

// Ack marks the record done; an abandoned record (err != nil) stays undone,
// so that --resume sends it again.
func (a *ack) Ack(err error) {
	if err == nil {
		a.u.ack(a.idx)
	}
}
