package mapping

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Users is the bounded per-user identify cache (LRU by userId): the user
// fields an identify set, and its userJwt. Safe for concurrent use.
//
// It can hold a hundred thousand users or more, so an entry is kept
// compact: the userId (which the map's key shares), then the user's
// non-empty strings and token, each tagged with its index and length, live
// in one string; the traits in one slice; and the recency list is threaded
// through a slice of entries by index. Apart from the map, that is two
// allocations per user and no per-field pointers for the garbage collector
// to trace.
type Users struct {
	mu   sync.Mutex
	size int
	byID map[string]int32 // userId -> index in ents
	ents []userEntry
	// head is the most recently used entry, tail the least; -1 when empty.
	head, tail int32
}

// Indexes of the fields of User, then the token, as fields returns them.
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
	// data is the userId (the map key, which shares this memory), then
	// each non-empty field in index order as its index (a byte), its
	// length (a uvarint) and its bytes: most users have three or four of
	// the twelve, and a table of where each ends cost 48 bytes a user.
	data    string
	idEnd   uint32 // where the userId ends in data
	ntraits int32
	traits  []byte
	// prev is the more recently used neighbour, next the less; -1 none.
	prev, next int32
}

func (e *userEntry) id() string { return e.data[:e.idEnd] }

// fields returns the fields kept in e, by index; those not kept are empty.
func (e *userEntry) fields() (f [uFields]string) {
	rest := e.data[e.idEnd:]
	for len(rest) > 0 {
		i := rest[0]
		n, w := 0, 1
		for shift := 0; ; shift += 7 {
			c := rest[w]
			w++
			n |= int(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
		f[i], rest = rest[w:w+n], rest[w+n:]
	}
	return f
}

// fieldsOf lists the strings of u and the token in index order.
func fieldsOf(u *User, jwt string) [uFields]string {
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
	f := e.fields()
	user := User{
		ID: f[uID], Email: f[uEmail], Phone: f[uPhone], Name: f[uName], RegisteredAt: f[uRegisteredAt],
		Address: Address{Line1: f[uLine1], Line2: f[uLine2], City: f[uCity],
			CountryCode: f[uCountryCode], RegionCode: f[uRegionCode], PostalCode: f[uPostalCode]},
		// A full slice expression: appending to the traits copies them
		// rather than writing into the cache.
		traits:  e.traits[:len(e.traits):len(e.traits)],
		ntraits: int(e.ntraits),
	}
	return Identity{ID: id, User: user, Token: f[uJWT]}, true
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
	fs := fieldsOf(&user, jwt)
	n := len(id)
	for _, f := range fs {
		if f != "" {
			n += 1 + uvarintLen(len(f)) + len(f)
		}
	}
	b.Grow(n)
	b.WriteString(id)
	var length [binary.MaxVarintLen64]byte
	for i, f := range fs {
		if f != "" {
			b.WriteByte(byte(i))
			b.Write(length[:binary.PutUvarint(length[:], uint64(len(f)))])
			b.WriteString(f)
		}
	}
	data := b.String()
	var traits []byte
	if len(user.traits) > 0 {
		traits = bytes.Clone(user.traits)
	}

	u.keep(data, uint32(len(id)), traits, int32(user.ntraits))
}

// keep keeps an entry: data holds the userId (its first idEnd bytes) and
// the user's fields, as Put packs them.
func (u *Users) keep(data string, idEnd uint32, traits []byte, ntraits int32) {
	key := data[:idEnd]
	if len(traits) == 0 {
		traits = nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	i, ok := u.byID[key]
	switch {
	case ok:
		// The key is re-set too: the old one keeps the old data alive.
		delete(u.byID, key)
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
	e.data, e.idEnd, e.traits, e.ntraits = data, idEnd, traits, ntraits
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

// uvarintLen is how many bytes binary.PutUvarint writes for n.
func uvarintLen(n int) int {
	w := 1
	for ; n >= 0x80; n >>= 7 {
		w++
	}
	return w
}

// usersSnapshotMagic starts what Save writes, with its version.
const usersSnapshotMagic = "castle-destination users v1\n"

// Save writes the cached users, least recently used first, for Load to
// load into another cache (a resumed replay's): what earlier identify
// messages said of users holds after the restart too.
func (u *Users) Save(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var num [binary.MaxVarintLen64]byte
	uvarint := func(v uint64) { bw.Write(num[:binary.PutUvarint(num[:], v)]) }
	bw.WriteString(usersSnapshotMagic)
	u.mu.Lock()
	uvarint(uint64(len(u.byID)))
	for i := u.tail; i >= 0; i = u.ents[i].prev {
		e := &u.ents[i]
		uvarint(uint64(e.idEnd))
		uvarint(uint64(len(e.data)))
		bw.WriteString(e.data)
		uvarint(uint64(e.ntraits))
		uvarint(uint64(len(e.traits)))
		bw.Write(e.traits)
	}
	u.mu.Unlock()
	return bw.Flush()
}

// Load keeps the users Save wrote, each as the most recently used, as
// many as the cache holds (the most recent ones).
func (u *Users) Load(r io.Reader) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(usersSnapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != usersSnapshotMagic {
		return errors.New("users snapshot: not a snapshot of this version")
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("users snapshot: %w", err)
	}
	get := func() ([]byte, error) {
		l, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if l > 1<<24 {
			return nil, errors.New("entry too long")
		}
		b := make([]byte, l)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	for range count {
		idEnd, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("users snapshot: %w", err)
		}
		data, err := get()
		if err != nil {
			return fmt.Errorf("users snapshot: %w", err)
		}
		ntraits, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("users snapshot: %w", err)
		}
		traits, err := get()
		if err != nil {
			return fmt.Errorf("users snapshot: %w", err)
		}
		if idEnd == 0 || idEnd > uint64(len(data)) {
			return errors.New("users snapshot: a corrupt entry")
		}
		u.keep(string(data), uint32(idEnd), traits, int32(ntraits))
	}
	return nil
}
