package mapping

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Limits of the flattening rule.
const (
	// MaxStringLength: string values are cut to fewer than 1024 characters
	// (Segment's Castle documentation: values under 1024 characters).
	MaxStringLength = 1023
	// MaxNameLength bounds a $custom event name.
	MaxNameLength = 1024
	// MaxKeys bounds the properties (or traits) of one event; later keys
	// are left out. Castle makes at most 50 custom properties searchable.
	MaxKeys = 256
	// MaxKeyLength bounds a flattened key, in characters.
	MaxKeyLength = 256
	// MaxDepth bounds how deep objects flatten to dotted keys; a deeper
	// object becomes a JSON string, like an array.
	MaxDepth = 5
)

// flattener appends the one-level form of JSON objects as encoded JSON
// members: strings (cut), numbers and booleans as they are, nulls left
// out, nested objects as dotted keys, arrays (and objects past MaxDepth)
// as JSON strings.
type flattener struct {
	dst  []byte
	n    int
	skip func(key string) bool // top-level keys to leave out (nil: none)
	seen uint8                 // page keys present at the top level
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
	members(obj, func(k, v []byte) bool {
		if f.n >= MaxKeys {
			return false
		}
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
			if f.skip != nil && f.skip(unquote(k)) {
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
				return true
			}
			f.memberRaw(key, k)
			f.dst = appendString(f.dst, compactString(v))
		case '[':
			f.memberRaw(key, k)
			f.dst = appendString(f.dst, compactString(v))
		case '"':
			f.memberRaw(key, k)
			f.dst = appendRawString(f.dst, trimWS(v))
		default: // number, true, false
			f.memberRaw(key, k)
			f.dst = append(f.dst, trimWS(v)...)
		}
		return true
	})
}

// memberRaw starts a member named key, or, when key is "", by the raw
// top-level key rawKey (copied as is when it needs no cleaning).
func (f *flattener) memberRaw(key string, rawKey []byte) {
	if key != "" {
		f.member(key)
		return
	}
	if len(rawKey) >= 2 && len(rawKey)-2 <= MaxKeyLength {
		body := rawKey[1 : len(rawKey)-1]
		if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) && noControl(body) {
			if f.n > 0 {
				f.dst = append(f.dst, ',')
			}
			f.n++
			f.dst = append(f.dst, rawKey...)
			f.dst = append(f.dst, ':')
			return
		}
	}
	f.member(unquote(rawKey))
}

func (f *flattener) member(key string) {
	if f.n > 0 {
		f.dst = append(f.dst, ',')
	}
	f.n++
	f.dst = appendString(f.dst, truncate(key, MaxKeyLength))
	f.dst = append(f.dst, ':')
}

// add appends one string member.
func (f *flattener) add(key, value string) {
	if f.n >= MaxKeys {
		return
	}
	f.member(key)
	f.dst = appendString(f.dst, truncate(value, MaxStringLength))
}

// compactString is raw JSON (an array or object) as a compact string, cut
// to MaxStringLength characters.
func compactString(raw []byte) string {
	var b bytes.Buffer
	if len(raw) > 4*MaxStringLength {
		raw = raw[:4*MaxStringLength] // enough for the cut below; validity no longer matters
		b.Write(raw)
	} else if err := json.Compact(&b, raw); err != nil {
		b.Reset()
		b.Write(raw)
	}
	return truncate(string(bytes.ToValidUTF8(b.Bytes(), []byte("\uFFFD"))), MaxStringLength)
}

// appendRawString appends a raw JSON string, cut to MaxStringLength
// characters and made valid UTF-8. Short plain strings are copied as is.
func appendRawString(dst, raw []byte) []byte {
	if len(raw) >= 2 && len(raw)-2 <= MaxStringLength {
		body := raw[1 : len(raw)-1]
		if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) && noControl(body) {
			return append(dst, raw...)
		}
	}
	return appendString(dst, truncate(unquote(raw), MaxStringLength))
}

func noControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return true
}
