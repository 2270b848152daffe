package pipeline

import (
	"hash/maphash"
	"sync"
)

// Dedupe is the bounded window of forwarded messageIds that drops
// duplicates (reason duplicate), the last filter before delivery: the most recent size
// ids are remembered and the oldest is evicted first (FIFO). Ids are kept
// as 64-bit hashes (about 40 bytes per id instead of the id itself): two
// ids collide with probability about size/2^64 per message, which would
// drop one event as a duplicate. Safe for concurrent use.
type Dedupe struct {
	mu   sync.Mutex
	seed maphash.Seed
	size int
	ids  map[uint64]struct{}
	ring []uint64
	next int
}

// NewDedupe returns a window of size ids (at least 1).
func NewDedupe(size int) *Dedupe {
	size = max(size, 1)
	return &Dedupe{seed: maphash.MakeSeed(), size: size,
		ids: make(map[uint64]struct{}, min(size, 1<<16)), ring: make([]uint64, 0, min(size, 1<<16))}
}

// Add adds id to the window and reports whether it was new: false means a
// duplicate.
func (d *Dedupe) Add(id string) bool {
	h := maphash.String(d.seed, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ids[h]; ok {
		return false
	}
	if len(d.ring) < d.size {
		d.ring = append(d.ring, h)
	} else {
		delete(d.ids, d.ring[d.next])
		d.ring[d.next] = h
		d.next = (d.next + 1) % d.size
	}
	d.ids[h] = struct{}{}
	return true
}

// Forget removes id, so that the message is not a duplicate when it is read
// again: the caller calls it when a forwarded event was not delivered after
// all (canceled at shutdown). Its slot in the ring stays until evicted.
func (d *Dedupe) Forget(id string) {
	h := maphash.String(d.seed, id)
	d.mu.Lock()
	delete(d.ids, h)
	d.mu.Unlock()
}

// Len is the number of ids remembered.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}
