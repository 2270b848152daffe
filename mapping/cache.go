package mapping

import (
	"container/list"
	"sync"
)

// Dedupe is a bounded window of forwarded messageIds: the most recent size
// ids are remembered and the oldest is evicted first (FIFO). Safe for
// concurrent use.
type Dedupe struct {
	mu   sync.Mutex
	size int
	ids  map[string]struct{}
	ring []string
	next int
}

// NewDedupe returns a window of size ids (at least 1).
func NewDedupe(size int) *Dedupe {
	size = max(size, 1)
	return &Dedupe{size: size, ids: make(map[string]struct{}, min(size, 1<<16)), ring: make([]string, 0, min(size, 1<<16))}
}

// seen reports whether id is in the window, and adds it if not.
func (d *Dedupe) seen(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ids[id]; ok {
		return true
	}
	if len(d.ring) < d.size {
		d.ring = append(d.ring, id)
	} else {
		delete(d.ids, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.size
	}
	d.ids[id] = struct{}{}
	return false
}

// Forget removes id, so that the message is not a duplicate when it is read
// again: the caller calls it when a forwarded event was not delivered after
// all (canceled at shutdown). Its slot in the ring stays until evicted.
func (d *Dedupe) Forget(id string) {
	d.mu.Lock()
	delete(d.ids, id)
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
