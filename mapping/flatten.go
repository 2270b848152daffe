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
}

func (f *flattener) object(prefix string, obj []byte, depth int) {
	members(obj, func(k, v []byte) bool {
		if f.n >= MaxKeys {
			return false
		}
		key := unquote(k)
		if prefix != "" {
			key = prefix + "." + key
		} else if f.skip != nil && f.skip(key) {
			return true
		}
		switch kind(v) {
		case 'n', 0:
			return true
		case '{':
			if depth < MaxDepth {
				f.object(key, v, depth+1)
				return true
			}
			f.member(key)
			f.dst = appendString(f.dst, compactString(v))
		case '[':
			f.member(key)
			f.dst = appendString(f.dst, compactString(v))
		case '"':
			f.member(key)
			f.dst = appendRawString(f.dst, trimWS(v))
		default: // number, true, false
			f.member(key)
			f.dst = append(f.dst, trimWS(v)...)
		}
		return true
	})
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
