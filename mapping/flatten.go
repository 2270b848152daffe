package mapping

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/castle-destination/castle-destination/internal/rawjson"
)

// Limits of the flattening rule.
const (
	// MaxStringLength: string values are cut to fewer than 1024 characters
	// (Segment's Castle documentation: values under 1024 characters).
	MaxStringLength = 1023
	// MaxNameLength bounds a $custom event name.
	MaxNameLength = 1024
	// MaxKeys bounds the properties (or traits) of one event: the keys past
	// it, in document order, are left out and the event is marked
	// AdjustKeysCapped. Castle makes at most 50 custom properties
	// searchable; the cap bounds the body, not what Castle indexes.
	MaxKeys = 256
	// MaxKeyLength bounds a flattened key, in characters.
	MaxKeyLength = 256
	// MaxDepth bounds how deep objects flatten to dotted keys; a deeper
	// object becomes a JSON string, like an array.
	MaxDepth = 5
)

// flattener appends the one-level form of JSON objects as encoded JSON
// members: strings (cut), numbers and booleans as they are (a number a
// float64 cannot hold as a string), nulls left out, nested objects as
// dotted keys, arrays (and objects past MaxDepth) as JSON strings. What it
// cuts or converts it records in adj.
type flattener struct {
	dst []byte
	n   int
	adj Adjustment
	// skipKeys are top-level keys to leave out: key i is left out when bit
	// i of skipMask is set.
	skipKeys []string
	skipMask uint16
	// reserved is how many of MaxKeys are kept for members written
	// elsewhere (a security event's submitted identifier).
	reserved int
	seen     uint8 // page keys present at the top level
}

// Top-level keys a page's own properties may set, which context.page and
// the page name then do not override.
const (
	seenName uint8 = 1 << iota
	seenCategory
	seenURL
	seenPath
	seenReferrer
	seenTitle
	seenSearch
)

func (f *flattener) object(prefix string, obj []byte, depth int) {
	rawjson.Members(obj, func(k, v []byte) bool {
		var key string
		if prefix != "" {
			key = prefix + "." + unquote(k)
		} else {
			switch string(k) {
			case `"name"`:
				f.seen |= seenName
			case `"category"`:
				f.seen |= seenCategory
			case `"url"`:
				f.seen |= seenURL
			case `"path"`:
				f.seen |= seenPath
			case `"referrer"`:
				f.seen |= seenReferrer
			case `"title"`:
				f.seen |= seenTitle
			case `"search"`:
				f.seen |= seenSearch
			}
			if f.skipMask != 0 && f.skipped(k) {
				return true
			}
		}
		switch kind(v) {
		case 'n', 0:
			return true
		case '{':
			if depth < MaxDepth {
				if key == "" {
					key = unquote(k)
				}
				f.object(key, v, depth+1)
				return f.adj&AdjustKeysCapped == 0
			}
			if !f.memberRaw(key, k) {
				return false
			}
			f.dst = appendString(f.dst, compactString(v, &f.adj))
		case '[':
			if !f.memberRaw(key, k) {
				return false
			}
			f.dst = appendString(f.dst, compactString(v, &f.adj))
		case '"':
			if !f.memberRaw(key, k) {
				return false
			}
			f.dst = f.appendRawString(f.dst, trimWS(v))
		case '0':
			if !f.memberRaw(key, k) {
				return false
			}
			f.dst = appendNumber(f.dst, trimWS(v), &f.adj)
		default: // true, false
			if !f.memberRaw(key, k) {
				return false
			}
			f.dst = append(f.dst, trimWS(v)...)
		}
		return true
	})
}

// skipped reports whether the raw top-level key is one to leave out.
func (f *flattener) skipped(rawKey []byte) bool {
	for i, k := range f.skipKeys {
		if f.skipMask&(1<<i) != 0 && rawKeyIs(rawKey, k) {
			return true
		}
	}
	return false
}

// rawKeyIs reports whether the raw JSON key (quotes included) is name,
// exactly.
func rawKeyIs(rawKey []byte, name string) bool {
	return len(rawKey) == len(name)+2 && string(rawKey[1:len(rawKey)-1]) == name
}

// room reports whether one more member fits under MaxKeys, and marks the
// cap when it does not.
func (f *flattener) room() bool {
	if f.n+f.reserved >= MaxKeys {
		f.adj |= AdjustKeysCapped
		return false
	}
	return true
}

// memberRaw starts a member named key, or, when key is "", by the raw
// top-level key rawKey (copied as is when it needs no cleaning). It
// reports false, writing nothing, when the member is past MaxKeys.
func (f *flattener) memberRaw(key string, rawKey []byte) bool {
	if !f.room() {
		return false
	}
	if key != "" {
		f.member(key)
		return true
	}
	if len(rawKey) >= 2 && len(rawKey)-2 <= MaxKeyLength {
		body := rawKey[1 : len(rawKey)-1]
		if plainString(body) {
			if f.n > 0 {
				f.dst = append(f.dst, ',')
			}
			f.n++
			f.dst = append(f.dst, rawKey...)
			f.dst = append(f.dst, ':')
			return true
		}
	}
	f.member(unquote(rawKey))
	return true
}

func (f *flattener) member(key string) {
	if f.n > 0 {
		f.dst = append(f.dst, ',')
	}
	f.n++
	f.dst = appendString(f.dst, f.cut(key, MaxKeyLength))
	f.dst = append(f.dst, ':')
}

