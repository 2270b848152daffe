package mapping

// MaxNesting bounds the nesting of objects and arrays in a record; deeper
// input is malformed. (encoding/json allows 10,000; no Segment message
// comes near 1,024.)
const MaxNesting = 1024

// valid reports whether b is exactly one JSON value (RFC 8259), nested at
// most MaxNesting deep. It is iterative, allocates nothing, and accepts
// invalid UTF-8 inside strings like encoding/json.Valid does (the mapping
// cleans it when copying).
func valid(b []byte) bool {
	var stack [MaxNesting / 64]uint64 // bit set: 1 = object, 0 = array
	depth := 0
	i := skipWS(b, 0)
	for {
		// A value is expected at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth >= MaxNesting {
				return false
			}
			if c == '{' {
				stack[depth>>6] |= 1 << (depth & 63)
			} else {
				stack[depth>>6] &^= 1 << (depth & 63)
			}
			depth++
			i = skipWS(b, i+1)
			if i >= len(b) {
				return false
			}
			if b[i] == '}' && c == '{' || b[i] == ']' && c == '[' {
				depth--
				i++
				break
			}
			if c == '{' {
				if i = validString(b, i); i < 0 {
					return false
				}
				if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
					return false
				}
				i = skipWS(b, i+1)
			}
			continue
		case c == '"':
			if i = validString(b, i); i < 0 {
				return false
			}
		case c == 't':
			if !lit(b, i, "true") {
				return false
			}
			i += 4
		case c == 'f':
			if !lit(b, i, "false") {
				return false
			}
			i += 5
		case c == 'n':
			if !lit(b, i, "null") {
				return false
			}
			i += 4
		case c == '-' || c >= '0' && c <= '9':
			if i = validNumber(b, i); i < 0 {
				return false
			}
		default:
			return false
		}
		// After a value: close containers, or a comma and the next value.
		for {
			i = skipWS(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			obj := stack[(depth-1)>>6]&(1<<((depth-1)&63)) != 0
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
				if obj {
					if i = validString(b, i); i < 0 {
						return false
					}
					if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
						return false
					}
					i = skipWS(b, i+1)
				}
			case '}':
				if !obj {
					return false
				}
				depth--
				i++
				continue
			case ']':
				if obj {
					return false
				}
				depth--
				i++
				continue
			default:
				return false
			}
			break
		}
	}
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
