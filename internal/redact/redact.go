// Package redact hides tokens and credentials in text that may hold a
// Segment message or a request to Castle: a dead letter's value in a log
// line, an error body Castle echoed.
package redact

import (
	"bytes"

	"github.com/castle-destination/castle-destination/internal/rawjson"
)

// redactedKeys are the keys, lower case, whose string values JSON hides:
// Castle's request token and Secure Mode token, as Segment messages carry
// them (integrations.Castle, context.Castle; the mapping also takes
// user_jwt), and the headers that carry sessions and credentials: the
// Cookie and Authorization SPEC names, and their kin a message's headers
// may hold as well (a response's Set-Cookie, a proxy's credentials,
// Castle's request token as the header its SDKs read).
var redactedKeys = [][]byte{[]byte("requesttoken"), []byte("request_token"), []byte("userjwt"),
	[]byte("user_jwt"), []byte("cookie"), []byte("authorization"), []byte("set-cookie"),
	[]byte("proxy-authorization"), []byte("x-castle-request-token")}

// JSON returns b with the string value of every redactedKeys key
// (matched case-insensitively, anywhere in the document) replaced by
// [redacted]; b itself when there is none. It looks for the keys rather
// than parse b, so it also works on a value cut short or not JSON at all,
// as a dead letter's may be, and on JSON held in a JSON string (a gateway
// that echoes the request it refused in its answer), whose quotes are
// escaped: \" one level down, \\\" two.
func JSON(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		level := quoteLevel(b, i)
		end, ok := keyEnd(b, i+1, level)
		if !ok {
			continue
		}
		k := rawjson.SkipWS(b, end+1)
		if k >= len(b) || b[k] != ':' {
			continue
		}
		k = rawjson.SkipWS(b, k+1)
		start, ok := openQuote(b, k, level)
		if !ok {
			continue
		}
		vEnd := valueEnd(b, start, level)
		out = append(out, b[last:start]...)
		out = append(out, "[redacted]"...)
		last = vEnd
		i = max(vEnd, start)
	}
	if out == nil {
		return b
	}
	out = append(out, b[last:]...)
	return out
}

// quoteLevel is how deep in strings the quote at b[i] delimits: 0 for a
// quote of the document itself, 1 for one escaped once (\"), as in JSON
// held in a JSON string, 2 for \\\", and so on. Each level down doubles
// the backslashes before a quote and adds one; an even number of them
// (escaped backslashes) leaves the quote a delimiter of its level.
func quoteLevel(b []byte, i int) int {
	n := backslashesBefore(b, i, 0)
	level := 0
	for n%2 == 1 {
		n = (n - 1) / 2
		level++
	}
	return level
}

// backslashesBefore counts the backslashes just before b[i], not looking
// before b[from].
func backslashesBefore(b []byte, i, from int) int {
	n := 0
	for i-n-1 >= from && b[i-n-1] == '\\' {
		n++
	}
	return n
}

// escapes is the number of backslashes that escape a quote of level.
func escapes(level int) int { return 1<<level - 1 }

// keyEnd reports whether a redactedKeys key starts at b[i] and is closed
// by a quote of level, and returns the index of that quote.
func keyEnd(b []byte, i, level int) (int, bool) {
	for _, r := range redactedKeys {
		e := i + len(r) + escapes(level)
		if e < len(b) && b[e] == '"' && bytes.EqualFold(b[i:i+len(r)], r) &&
			quoteLevel(b, e) == level && backslashesBefore(b, e, i) == escapes(level) {
			return e, true
		}
	}
	return 0, false
}

// openQuote reports whether a quote of level opens at b[k] (with its
// escaping backslashes), and returns the index just past it.
func openQuote(b []byte, k, level int) (int, bool) {
	q := k + escapes(level)
	if q >= len(b) || b[q] != '"' || backslashesBefore(b, q, k) != escapes(level) {
		return 0, false
	}
	return q + 1, true
}

// valueEnd returns where the escaping backslashes of the quote that ends
// the string of level starting at b[i] begin: at the first quote that
// delimits at level or above. len(b) when the string is not ended.
func valueEnd(b []byte, i, level int) int {
	for j := i; j < len(b); j++ {
		if b[j] != '"' {
			continue
		}
		if l := quoteLevel(b, j); l <= level {
			return max(j-escapes(l), i)
		}
	}
	return len(b)
}

// String is JSON for a string.
func String(s string) string {
	b := JSON([]byte(s))
	if len(b) == len(s) && string(b) == s {
		return s
	}
	return string(b)
}
