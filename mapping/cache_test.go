package mapping

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func testUser(n int) User {
	s := func(f string) string { return fmt.Sprintf("%s-%d", f, n) }
	return User{
		ID: s("id"), Email: s("email"), Phone: s("phone"), Name: s("name ✓"), RegisteredAt: s("at"),
		Address: Address{Line1: s("l1"), Line2: s("l2"), City: s("city"), CountryCode: s("cc"),
			RegionCode: s("rc"), PostalCode: s("pc")},
		traits: []byte(fmt.Sprintf(`"plan":"p%d","seats":%d`, n, n)), ntraits: 2,
	}
}

func TestUsersRoundTrip(t *testing.T) {
	u := NewUsers(10)
	for _, tc := range []struct {
		name string
		user User
		jwt  string
	}{
		{"every field", testUser(1), "tok.en.1"},
		{"empty fields and no token", User{Email: "e@example.com"}, ""},
		{"only a token", User{}, "tok.en.3"},
		// Lengths of one, two and three bytes as uvarints.
		{"long fields", User{ID: "u", Email: strings.Repeat("e", 127), Name: strings.Repeat("n", 128),
			Address: Address{City: strings.Repeat("c", 70_000)}}, strings.Repeat("t", 300)},
		{"empty user", User{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u.put(tc.name, tc.user, tc.jwt)
			got, jwt, ok := u.get(tc.name)
			if !ok {
				t.Fatal("not cached")
			}
			if jwt != tc.jwt {
				t.Errorf("jwt %q, want %q", jwt, tc.jwt)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.user) {
				t.Errorf("got  %+v\nwant %+v", got, tc.user)
			}
		})
	}
	if _, _, ok := u.get("nobody"); ok {
		t.Error("an unknown user was found")
	}
}

// The cache keeps copies: the strings it is given may alias a record's
// buffer that is reused, and what it hands out must not write back.
func TestUsersCopies(t *testing.T) {
	u := NewUsers(10)
	buf := []byte("user-7|a@example.com|tok|\"k\":\"v\"")
	// Strings that share buf's memory, as the mapping's do (view).
	id := view(buf[0:6])
	user := User{Email: view(buf[7:20]), traits: buf[25:32], ntraits: 1}
	u.put(id, user, view(buf[21:24]))
	for i := range buf {
		buf[i] = 'x'
	}
	got, jwt, ok := u.get("user-7")
	if !ok {
		t.Fatal("user-7 not cached (was its id copied?)")
	}
	if got.Email != "a@example.com" || jwt != "tok" || string(got.traits) != `"k":"v"` {
		t.Fatalf("cached values changed with the source buffer: %+v jwt %q", got, jwt)
	}
	// Callers append to the traits they get (flattening more traits): two
	// callers must not append into the same memory.
	if len(got.traits) != cap(got.traits) {
		t.Fatalf("traits handed out with spare capacity (%d of %d)", len(got.traits), cap(got.traits))
	}
	again, _, _ := u.get("user-7")
	a := append(got.traits, `,"a":1`...)
	b := append(again.traits, `,"b":2`...)
	if string(a) != `"k":"v","a":1` || string(b) != `"k":"v","b":2` {
		t.Fatalf("appends to the cached traits share memory: %q and %q", a, b)
	}
}

func TestUsersLRU(t *testing.T) {
	u := NewUsers(3)
	for i := range 3 {
		u.put(fmt.Sprint(i), testUser(i), "")
	}
	u.get("0")                     // 0 is now the most recent: 1 is the least
	u.put("1", testUser(11), "t1") // an update refreshes 1 too: 2 is the least
	u.put("3", testUser(3), "")    // evicts 2
	if _, _, ok := u.get("2"); ok {
		t.Error("2 was kept, want it evicted as least recently used")
	}
	for _, id := range []string{"0", "1", "3"} {
		if _, _, ok := u.get(id); !ok {
			t.Errorf("%s was evicted", id)
		}
	}
	if got, jwt, _ := u.get("1"); got.Email != "email-11" || jwt != "t1" {
		t.Errorf("update of 1 lost: %+v %q", got, jwt)
	}
	if u.Len() != 3 {
		t.Errorf("Len %d, want 3", u.Len())
	}
	// Recency now, most recent first: 1, 3, 0. Two more users evict 0 then 3.
	u.put("4", testUser(4), "")
	u.put("5", testUser(5), "")
	var kept []string
	for _, id := range []string{"0", "1", "3", "4", "5"} {
		if _, _, ok := u.get(id); ok {
			kept = append(kept, id)
		}
	}
	if strings.Join(kept, ",") != "1,4,5" {
		t.Errorf("kept %v, want [1 4 5]", kept)
	}
}

