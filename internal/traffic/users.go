package traffic

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"
)

// user is one registered user or one anonymous visitor (id == ""). Its
// attributes depend only on the seed and its index, so building users lazily
// keeps the stream deterministic.
type user struct {
	id, anon     string // userId ("" for visitors), anonymousId
	first, last  string
	email, phone string
	createdAt    time.Time
	addr         address
	plan         string
	secure       bool // uses Secure Mode
	ua           string
	ip           net.IP
	loc          localeInfo
	skew         time.Duration // device clock offset
	device       string        // the device name of its request tokens ("" for anon)
	token        string        // valid userJwt, minted on first use
	keyBytes     []byte        // key(), built on first use
	anonBytes    []byte        // anonKey(), built on first use
}

const (
	classUser    = 1
	classVisitor = 2
	classShared  = 3 // the shared device of security events
)

// subRand returns a random source private to one (class, index): the same
// seed and index always give the same user.
func (g *Generator) subRand(class, i int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(g.cfg.Seed)^0x5bd1e9955bd1e995, uint64(class)<<56|uint64(i)))
}

// pickUser returns a registered user: one of the heavy users with
// probability HeavyShare, else a uniformly chosen one.
func (g *Generator) pickUser() *user {
	var i int
	if g.cfg.HeavyShare > 0 && g.rng.Float64() < g.cfg.HeavyShare {
		i = g.rng.IntN(g.heavy)
	} else {
		i = g.rng.IntN(len(g.users))
	}
	if g.users[i] == nil {
		g.users[i] = g.newUser(classUser, i)
	}
	return g.users[i]
}

// pickSecureUser returns a registered user of the Secure Mode cohort, or nil
// when there is none.
func (g *Generator) pickSecureUser() *user {
	if g.cfg.Mix.SecureUsers <= 0 {
		return nil
	}
	for range 64 {
		if u := g.pickUser(); u.secure {
			return u
		}
	}
	return nil
}

// pickVisitor returns an anonymous visitor, uniformly.
func (g *Generator) pickVisitor() *user {
	i := g.rng.IntN(len(g.anons))
	if g.anons[i] == nil {
		g.anons[i] = g.newUser(classVisitor, i)
	}
	return g.anons[i]
}

func (g *Generator) newUser(class, i int) *user {
	r := g.subRand(class, i)
	u := &user{anon: uuid(r)}
	u.ua = userAgents[r.IntN(len(userAgents))]
	u.loc = locales[r.IntN(len(locales))]
	u.ip = randIP(r)
	if r.IntN(10) == 0 { // a device clock off by up to ±5 minutes
		u.skew = time.Duration(r.Int64N(int64(10*time.Minute))) - 5*time.Minute
		u.skew = u.skew.Truncate(time.Millisecond)
	}
	if class == classVisitor {
		return u
	}
	u.id = "usr_" + base62(r, 14)
	u.first = firstNames[r.IntN(len(firstNames))]
	u.last = lastNames[r.IntN(len(lastNames))]
	u.email = asciiFold(strings.ToLower(u.first+"."+u.last)) + strconv.Itoa(r.IntN(100)) + "@" + emailDomains[r.IntN(len(emailDomains))]
	u.addr = addresses[r.IntN(len(addresses))]
	u.phone = phoneFor(r, u.addr.country)
	u.createdAt = g.cfg.Now.Add(-time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour)))).Truncate(time.Second)
	u.plan = plans[r.IntN(len(plans))]
	u.secure = r.Float64() < g.cfg.Mix.SecureUsers
	return u
}

// key is the Kafka key of the user's messages: userId, else anonymousId.
// Records share it: callers must not modify keys.
func (u *user) key() []byte {
	if u.keyBytes == nil {
		u.keyBytes = []byte(u.anon)
		if u.id != "" {
			u.keyBytes = []byte(u.id)
		}
	}
	return u.keyBytes
}

// anonKey is the key of u's messages sent without a userId.
func (u *user) anonKey() []byte {
	if u.id == "" {
		return u.key()
	}
	if u.anonBytes == nil {
		u.anonBytes = []byte(u.anon)
	}
	return u.anonBytes
}

// uuid returns a random (version 4) UUID drawn from r.
func uuid(r *rand.Rand) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], r.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

const base62Chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func base62(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = base62Chars[r.IntN(len(base62Chars))]
	}
	return string(b)
}

// randIP returns a public consumer-ISP address (a quarter IPv6), or, 3% of
// the time, a private one (RFC 1918 or an IPv6 unique local address).
func randIP(r *rand.Rand) net.IP {
	if r.IntN(100) < 3 {
		switch r.IntN(4) {
		case 0:
			return net.IPv4(10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1+r.IntN(254))).To4()
		case 1:
			return net.IPv4(192, 168, byte(r.IntN(256)), byte(1+r.IntN(254))).To4()
		case 2:
			return net.IPv4(172, byte(16+r.IntN(16)), byte(r.IntN(256)), byte(1+r.IntN(254))).To4()
		default:
			ip := make(net.IP, 16)
			ip[0] = 0xfd
			binary.BigEndian.PutUint64(ip[1:9], r.Uint64())
			binary.BigEndian.PutUint64(ip[8:], r.Uint64()|1)
			return ip
		}
	}
	return ispIP(r)
}

// ispIP returns a public consumer-ISP address, a quarter of them IPv6.
func ispIP(r *rand.Rand) net.IP {
	if r.IntN(4) == 0 {
		p := ipv6Prefixes[r.IntN(len(ipv6Prefixes))]
		ip := make(net.IP, 16)
		binary.BigEndian.PutUint64(ip[0:8], r.Uint64())
		binary.BigEndian.PutUint64(ip[8:], r.Uint64()|1)
		copy(ip[:3], p[:3])
		ip[3] = p[3] | ip[3]&0x0f
		return ip
	}
	rg := ipv4Ranges[r.IntN(len(ipv4Ranges))]
	x := r.Uint32()
	base := binary.BigEndian.Uint32(rg.base[:])
	mask := uint32(0xffffffff) << (32 - rg.bits)
	a := base&mask | x&^mask
	if a&0xff == 0 || a&0xff == 0xff { // avoid .0 and .255 hosts
		a = a&^0xff | 1
	}
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, a)
	return ip
}

func phoneFor(r *rand.Rand, country string) string {
	n := func(d int) string {
		b := make([]byte, d)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	switch country {
	case "US":
		return "+1415555" + n(4)
	case "GB":
		return "+447700900" + n(3)
	case "DE":
		return "+4915" + n(9)
	case "FR":
		return "+336" + n(8)
	case "JP":
		return "+8190" + n(8)
	case "BR":
		return "+55119" + n(8)
	default:
		return "+346" + n(8)
	}
}

var folds = strings.NewReplacer("é", "e", "ë", "e", "ó", "o", "ñ", "n", "ú", "u", "í", "i", "ü", "u",
	"å", "a", "ł", "l", "'", "", " ", "")

func asciiFold(s string) string { return folds.Replace(s) }
