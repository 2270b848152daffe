package mapping

import (
	"bytes"
	"container/list"
	"hash/maphash"
	"strings"
	"sync"
)

// Dedupe is a bounded window of forwarded messageIds: the most recent size
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

// seen reports whether id is in the window, and adds it if not.
func (d *Dedupe) seen(id string) bool {
	h := maphash.String(d.seed, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ids[h]; ok {
		return true
	}
	if len(d.ring) < d.size {
		d.ring = append(d.ring, h)
	} else {
		delete(d.ids, d.ring[d.next])
		d.ring[d.next] = h
		d.next = (d.next + 1) % d.size
	}
	d.ids[h] = struct{}{}
	return false
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

// Users is the bounded per-user identify cache (LRU by userId): the user
// fields an identify set, and its userJwt. Safe for concurrent use.
type Users struct {
	mu    sync.Mutex
	size  int
	byID  map[string]*list.Element
	order *list.List // front: most recently used
}

type cached struct {
	id   string
	user User   // fields from identify traits
	jwt  string // the identify's userJwt ("" none)
}

// NewUsers returns a cache of at most size users (at least 1).
func NewUsers(size int) *Users {
	return &Users{size: max(size, 1), byID: map[string]*list.Element{}, order: list.New()}
}

func (u *Users) get(id string) (User, string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.byID[id]
	if !ok {
		return User{}, "", false
	}
	u.order.MoveToFront(e)
	c := e.Value.(*cached)
	return c.user, c.jwt, true
}

func (u *Users) put(id string, user User, jwt string) {
	// The cache outlives the record these strings may alias.
	id, jwt = strings.Clone(id), strings.Clone(jwt)
	for _, f := range []*string{&user.ID, &user.Email, &user.Phone, &user.Name, &user.RegisteredAt,
		&user.Address.Line1, &user.Address.Line2, &user.Address.City, &user.Address.CountryCode,
		&user.Address.RegionCode, &user.Address.PostalCode} {
		*f = strings.Clone(*f)
	}
	user.traits = bytes.Clone(user.traits)
	u.mu.Lock()
	defer u.mu.Unlock()
	if e, ok := u.byID[id]; ok {
		c := e.Value.(*cached)
		c.user, c.jwt = user, jwt
		u.order.MoveToFront(e)
		return
	}
	u.byID[id] = u.order.PushFront(&cached{id: id, user: user, jwt: jwt})
	for u.order.Len() > u.size {
		last := u.order.Back()
		delete(u.byID, last.Value.(*cached).id)
		u.order.Remove(last)
	}
}

// Len is the number of users cached.
func (u *Users) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.order.Len()
}