func TestUsersSizeOne(t *testing.T) {
	u := NewUsers(0) // at least 1
	u.put("a", testUser(1), "")
	u.put("b", testUser(2), "tb")
	if _, _, ok := u.get("a"); ok {
		t.Error("a kept in a cache of one")
	}
	if got, jwt, ok := u.get("b"); !ok || got.Email != "email-2" || jwt != "tb" {
		t.Errorf("b: %+v %q %v", got, jwt, ok)
	}
	u.put("b", testUser(3), "")
	if got, _, _ := u.get("b"); got.Email != "email-3" || u.Len() != 1 {
		t.Errorf("b after update: %+v, Len %d", got, u.Len())
	}
}

// Many users through a small cache: the list stays consistent and the
// cache holds exactly the most recent ones.
func TestUsersChurn(t *testing.T) {
	const size = 64
	u := NewUsers(size)
	for i := range 10_000 {
		id := fmt.Sprint(i % 97)
		if i%3 == 0 {
			u.get(fmt.Sprint((i + 50) % 97))
		}
		u.put(id, testUser(i), "")
	}
	if u.Len() != size {
		t.Fatalf("Len %d, want %d", u.Len(), size)
	}
	// Walk the list both ways.
	n, last := 0, int32(-1)
	for i := u.head; i >= 0; i = u.ents[i].next {
		if u.ents[i].prev != last {
			t.Fatalf("entry %d: prev %d, want %d", i, u.ents[i].prev, last)
		}
		if u.byID[u.ents[i].id()] != i {
			t.Fatalf("entry %d (%s) not indexed", i, u.ents[i].id())
		}
		last = i
		n++
	}
	if n != size || last != u.tail {
		t.Fatalf("walked %d entries ending at %d, want %d ending at the tail %d", n, last, size, u.tail)
	}
	// The last size puts, with the gets interleaved, decide what is kept:
	// the most recent put is certainly there.
	if got, _, ok := u.get(fmt.Sprint(9999 % 97)); !ok || got.Email != "email-9999" {
		t.Errorf("most recent user: %+v %v", got, ok)
	}
	// Each map key is its entry's own string, not a copy, and not the
	// string of an earlier put of the same user, which it would keep
	// alive.
	for k := range u.byID {
		u.put(k, testUser(-1), "")
	}
	for k, i := range u.byID {
		if unsafe.StringData(k) != unsafe.StringData(u.ents[i].data) {
			t.Fatalf("user %s: the map key is not the entry's string", k)
		}
	}
}

// A full cache holds about size entries' worth of memory, not the next
// power of two.
func TestUsersCapacity(t *testing.T) {
	const size = 10_000
	u := NewUsers(size)
	for i := range size + 100 {
		u.put(fmt.Sprint(i), User{}, "")
	}
	if c := cap(u.ents); c > size*11/10 {
		t.Errorf("room for %d entries in a cache of %d", c, size)
	}
}

// put and get are Put and Lookup in the shape these tests were written in.
func (u *Users) put(id string, user User, jwt string) {
	u.Put(Identity{ID: id, User: user, Token: jwt})
}

func (u *Users) get(id string) (User, string, bool) {
	i, ok := u.Lookup(id)
	return i.User, i.Token, ok
}

// What Save writes, Load keeps: every user as it was, the most recently
// used ones when the cache loaded into is smaller, and a snapshot that is
// not one is refused.
func TestUsersSaveLoad(t *testing.T) {
	u := NewUsers(100)
	for n := range 50 {
		u.put(fmt.Sprint("user-", n), testUser(n), fmt.Sprint("tok.en.", n))
	}
	u.put("no-traits", User{Email: "e@example.com"}, "")
	u.get("user-3") // used last: among the most recent
	var b strings.Builder
	if err := u.Save(&b); err != nil {
		t.Fatal(err)
	}
	all := NewUsers(100)
	if err := all.Load(strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	if all.Len() != 51 {
		t.Fatalf("loaded %d users, want 51", all.Len())
	}
	for n := range 50 {
		id := fmt.Sprint("user-", n)
		want, wantJWT, _ := u.get(id)
		got, jwt, ok := all.get(id)
		if !ok || jwt != wantJWT || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: loaded %+v %q, saved %+v %q", id, got, jwt, want, wantJWT)
		}
	}
	if got, _, ok := all.get("no-traits"); !ok || got.Email != "e@example.com" {
		t.Errorf("no-traits: %+v, %v", got, ok)
	}
	few := NewUsers(2)
	if err := few.Load(strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := few.get("user-3"); !ok || few.Len() != 2 {
		t.Errorf("a cache of 2 kept %d users (user-3, the most recent, kept: %v)", few.Len(), ok)
	}
	for _, bad := range []string{"", "not a snapshot", b.String()[:len(b.String())/2]} {
		if err := NewUsers(10).Load(strings.NewReader(bad)); err == nil {
			t.Errorf("loaded %d bytes of a broken snapshot", len(bad))
		}
	}
}
