package pipeline

import (
	"hash/maphash"
	"sync"
)

// Dedupe is the bounded window of forwarded messageIds that drops
// duplicates (reason duplicate), the last filter before delivery: the most
// recent size ids are remembered and the oldest is evicted first (FIFO).
//
// Ids are kept as 64-bit hashes: two ids collide with probability about
// size/2^64 per message, which would drop one event as a duplicate. The
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
)

// NewDedupe returns a window of size ids (at least 1).
func NewDedupe(size int) *Dedupe {
	return &Dedupe{seed: maphash.MakeSeed(), size: max(size, 1)}
}

func (d *Dedupe) hash(id string) uint64 { return maphash.String(d.seed, id) | 1 }

func (d *Dedupe) at(pos uint32) uint64 { return d.ring[pos>>chunkBits][pos&(chunkLen-1)] }

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
		if d.at(p-1) == h {
			return i, true
		}
	}
}

// Add adds id to the window and reports whether it was new: false means a
// duplicate.
func (d *Dedupe) Add(id string) bool {
	h := d.hash(id)
	s := d.segment(h)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.find(s, h); ok {
		return false
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
		if old := d.at(uint32(pos)); old != 0 {
			os := d.segment(old)
			if i, ok := d.find(os, old); ok {
				d.remove(os, i)
			}
		}
		d.next = (d.next + 1) % d.size
	}
	d.set(pos, h)
	if 2*(s.n+1) > len(s.table) {
		d.grow(s)
	}
	i, _ := d.find(s, h)
	s.table[i] = uint32(pos + 1)
	s.n++
	d.n++
	return true
}

// Forget removes id, so that the message is not a duplicate when it is read
// again: the caller calls it when a forwarded event was not delivered after
// all (canceled at shutdown). Its place in the ring stays until evicted.
func (d *Dedupe) Forget(id string) {
	h := d.hash(id)
	s := d.segment(h)
	d.mu.Lock()
	defer d.mu.Unlock()
	if i, ok := d.find(s, h); ok {
		d.set(int(s.table[i]-1), 0)
		d.remove(s, i)
	}
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
		home := int(d.at(s.table[j]-1)) & mask
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
		i := int(d.at(p-1)) & mask
		for s.table[i] != 0 {
			i = (i + 1) & mask
		}
		s.table[i] = p
	}
}

// Len is the number of ids remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}
