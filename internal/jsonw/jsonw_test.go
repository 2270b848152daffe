package jsonw

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// What AppendString writes is valid JSON that decodes to the input (with
// invalid UTF-8 as U+FFFD), as encoding/json writes it apart from <, >, &.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ back`, "ctl \x00\x01\n\r\t\x1f", "é ☃ 🏰", "bad \xff\xfe utf8",
		"line sep \u2028 para \u2029", "<script>&</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		if !utf8.Valid(out) || bytes.ContainsRune(out, '\u2028') || bytes.ContainsRune(out, '\u2029') {
			t.Fatalf("AppendString(%q) = %q: invalid UTF-8 or a raw U+2028/U+2029 left in", s, out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, out, err)
		}
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if back != want {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json's output to %q", s, back, want)
		}
	})
}

// Each kind of byte that needs care, at every position of a string longer
// than one 8-byte step: what AppendString writes decodes to what
// encoding/json's output decodes to, and holds no raw non-ASCII byte that
// should have been written as U+FFFD or escaped.
func TestAppendStringEveryPosition(t *testing.T) {
	specials := []string{"\"", "\\", "\x00", "\x1f", "\n", "\x7f", "é", "注", "\xff", "\u2028", " ", "~"}
	for _, sp := range specials {
		for pos := range 20 {
			s := strings.Repeat("a", pos) + sp + strings.Repeat("b", 19-pos)
			out := AppendString(nil, s)
			if !utf8.Valid(out) || bytes.ContainsRune(out, '\u2028') {
				t.Fatalf("AppendString(%q) = %q: invalid UTF-8 or a raw U+2028 left in", s, out)
			}
			var got, want string
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			std, _ := json.Marshal(s)
			_ = json.Unmarshal(std, &want)
			if got != want {
				t.Fatalf("AppendString(%q) decodes to %q, want %q", s, got, want)
			}
		}
	}
}
