package mapping

import (
	"bytes"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/castle-destination/castle-destination/internal/rawjson"
	"github.com/castle-destination/castle-destination/internal/swar"
)

// Helpers over raw JSON values the mapping has already validated; the
// reader that walks members and elements is internal/rawjson.

// plainString reports whether a string's body can be copied into JSON as
// it is: valid UTF-8 with no backslash and no control byte.
func plainString(body []byte) bool {
	i := 0
	for ; i+8 <= len(body); i += 8 {
		x := swar.Load(body[i:])
		if swar.Equal(x, '\\')|swar.Below(x, 0x20)|swar.NonASCII(x) != 0 {
			break
		}
	}
	for ; i < len(body); i++ {
		switch c := body[i]; {
		case c < 0x20 || c == '\\':
			return false
		case c >= utf8.RuneSelf:
			rest := body[i:]
			return utf8.Valid(rest) && noControl(rest) && bytes.IndexByte(rest, '\\') < 0
		}
	}
	return true
}

// kind is the first byte class of a raw value: rawjson.First, with every
// number as '0'.
func kind(v []byte) byte {
	switch c := rawjson.First(v); c {
	case 0, '"', '{', '[', 't', 'f', 'n':
		return c
	default:
		return '0' // number
	}
}

// unquote decodes a raw JSON string into valid UTF-8 (invalid bytes become
// U+FFFD). A non-string gives "".
func unquote(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	s := raw[1 : len(raw)-1]
	if verbatim(s) {
		return view(s)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				out = append(out, '\n')
			case 't':
				out = append(out, '\t')
			case 'r':
				out = append(out, '\r')
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'u':
				if i+6 <= len(s) {
					r := hex4(s[i+2 : i+6])
					i += 6
					if r >= 0xD800 && r < 0xDC00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if lo := hex4(s[i+2 : i+6]); lo >= 0xDC00 && lo < 0xE000 {
							r = (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000
							i += 6
						}
					}
					if r >= 0xD800 && r < 0xE000 || r < 0 {
						r = utf8.RuneError
					}
					out = utf8.AppendRune(out, r)
					continue
				}
				out = append(out, '?')
			default:
				out = append(out, s[i+1])
			}
			i += 2
			continue
		}
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		out = utf8.AppendRune(out, r) // RuneError for invalid bytes
		i += n
	}
	return string(out)
}

// verbatim reports whether a string's body decodes to itself: valid UTF-8
// without a backslash.
func verbatim(s []byte) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if x := swar.Load(s[i:]); swar.Equal(x, '\\')|swar.NonASCII(x) != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			return false
		case c >= utf8.RuneSelf:
			rest := s[i:]
			return bytes.IndexByte(rest, '\\') < 0 && utf8.Valid(rest)
		}
	}
	return true
}

func hex4(b []byte) rune {
	v, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil {
		return -1
	}
	return rune(v)
}

// text is a raw scalar as a string: a string unquoted, a number or boolean
// as written; null, objects and arrays give "".
func text(raw []byte) string {
	switch kind(raw) {
	case '"':
		return unquote(trimWS(raw))
	case '0', 't', 'f':
		return view(trimWS(raw))
	}
	return ""
}

// view is b as a string without copying: the mapping's strings alias the
// record, which the caller must not modify while it uses the results (see
// Map). Values that outlive a record (the Users cache, the token cache)
// are cloned.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func trimWS(b []byte) []byte {
	i := rawjson.SkipWS(b, 0)
	j := len(b)
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// keyIs reports whether the raw key equals name, ASCII case-insensitively.
func keyIs(rawKey []byte, name string) bool {
	if len(rawKey) != len(name)+2 {
		return false
	}
	for i := 0; i < len(name); i++ {
		a, b := rawKey[i+1], name[i]
		if a|0x20 != b|0x20 || (a|0x20 < 'a' || a|0x20 > 'z') && a != b {
			return false
		}
	}
	return true
}

// field returns the raw value of the first member of obj whose key matches
// one of names case-insensitively.
func field(obj []byte, names ...string) []byte {
	var out []byte
	rawjson.Members(obj, func(k, v []byte) bool {
		for _, n := range names {
			if keyIs(k, n) {
				out = v
				return false
			}
		}
		return true
	})
	return out
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// truthy is JavaScript's truthiness of a raw JSON value, as analytics.js
// applies it to integrations options: false, null, zero (any spelling) and
// "" are falsy, and so is a missing value; everything else (true, any
// other number or string, "false" included, objects and arrays) is truthy.
func truthy(v []byte) bool {
	v = trimWS(v)
	switch kind(v) {
	case 0, 'f', 'n':
		return false
	case '"':
		return len(v) > 2
	case '0':
		for _, c := range v {
			switch {
			case c == 'e' || c == 'E':
				return false // the digits before the exponent were all zero
			case c >= '1' && c <= '9':
				return true
			}
		}
		return false
	}
	return true
}
