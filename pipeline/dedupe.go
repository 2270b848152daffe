package pipeline

import (
	"errors"
	"hash/maphash"
	"sync"
)

// Dedupe is the bounded window of forwarded messageIds that drops
// duplicates (reason duplicate), the last filter before delivery: the most
// recent size ids are remembered and the oldest is evicted first (FIFO).
//
// Ids are kept as 62-bit hashes: two ids collide with probability about
// size/2^62 per message, which would drop one event as a duplicate. The
// hashes sit in a ring in arrival order, indexed by open-addressing tables
// of ring positions: about 16 bytes per id when full (16 MB for the
// default million), instead of the 40 of a Go map. Safe for concurrent
// use.
//
// The window fills as ids arrive, and nothing it allocates on the way is
// large: the ring grows in chunks it never copies, and the index is split
// into segments (by a hash's top bits) that each double on their own. One
// ring slice grown by append, and one table doubled, left their old
// copies behind at every step: about twice the window's own size in freed
// heap that the process kept when the window filled.
//
// The pipeline marks an id in flight while its event is not yet settled
// (claim, settle). A copy read meanwhile is not dropped at once, or its
// record would be done, and committed, before the event it duplicates
// was delivered: a partition handed back to this worker in a rebalance
// is read again from its last commit while the first reading's events
// are still in flight, and had the copies been dropped as duplicates,
// their offsets would have been committed for events a restart then lost.
// The copy's record waits instead: done, as a duplicate, once the first
// event is delivered or dead-lettered; abandoned, to be read again, if
// the first is not.
type Dedupe struct {
	mu   sync.Mutex
	seed maphash.Seed
	size int
	// ring holds the hashes in arrival order, chunkLen to a chunk; 0 marks
	// a forgotten id. len is how many are written, until the ring is full.
	ring [][]uint64
	len  int
	next int // once the ring is full, the position evicted next
	segs [segments]segment
	n    int // ids in the index
	// waits are the records of copies read while their id was in flight,
	// by hash; waiting counts them.
	waits   map[uint64][]*pending
	waiting int
}

// segment is a part of the index: ring positions + 1 (0: an empty slot),
// found by linear probing from a hash's low bits; at most half full.
type segment struct {
	table []uint32
	n     int
}

const (
	chunkBits = 12
	chunkLen  = 1 << chunkBits // hashes in a ring chunk: 32 KiB
	segBits   = 6
	segments  = 1 << segBits
	minTable  = 16 // slots in a segment's first table

	// inFlight is the bit of a ring entry that marks its id's event as
	// not yet settled; hashes have it clear, and their lowest bit set.
	inFlight = 2
)

// claimed says what claim found.
type claimed int

const (
	claimNew     claimed = iota // not in the window: added
	claimDup                    // a duplicate of a settled event
	claimWaiting                // a copy of an event in flight: its record waits
)

// NewDedupe returns a window of size ids (at least 1).
func NewDedupe(size int) *Dedupe {
	return &Dedupe{seed: maphash.MakeSeed(), size: max(size, 1)}
}

func (d *Dedupe) hash(id string) uint64 { return maphash.String(d.seed, id)&^inFlight | 1 }

func (d *Dedupe) at(pos uint32) uint64 { return d.ring[pos>>chunkBits][pos&(chunkLen-1)] }

// key is the hash at pos, without the inFlight bit.
func (d *Dedupe) key(pos uint32) uint64 { return d.at(pos) &^ inFlight }

func (d *Dedupe) set(pos int, h uint64) { d.ring[pos>>chunkBits][pos&(chunkLen-1)] = h }

func (d *Dedupe) segment(h uint64) *segment { return &d.segs[h>>(64-segBits)] }

// find returns the slot of h in s, and whether h is there (else the slot
// is the empty one where it would go). d.mu must be held.
func (d *Dedupe) find(s *segment, h uint64) (int, bool) {
	if len(s.table) == 0 {
		s.table = make([]uint32, minTable)
	}
	mask := len(s.table) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		p := s.table[i]
		if p == 0 {
			return i, false
		}
		if d.key(p-1) == h {
			return i, true
		}
	}
}

// Add adds id to the window and reports whether it was new: false means a
// duplicate.
func (d *Dedupe) Add(id string) bool {
	_, c := d.claim(id, nil)
	return c == claimNew
}

