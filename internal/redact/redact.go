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
// them (integrations.Castle, context.Castle), and the headers that carry
// sessions and credentials.
var redactedKeys = [][]byte{[]byte("requesttoken"), []byte("request_token"), []byte("userjwt"),
	[]byte("cookie"), []byte("authorization")}

// JSON returns b with the string value of every redactedKeys key
// (matched case-insensitively, anywhere in the document) replaced by
// [redacted]; b itself when there is none. It reads b as JSON strings
// one after another, so it also works on a value cut short or not JSON at
// all, as a dead letter's may be.
func JSON(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		end := stringEnd(b, i+1)
		if end >= len(b) {
			break
		}
		key := b[i+1 : end]
		i = end
		if !isRedactedKey(key) {
			continue
		}
		k := rawjson.SkipWS(b, end+1)
		if k >= len(b) || b[k] != ':' {
			continue
		}
		k = rawjson.SkipWS(b, k+1)
		if k >= len(b) || b[k] != '"' {
			continue
		}
		vEnd := stringEnd(b, k+1)
		out = append(out, b[last:k+1]...)
		out = append(out, "[redacted]"...)
		last = min(vEnd, len(b))
		i = vEnd
	}
	if out == nil {
		return b
	}
	out = append(out, b[last:]...)
	return out
}

// stringEnd returns the index of the quote that ends the JSON string whose
// contents start at i, or len(b) when it is not ended.
func stringEnd(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(b)
}

func isRedactedKey(k []byte) bool {
	for _, r := range redactedKeys {
		if bytes.EqualFold(k, r) {
			return true
		}
	}
	return false
}

// String is JSON for a string.
func String(s string) string {
	b := JSON([]byte(s))
	if len(b) == len(s) && string(b) == s {
		return s
	}
	return string(b)
}
