package jsonw

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
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

// AppendStamp writes what time's own formatting writes, for times in any
// location, across leap days, at the edges of years 0 and 9999 and past
// them.
func TestAppendStampAsAppendFormat(t *testing.T) {
	zone := time.FixedZone("east", 5*3600+30*60)
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 1, 1, 0, 30, 0, 1_000_000, zone), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 0, 0, 0, zone),
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10_000 {
		times = append(times, time.Unix(rng.Int64N(400_000_000_000)-62_000_000_000, rng.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), StampLayout)
		if got := AppendStamp([]byte("x"), tm); !bytes.Equal(got, want) {
			t.Fatalf("AppendStamp(%v) = %s, want %s", tm, got, want)
		}
	}
}