// claim adds id to the window, as in flight when rec is not nil, and
// returns its position. A copy of an id in flight makes rec wait for its
// event (one more share of rec to settle): settle completes it.
func (d *Dedupe) claim(id string, rec *pending) (int, claimed) {
	h := d.hash(id)
	s := d.segment(h)
	d.mu.Lock()
	defer d.mu.Unlock()
	if i, ok := d.find(s, h); ok {
		pos := int(s.table[i] - 1)
		if rec == nil || d.at(uint32(pos))&inFlight == 0 {
			return pos, claimDup
		}
		rec.left.Add(1)
		if d.waits == nil {
			d.waits = make(map[uint64][]*pending)
		}
		d.waits[h] = append(d.waits[h], rec)
		d.waiting++
		return pos, claimWaiting
	}
	var pos int
	if d.len < d.size {
		pos = d.len
		if pos&(chunkLen-1) == 0 {
			d.ring = append(d.ring, make([]uint64, min(chunkLen, d.size-pos)))
		}
		d.len++
	} else {
		pos = d.next
		if old := d.key(uint32(pos)); old != 0 {
			os := d.segment(old)
			if i, ok := d.find(os, old); ok {
				d.remove(os, i)
			}
		}
		d.next = (d.next + 1) % d.size
	}
	if rec != nil {
		d.set(pos, h|inFlight)
	} else {
		d.set(pos, h)
	}
	if 2*(s.n+1) > len(s.table) {
		d.grow(s)
	}
	i, _ := d.find(s, h)
	s.table[i] = uint32(pos + 1)
	s.n++
	d.n++
	return pos, claimNew
}

// Forget removes id, so that the message is not a duplicate when it is read
// again. Its place in the ring stays until evicted.
func (d *Dedupe) Forget(id string) {
	for _, w := range d.settle(id, -1, errForgotten) {
		w.done(errForgotten)
	}
}

var errForgotten = errors.New("pipeline: the message it duplicates was forgotten")

// settle ends the flight of id, claimed at pos (-1: wherever it is): with
// a nil err its event was delivered or dead-lettered, and id stays as a
// duplicate; otherwise it was not, and id is forgotten, so that reading
// the message again does not drop it. It returns the records of the copies
// that waited for it, each to be settled with err.
func (d *Dedupe) settle(id string, pos int, err error) []*pending {
	h := d.hash(id)
	s := d.segment(h)
	d.mu.Lock()
	defer d.mu.Unlock()
	if pos < 0 {
		if i, ok := d.find(s, h); ok {
			pos = int(s.table[i] - 1)
		}
	} else if pos >= d.len || d.key(uint32(pos)) != h {
		// Evicted in flight: the id may be in the window again, for a
		// later copy still in flight, which this must not settle.
		pos = -1
	}
	if pos >= 0 {
		if err == nil {
			d.set(pos, h)
		} else if i, ok := d.find(s, h); ok {
			d.set(pos, 0)
			d.remove(s, i)
		}
	}
	ws := d.waits[h]
	delete(d.waits, h)
	d.waiting -= len(ws)
	return ws
}

// remove empties slot i of s and moves later entries of its probe run
// back, so that every entry stays reachable from its home slot (deletion
// without tombstones). d.mu must be held.
func (d *Dedupe) remove(s *segment, i int) {
	mask := len(s.table) - 1
	s.table[i] = 0
	s.n--
	d.n--
	for j := (i + 1) & mask; s.table[j] != 0; j = (j + 1) & mask {
		home := int(d.key(s.table[j]-1)) & mask
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.table[i], s.table[j] = s.table[j], 0
			i = j
		}
	}
}

// grow doubles the table of s. d.mu must be held.
func (d *Dedupe) grow(s *segment) {
	old := s.table
	s.table = make([]uint32, 2*len(old))
	mask := len(s.table) - 1
	for _, p := range old {
		if p == 0 {
			continue
		}
		i := int(d.key(p-1)) & mask
		for s.table[i] != 0 {
			i = (i + 1) & mask
		}
		s.table[i] = p
	}
}

// Waiting is the number of copies waiting for the event they duplicate
// to settle.
func (d *Dedupe) Waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waiting
}

// Len is the number of ids remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}
