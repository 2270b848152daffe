// Package rawjson reads JSON that has already been validated, in place:
// object members and array elements as raw sub-slices of the input, in
// document order, without decoding or building maps. The mapping reads
// Segment messages with it, and replay's sharding reads a message's user.
//
// Nothing here validates: on input that is not JSON the functions never
// panic and report what they can, and past the end of the input they
// report nothing.
package rawjson

import (
	"bytes"
	"math/bits"

	"github.com/castle-destination/castle-destination/internal/swar"
)

// SkipWS returns the index of the first byte at or after i that is not
// JSON whitespace (len(b) when there is none).
func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// SkipString returns the index after the string starting at b[i] == '"'
// (len(b) when it does not end). It looks at 8 bytes at a time for the
// next quote or backslash.
func SkipString(b []byte, i int) int {
	i++
	for i+8 <= len(b) {
		m := swar.QuoteOrBackslash(swar.Load(b[i:]))
		if m == 0 {
			i += 8
			continue
		}
		i += bits.TrailingZeros64(m) >> 3
		if b[i] == '"' {
			return i + 1
		}
		i += 2 // a backslash and the byte it escapes
	}
	for i < len(b) {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return len(b)
}

// SkipValue returns the index after the value starting at i (leading
// whitespace skipped).
func SkipValue(b []byte, i int) int {
	i = SkipWS(b, i)
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = SkipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return len(b)
	}
}

// Members calls fn for each member of the object b, in order, with the raw
// key (quotes included) and the raw value. It stops when fn returns false.
// It calls fn for nothing when b is not an object.
func Members(b []byte, fn func(key, value []byte) bool) {
	i := SkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i++
	for {
		i = SkipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return
		}
		ks := i
		i = SkipString(b, i)
		key := b[ks:i]
		i = SkipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = SkipWS(b, i+1)
		vs := i
		i = SkipValue(b, i)
		if !fn(key, b[vs:i]) {
			return
		}
		i = SkipWS(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

// Member returns the raw value of the first member of the object b whose
// raw key (quotes included, as Members gives it) is key; nil when there is
// none. b is walked only when it holds key at all.
func Member(b, key []byte) []byte {
	if !bytes.Contains(b, key) {
		return nil
	}
	var out []byte
	Members(b, func(k, v []byte) bool {
		if !bytes.Equal(k, key) {
			return true
		}
		out = v
		return false
	})
	return out
}

// Without returns the object b without its members whose raw key is key,
// compacted to its members' raw keys and values; b itself when it has no
// such member (or is no object). b is not changed.
func Without(b, key []byte) []byte {
	if Member(b, key) == nil {
		return b
	}
	out := make([]byte, 0, len(b))
	out = append(out, '{')
	Members(b, func(k, v []byte) bool {
		if bytes.Equal(k, key) {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, k...), ':'), v...)
		return true
	})
	return append(out, '}')
}

// Elements calls fn for each element of the array b, in order. It stops
// when fn returns false, and calls fn for nothing when b is not an array.
func Elements(b []byte, fn func(value []byte) bool) {
	i := SkipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return
	}
	i++
	for {
		i = SkipWS(b, i)
		if i >= len(b) || b[i] == ']' {
			return
		}
		vs := i
		i = SkipValue(b, i)
		if i == vs || !fn(b[vs:i]) {
			return
		}
		i = SkipWS(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

// First returns the first byte of b that is not JSON whitespace: the kind
// of a raw value ('"', '{', '[', 't', 'f', 'n', or a number's first byte),
// or 0 when b is empty or all whitespace.
func First(b []byte) byte {
	if i := SkipWS(b, 0); i < len(b) {
		return b[i]
	}
	return 0
}
