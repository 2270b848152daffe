package swar

import (
	"math/bits"
	"math/rand/v2"
	"testing"
)

// Every mask names the first matching byte exactly, and is 0 when none
// matches, against a byte-at-a-time model, on random words built from the
// bytes near each boundary.
func TestMasksFindTheFirstMatch(t *testing.T) {
	edges := []byte{0, 1, 0x1f, 0x20, 0x21, '"', '\\', 'a', 0x7f, 0x80, 0x81, 0xfe, 0xff}
	tests := []struct {
		name  string
		mask  func(uint64) uint64
		match func(byte) bool
	}{
		{"Equal('\"')", func(x uint64) uint64 { return Equal(x, '"') }, func(c byte) bool { return c == '"' }},
		{"Equal(0)", func(x uint64) uint64 { return Equal(x, 0) }, func(c byte) bool { return c == 0 }},
		{"Below(0x20)", func(x uint64) uint64 { return Below(x, 0x20) }, func(c byte) bool { return c < 0x20 }},
		{"Below(0x80)", func(x uint64) uint64 { return Below(x, 0x80) }, func(c byte) bool { return c < 0x80 }},
		{"NonASCII", NonASCII, func(c byte) bool { return c >= 0x80 }},
		{"QuoteOrBackslash", QuoteOrBackslash, func(c byte) bool { return c == '"' || c == '\\' }},
		{"Special", Special, func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var b [8]byte
	for range 200_000 {
		for i := range b {
			b[i] = edges[rng.IntN(len(edges))]
		}
		x := Load(b[:])
		if s := string(b[:]); LoadString(s, 0) != x {
			t.Fatalf("LoadString(%q) = %#x, Load = %#x", s, LoadString(s, 0), x)
		}
		for _, tc := range tests {
			first := 8
			for i, c := range b {
				if tc.match(c) {
					first = i
					break
				}
			}
			m := tc.mask(x)
			if got := bits.TrailingZeros64(m) >> 3; got != first {
				t.Fatalf("%s(% x): first match at %d, want %d (mask %#x)", tc.name, b, got, first, m)
			}
		}
	}
}
