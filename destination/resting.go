package destination

import (
	"math"
	"time"
)

// restTable holds the pacing state of resting users (restingPace) by the
// 64-bit hash of their id, 16 bytes a user: a replay keeps one for every
// user who sent in the last few seconds, hundreds of thousands at full
// speed, and a Go map of restingPace spent 37–74 bytes on each (a 32-byte
// slot, at most seven eighths full, doubling).
//
// Slots are found by linear probing from a key's low bits and removed by
// moving the rest of their probe run back, so no tombstones build up. Send
// times are kept as milliseconds since base, rounded up: a user then looks
// as if it sent up to a millisecond later than it did, which can only
// delay its next send by as much, never let it send early. The few users
// a Castle hint holds past their send times (notBefore still ahead when
// they rest) keep that time in held.
type restTable struct {
	slots []restSlot // a power of two long, or empty
	n     int
	peak  int // the most users held since slots was sized
	base  time.Duration
	held  map[uint64]time.Duration
}

// restSlot is one resting user. key 0 marks an empty slot (keys have their
// lowest bit set); a send time of 0 is no send.
type restSlot struct {
	key  uint64
	sent [restSends]uint32 // milliseconds since base, plus one; oldest first
}

const (
	minRestSlots = 64
	// restSpan is how far past base a send time may lie before the table
	// moves base: a uint32 of milliseconds holds 49 days.
	restSpan = time.Duration(math.MaxUint32/2) * time.Millisecond
)

func (t *restTable) len() int { return t.n }

// home returns the slot where key's probe run starts.
func (t *restTable) home(key uint64) int { return int(key) & (len(t.slots) - 1) }

// find returns key's slot, or the empty slot where it would go, and
// whether key is there.
func (t *restTable) find(key uint64) (int, bool) {
	mask := len(t.slots) - 1
	for i := t.home(key); ; i = (i + 1) & mask {
		switch t.slots[i].key {
		case key:
			return i, true
		case 0:
			return i, false
		}
	}
}

func (t *restTable) encode(d time.Duration) uint32 { return t.encodeAt(d, t.base) }

// encodeAt is d in milliseconds since base, rounded up, plus one; 0 for
// noSend. base is never later than a send time kept (moveBase).
func (t *restTable) encodeAt(d, base time.Duration) uint32 {
	if d == noSend {
		return 0
	}
	return uint32((d-base+time.Millisecond-1)/time.Millisecond) + 1
}

func (t *restTable) decode(v uint32) time.Duration {
	if v == 0 {
		return noSend
	}
	return t.base + time.Duration(v-1)*time.Millisecond
}

// put stores r as the state of the user with key (its lowest bit set), at
// now. A user already there with the same key (two ids with one hash) is
// overwritten.
func (t *restTable) put(key uint64, r restingPace, now time.Duration) {
	if now-t.base >= restSpan {
		t.moveBase(now)
	}
	if 4*(t.n+1) > 3*len(t.slots) {
		t.resize(max(2*len(t.slots), minRestSlots))
	}
	i, found := t.find(key)
	if found {
		t.n--
		delete(t.held, key)
	}
	s := &t.slots[i]
	s.key = key
	for k, d := range r.sent {
		s.sent[k] = t.encode(d)
	}
	if r.notBefore > now {
		if t.held == nil {
			t.held = make(map[uint64]time.Duration)
		}
		t.held[key] = r.notBefore
	}
	t.n++
	t.peak = max(t.peak, t.n)
}

// take removes the user with key and returns its state.
func (t *restTable) take(key uint64) (restingPace, bool) {
	if t.n == 0 {
		return restingPace{}, false
	}
	i, ok := t.find(key)
	if !ok {
		return restingPace{}, false
	}
	r := t.at(i)
	t.remove(i)
	return r, true
}

// at returns the state in the full slot i.
func (t *restTable) at(i int) restingPace {
	s := &t.slots[i]
	var r restingPace
	for k, v := range s.sent {
		r.sent[k] = t.decode(v)
	}
	if t.held != nil {
		r.notBefore = t.held[s.key]
	}
	return r
}

// remove empties the full slot i and moves later entries of its probe run
// back, so that each stays reachable from its home slot.
func (t *restTable) remove(i int) {
	if t.held != nil {
		delete(t.held, t.slots[i].key)
	}
	mask := len(t.slots) - 1
	t.slots[i] = restSlot{}
	t.n--
	for j := (i + 1) & mask; t.slots[j].key != 0; j = (j + 1) & mask {
		home := t.home(t.slots[j].key)
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i], t.slots[j] = t.slots[j], restSlot{}
			i = j
		}
	}
}

// sweep removes every user for which drop returns true, then gives back
// the room of a table holding a quarter of its peak or less (shrinkDue,
// as the lanes' map).
func (t *restTable) sweep(drop func(restingPace) bool) {
	for i := 0; i < len(t.slots); {
		// remove may move a later entry into i: look at i again. An
		// entry it moves from the front to the back of the slots is
		// looked at twice, with the same answer.
		if t.slots[i].key != 0 && drop(t.at(i)) {
			t.remove(i)
			continue
		}
		i++
	}
	if shrinkDue(t.n, &t.peak) {
		size := minRestSlots
		for 2*t.n > size { // at most half full after
			size *= 2
		}
		t.resize(size)
	}
	if len(t.held) == 0 {
		t.held = nil
	}
}

// resize moves the users into a table of size slots.
func (t *restTable) resize(size int) {
	old := t.slots
	t.slots = make([]restSlot, size)
	for _, s := range old {
		if s.key != 0 {
			i, _ := t.find(s.key)
			t.slots[i] = s
		}
	}
}

// moveBase makes base recent enough that now, and every send time after
// it, fits the slots' milliseconds. A send time kept from before the new
// base is at least restSpan/2 old, so no window counts it: it is dropped.
func (t *restTable) moveBase(now time.Duration) {
	base := now - restSpan/2
	base -= base % time.Millisecond // send times keep rounding up to whole milliseconds
	for i := range t.slots {
		s := &t.slots[i]
		if s.key == 0 {
			continue
		}
		for k, v := range s.sent {
			d := t.decode(v)
			if d < base {
				d = noSend
			}
			s.sent[k] = t.encodeAt(d, base)
		}
	}
	t.base = base
}
