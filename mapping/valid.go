package mapping

import (
	"math"
	"math/bits"

	"github.com/castle-destination/castle-destination/internal/rawjson"
	"github.com/castle-destination/castle-destination/internal/swar"
)

// MaxNesting bounds the nesting of objects and arrays in a Segment
// message; a deeper message is malformed. In a batch envelope the bound
// applies to each item alone, so one deep item does not take its siblings
// down. (encoding/json allows 10,000; no Segment message comes near 1,024.)
const MaxNesting = 1024

// scan reports whether b is exactly one JSON value (RFC 8259), and how
// deep its objects and arrays nest (0 for a scalar). It is iterative, has
// no depth limit of its own, allocates nothing for input nested at most
// MaxNesting deep (one bit per level past that), and accepts invalid UTF-8
// inside strings like encoding/json.Valid does (the mapping cleans it when
// copying).
//
// When b is an object and nt is not nil, scan also notes where the
// object's members lie, and those of its "context" object, so that
// decoding them need not walk b again.
func scan(b []byte, nt *notes) (ok bool, maxDepth int) {
	var small [MaxNesting / 64]uint64 // bit set: 1 = object, 0 = array
	stack := small[:]
	depth := 0
	i := rawjson.SkipWS(b, 0)
	var top, ctx *members // where members are noted; ctx while in "context"
	if nt != nil {
		*nt = notes{top: members{over: len(b) > math.MaxInt32}, ctxAt: -1}
		if i < len(b) && b[i] == '{' {
			top = &nt.top
		}
	}
	for {
		// A value is expected at i.
		if i >= len(b) {
			return false, maxDepth
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth>>6 >= len(stack) {
				stack = append(stack, 0)
			}
			if c == '{' {
				stack[depth>>6] |= 1 << (depth & 63)
			} else {
				stack[depth>>6] &^= 1 << (depth & 63)
			}
			depth++
			maxDepth = max(maxDepth, depth)
			if depth == 2 && c == '{' && top != nil && top.keyed(b, `"context"`) {
				ctx, nt.ctx, nt.ctxAt = &nt.ctx, members{}, int32(i)
			}
			i = rawjson.SkipWS(b, i+1)
			if i >= len(b) {
				return false, maxDepth
			}
			if b[i] == '}' && c == '{' || b[i] == ']' && c == '[' {
				depth--
				i++
				break
			}
			if c == '{' {
				ks := i
				if i = validString(b, i); i < 0 {
					return false, maxDepth
				}
				ke := i
				if i = rawjson.SkipWS(b, i); i >= len(b) || b[i] != ':' {
					return false, maxDepth
				}
				i = rawjson.SkipWS(b, i+1)
				noteKey(depth, top, ctx, ks, ke, i)
			}
			continue
		case c == '"':
			if i = validString(b, i); i < 0 {
				return false, maxDepth
			}
		case c == 't':
			if !lit(b, i, "true") {
				return false, maxDepth
			}
			i += 4
		case c == 'f':
			if !lit(b, i, "false") {
				return false, maxDepth
			}
			i += 5
		case c == 'n':
			if !lit(b, i, "null") {
				return false, maxDepth
			}
			i += 4
		case c == '-' || c >= '0' && c <= '9':
			if i = validNumber(b, i); i < 0 {
				return false, maxDepth
			}
		default:
			return false, maxDepth
		}
		// After a value: close containers, or a comma and the next value.
		for {
			// A member of the outermost object, or of its context, may
			// end here.
			switch {
			case depth == 1 && top != nil:
				top.end(i)
				ctx = nil
			case depth == 2 && ctx != nil:
				ctx.end(i)
			}
			i = rawjson.SkipWS(b, i)
			if depth == 0 {
				return i == len(b), maxDepth
			}
			if i >= len(b) {
				return false, maxDepth
			}
			obj := stack[(depth-1)>>6]&(1<<((depth-1)&63)) != 0
			switch b[i] {
			case ',':
				i = rawjson.SkipWS(b, i+1)
				if obj {
					ks := i
					if i = validString(b, i); i < 0 {
						return false, maxDepth
					}
					ke := i
					if i = rawjson.SkipWS(b, i); i >= len(b) || b[i] != ':' {
						return false, maxDepth
					}
					i = rawjson.SkipWS(b, i+1)
					noteKey(depth, top, ctx, ks, ke, i)
				}
			case '}':
				if !obj {
					return false, maxDepth
				}
				depth--
				i++
				continue
			case ']':
				if obj {
					return false, maxDepth
				}
				depth--
				i++
				continue
			default:
				return false, maxDepth
			}
			break
		}
	}
}

// notes is where the members of a record's outermost object lie, and
// those of its "context" member, as scan notes them.
type notes struct {
	top members
	// ctx holds the members of the last "context" object, which starts at
	// ctxAt (-1: none).
	ctx   members
	ctxAt int32
}

// noteKey notes a key at depth in top or ctx, those not nil.
func noteKey(depth int, top, ctx *members, ks, ke, vs int) {
	switch {
	case depth == 1 && top != nil:
		top.key(ks, ke, vs)
	case depth == 2 && ctx != nil:
		ctx.key(ks, ke, vs)
	}
}

// members is where the members of an object lie: up to maxMembers, which
// is more than a Segment message or its context has.
type members struct {
	n    int
	over bool // more members, or a record too long to note: not noted
	at   [maxMembers]struct{ ks, ke, vs, ve int32 }
}

const maxMembers = 32

// key notes a member whose key lies at b[ks:ke] and whose value starts at
// vs.
func (m *members) key(ks, ke, vs int) {
	if m.n == maxMembers {
		m.over = true
		return
	}
	a := &m.at[m.n]
	a.ks, a.ke, a.vs = int32(ks), int32(ke), int32(vs)
}

// keyed reports whether the member last keyed, whose value is being
// read, has key (quoted).
func (m *members) keyed(b []byte, key string) bool {
	if m.n == maxMembers {
		return false
	}
	a := &m.at[m.n]
	return string(b[a.ks:a.ke]) == key
}

// end notes that the value of the member last keyed ends at ve.
func (m *members) end(ve int) {
	if m.n < maxMembers {
		m.at[m.n].ve = int32(ve)
		m.n++
	}
}

// nesting is how deep the objects and arrays of v, valid JSON, nest.
func nesting(v []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			i = rawjson.SkipString(v, i) - 1
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

func lit(b []byte, i int, s string) bool {
	return len(b)-i >= len(s) && string(b[i:i+len(s)]) == s
}

// validString checks the string at b[i] and returns the index after it, or
// -1.
func validString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		for i+8 <= len(b) {
			if m := swar.Special(swar.Load(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// validNumber checks the number at b[i] and returns the index after it, or
// -1.
func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == '0' {
		i++
	} else if !digits() {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return -1
		}
	}
	return i
}

// plain marks the bytes a JSON string may hold without a closer look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
