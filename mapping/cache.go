package mapping

import (
	"bytes"
	"strings"
	"sync"
)

// Users is the bounded per-user identify cache (LRU by userId): the user
// fields an identify set, and its userJwt. Safe for concurrent use.
//
// It can hold a hundred thousand users or more, so an entry is kept
// compact: the userId (which the map's key shares), the user's strings and
// token live in one string, the traits in one slice, and the recency list
// is threaded through a slice of entries by index. Apart from the map, that
// is two allocations per user and no per-field pointers for the garbage
// collector to trace.
type Users struct {
	mu   sync.Mutex
	size int
	byID map[string]int32 // userId -> index in ents
	ents []userEntry
	// head is the most recently used entry, tail the least; -1 when empty.
	head, tail int32
}

// Indexes into userEntry.ends: the fields of User, then the token.
const (
	uID = iota
	uEmail
	uPhone
	uName
	uRegisteredAt
	uLine1
	uLine2
	uCity
	uCountryCode
	uRegionCode
	uPostalCode
	uJWT
	uFields
)

type userEntry struct {
	// data is the userId (the map key, which shares this memory) followed
	// by the fields, in the order above.
	data    string
	idEnd   uint32          // where the userId ends in data
	ends    [uFields]uint32 // where each field ends in data
	traits  []byte
	ntraits int32
	// prev is the more recently used neighbour, next the less; -1 none.
	prev, next int32
}

func (e *userEntry) id() string { return e.data[:e.idEnd] }

func (e *userEntry) field(i int) string {
	start := e.idEnd
	if i > 0 {
		start = e.ends[i-1]
	}
	return e.data[start:e.ends[i]]
}

// fields lists the strings of u and the token in the order of the u*
// indexes.
func fields(u *User, jwt string) [uFields]string {
	return [uFields]string{u.ID, u.Email, u.Phone, u.Name, u.RegisteredAt,
		u.Address.Line1, u.Address.Line2, u.Address.City, u.Address.CountryCode,
		u.Address.RegionCode, u.Address.PostalCode, jwt}
}

// NewUsers returns a cache of at most size users (at least 1).
func NewUsers(size int) *Users {
	size = max(size, 1)
	return &Users{size: size, byID: make(map[string]int32, min(size, 1<<12)), head: -1, tail: -1}
}

// Lookup returns the identity kept for user id; it implements Directory.
func (u *Users) Lookup(id string) (Identity, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i, ok := u.byID[id]
	if !ok {
		return Identity{}, false
	}
	u.toFront(i)
	e := &u.ents[i]
	user := User{
		ID: e.field(uID), Email: e.field(uEmail), Phone: e.field(uPhone), Name: e.field(uName),
		RegisteredAt: e.field(uRegisteredAt),
		Address: Address{Line1: e.field(uLine1), Line2: e.field(uLine2), City: e.field(uCity),
			CountryCode: e.field(uCountryCode), RegionCode: e.field(uRegionCode), PostalCode: e.field(uPostalCode)},
		// A full slice expression: appending to the traits copies them
		// rather than writing into the cache.
		traits:  e.traits[:len(e.traits):len(e.traits)],
		ntraits: int(e.ntraits),
	}
	return Identity{ID: id, User: user, Token: e.field(uJWT)}, true
}

// Put keeps identity, replacing what was kept for its user; the least
// recently used user makes room when the cache is full. Nothing of
// identity is aliased: it may point into the record being mapped.
func (u *Users) Put(identity Identity) {
	id, user, jwt := identity.ID, identity.User, identity.Token
	if id == "" {
		return
	}
	// Copy what is kept, in one string: the strings may alias the record
	// being mapped.
	var b strings.Builder
	fs := fields(&user, jwt)
	n := len(id)
	for _, f := range fs {
		n += len(f)
	}
	b.Grow(n)
	b.WriteString(id)
	var ends [uFields]uint32
	for i, f := range fs {
		b.WriteString(f)
		ends[i] = uint32(b.Len())
	}
	data := b.String()
	key := data[:len(id)]
	var traits []byte
	if len(user.traits) > 0 {
		traits = bytes.Clone(user.traits)
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	i, ok := u.byID[id]
	switch {
	case ok:
		// The key is re-set too: the old one keeps the old data alive.
		delete(u.byID, id)
	case len(u.ents) < u.size:
		if len(u.ents) == cap(u.ents) {
			// Double, but not past size: a full cache is the steady
			// state, and append would leave up to twice the room.
			ents := make([]userEntry, len(u.ents), min(max(2*len(u.ents), 64), u.size))
			copy(ents, u.ents)
			u.ents = ents
		}
		i = int32(len(u.ents))
		u.ents = append(u.ents, userEntry{prev: -1, next: -1})
	default: // full: the least recently used entry makes room
		i = u.tail
		delete(u.byID, u.ents[i].id())
	}
	u.byID[key] = i
	e := &u.ents[i]
	e.data, e.idEnd, e.ends, e.traits, e.ntraits = data, uint32(len(key)), ends, traits, int32(user.ntraits)
	u.toFront(i)
}

// toFront makes entry i, linked or not, the most recently used. Called
// with u.mu held.
func (u *Users) toFront(i int32) {
	if u.head == i {
		return
	}
	e := &u.ents[i]
	// Unlink, if linked (a new entry has no neighbours and is not the
	// tail, unless it is the only entry).
	if e.prev >= 0 {
		u.ents[e.prev].next = e.next
	}
	if e.next >= 0 {
		u.ents[e.next].prev = e.prev
	}
	if u.tail == i {
		u.tail = e.prev
	}
	e.prev, e.next = -1, u.head
	if u.head >= 0 {
		u.ents[u.head].prev = i
	}
	u.head = i
	if u.tail < 0 {
		u.tail = i
	}
}

// Len is the number of users cached.
func (u *Users) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.byID)
}