// add appends one string member.
func (f *flattener) add(key, value string) {
	if !f.room() {
		return
	}
	f.member(key)
	f.dst = appendString(f.dst, f.cut(value, MaxStringLength))
}

// cut is truncate, recording AdjustValueTruncated when it cuts.
func (f *flattener) cut(s string, n int) string {
	t := truncate(s, n)
	if len(t) < len(s) {
		f.adj |= AdjustValueTruncated
	}
	return t
}

// appendRawString appends a raw JSON string, cut to MaxStringLength
// characters and made valid UTF-8.
func (f *flattener) appendRawString(dst, raw []byte) []byte {
	return appendRawStringMax(dst, raw, MaxStringLength, &f.adj)
}

// appendRawStringMax appends a raw JSON string, cut to limit characters and
// made valid UTF-8, recording a cut in adj. Short plain strings are copied
// as is.
func appendRawStringMax(dst, raw []byte, limit int, adj *Adjustment) []byte {
	if len(raw) >= 2 && len(raw)-2 <= limit {
		body := raw[1 : len(raw)-1]
		if plainString(body) {
			return append(dst, raw...)
		}
	}
	s := unquote(raw)
	t := truncate(s, limit)
	if len(t) < len(s) {
		*adj |= AdjustValueTruncated
	}
	return appendString(dst, t)
}

// appendClean appends the raw JSON value v (valid JSON) re-encoded as the
// flattening rule cleans values, keeping its structure: strings cut to
// MaxStringLength and keys to MaxKeyLength characters, valid UTF-8,
// numbers a float64 cannot hold as strings, objects and arrays nested past
// MaxDepth (counting v as depth) as JSON strings. What it changes it
// records in adj.
func appendClean(dst, v []byte, depth int, adj *Adjustment) []byte {
	return appendCleanWith(dst, v, depth, adj, nil)
}

// memberFunc appends the cleaned value of member k of an object, val, to
// dst and returns it, or returns false to leave the member to appendClean,
// or returns nil and true to leave the member out, key and all.
type memberFunc func(dst, k, val []byte) ([]byte, bool)

// appendCleanWith is appendClean, with the values of v's own members (v an
// object) appended by member where it takes them.
func appendCleanWith(dst, v []byte, depth int, adj *Adjustment, member memberFunc) []byte {
	v = trimWS(v)
	switch kind(v) {
	case '{', '[':
		if depth > MaxDepth {
			return appendString(dst, compactString(v, adj))
		}
		open := v[0]
		dst = append(dst, open)
		first := true
		each := func(k, val []byte) bool {
			mark, wasFirst := len(dst), first
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if k != nil {
				dst = appendRawStringMax(dst, k, MaxKeyLength, adj)
				dst = append(dst, ':')
				if member != nil {
					if d, ok := member(dst, k, val); ok {
						if d == nil { // left out
							dst, first = dst[:mark], wasFirst
						} else {
							dst = d
						}
						return true
					}
				}
			}
			dst = appendClean(dst, val, depth+1, adj)
			return true
		}
		if open == '{' {
			rawjson.Members(v, each)
			return append(dst, '}')
		}
		rawjson.Elements(v, func(val []byte) bool { return each(nil, val) })
		return append(dst, ']')
	case '"':
		return appendRawStringMax(dst, v, MaxStringLength, adj)
	case '0':
		return appendNumber(dst, v, adj)
	}
	return append(dst, v...) // true, false, null
}

// appendNumber appends a raw JSON number, or, when a float64 cannot hold
// it (1e999: JSON allows it, Castle's parsers and Go's do not), the number
// as written as a JSON string, recording AdjustNumberNotFinite; like any
// string, cut to MaxStringLength characters (a thousand digits and more).
func appendNumber(dst, raw []byte, adj *Adjustment) []byte {
	if finite(raw) {
		return append(dst, raw...)
	}
	*adj |= AdjustNumberNotFinite
	if len(raw) > MaxStringLength {
		*adj |= AdjustValueTruncated
		raw = raw[:MaxStringLength] // ASCII: characters are bytes
	}
	return appendString(dst, view(raw))
}

// finite reports whether the raw JSON number is within float64's range.
// Only a number with an exponent or over 300 characters can overflow, so
// the common case reads no float.
func finite(raw []byte) bool {
	if len(raw) <= 300 && !bytes.ContainsAny(raw, "eE") {
		return true
	}
	f, err := strconv.ParseFloat(view(raw), 64)
	return err == nil || !math.IsInf(f, 0)
}

// compactString is raw JSON (an array or object) as a compact string, cut
// to MaxStringLength characters.
func compactString(raw []byte, adj *Adjustment) string {
	var b bytes.Buffer
	if len(raw) > 4*MaxStringLength {
		raw = raw[:4*MaxStringLength] // enough for the cut below; validity no longer matters
		b.Write(raw)
	} else if err := json.Compact(&b, raw); err != nil {
		b.Reset()
		b.Write(raw)
	}
	s := string(bytes.ToValidUTF8(b.Bytes(), []byte("\uFFFD")))
	t := truncate(s, MaxStringLength)
	if len(t) < len(s) {
		*adj |= AdjustValueTruncated
	}
	return t
}

func noControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return true
}
