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
// hashes sit in a ring in arrival order, indexed by an open-addressing
// table of ring positions: about 16 bytes per id when full (16 MB for the
// default million), instead of the 40 of a Go map. Safe for concurrent
// use.
type Dedupe struct {
	mu   sync.Mutex
	seed maphash.Seed
	size int
	ring []uint64 // hashes in arrival order; 0 marks a forgotten id
	next int      // once the ring is full, the oldest entry (evicted next)
	// table holds ring positions + 1 (0: empty slot), found by linear
	// probing from a hash's low bits; at most half full.
	table []uint32
	n     int // ids in the table
}

// NewDedupe returns a window of size ids (at least 1).
func NewDedupe(size int) *Dedupe {
	size = max(size, 1)
	return &Dedupe{seed: maphash.MakeSeed(), size: size, table: make([]uint32, tableSize(min(size, 1<<14)))}
}

// tableSize is the power of two at least twice n.
func tableSize(n int) int {
	s := 16
	for s < 2*n {
		s *= 2
	}
	return s
}

func (d *Dedupe) hash(id string) uint64 { return maphash.String(d.seed, id) | 1 }

// find returns the slot of h, and whether h is there (else the slot is the
// empty one where it would go). d.mu must be held.
func (d *Dedupe) find(h uint64) (int, bool) {
	mask := len(d.table) - 1
	for s := int(h) & mask; ; s = (s + 1) & mask {
		p := d.table[s]
		if p == 0 {
			return s, false
		}
		if d.ring[p-1] == h {
			return s, true
		}
	}
}

// Add adds id to the window and reports whether it was new: false means a
// duplicate.
func (d *Dedupe) Add(id string) bool {
	h := d.hash(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.find(h); ok {
		return false
	}
	var pos int
	if len(d.ring) < d.size {
		pos = len(d.ring)
		d.ring = append(d.ring, h)
	} else {
		pos = d.next
		if old := d.ring[pos]; old != 0 {
			if s, ok := d.find(old); ok {
				d.remove(s)
			}
		}
		d.ring[pos] = h
		d.next = (d.next + 1) % d.size
	}
	if 2*(d.n+1) > len(d.table) {
		d.grow()
	}
	s, _ := d.find(h)
	d.table[s] = uint32(pos + 1)
	d.n++
	return true
}

// Forget removes id, so that the message is not a duplicate when it is read
// again: the caller calls it when a forwarded event was not delivered after
// all (canceled at shutdown). Its place in the ring stays until evicted.
func (d *Dedupe) Forget(id string) {
	h := d.hash(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.find(h); ok {
		d.ring[d.table[s]-1] = 0
		d.remove(s)
	}
}

// remove empties slot s and moves later entries of its probe run back, so
// that every entry stays reachable from its home slot (deletion without
// tombstones). d.mu must be held.
func (d *Dedupe) remove(s int) {
	mask := len(d.table) - 1
	d.table[s] = 0
	d.n--
	for i := (s + 1) & mask; d.table[i] != 0; i = (i + 1) & mask {
		home := int(d.ring[d.table[i]-1]) & mask
		// The entry at i may move to the hole at s unless its home lies
		// cyclically in (s, i].
		if (i > s && (home <= s || home > i)) || (i < s && home <= s && home > i) {
			d.table[s], d.table[i] = d.table[i], 0
			s = i
		}
	}
}

// grow doubles the table. d.mu must be held.
func (d *Dedupe) grow() {
	d.table = make([]uint32, 2*len(d.table))
	for pos, h := range d.ring {
		if h == 0 {
			continue
		}
		s, ok := d.find(h)
		if !ok {
			d.table[s] = uint32(pos + 1)
		}
	}
}

// Len is the number of ids remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}
