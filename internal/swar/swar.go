// Package swar tests 8 bytes of a string at once, in a uint64 (SIMD within
// a register): the JSON scanner, the mapping and the JSON string writer
// all look for the next byte that needs care this way.
//
// x holds the 8 bytes little-endian (Load, LoadString). Each test returns a
// mask with the high bit set in the first byte of x that matches, and in
// none below it; bytes above the first match may be marked wrongly. So a
// mask is 0 exactly when no byte matches, its trailing zeros / 8 is the
// first match's index, and the OR of masks marks the first byte that
// matches any of them.
package swar

import "encoding/binary"

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// Load returns b's first 8 bytes (len(b) >= 8).
func Load(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// LoadString returns the 8 bytes of s at i (i+8 <= len(s)).
func LoadString(s string, i int) uint64 {
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// Equal marks the bytes equal to c.
func Equal(x uint64, c byte) uint64 { return equal(x, c) & msb }

// Below marks the bytes below n (n at most 0x80).
func Below(x uint64, n byte) uint64 { return below(x, n) & msb }

// NonASCII marks the bytes at or above 0x80 (exactly: no byte is marked
// wrongly).
func NonASCII(x uint64) uint64 { return x & msb }

// QuoteOrBackslash marks the bytes '"' and '\\': where a JSON string ends
// or escapes.
func QuoteOrBackslash(x uint64) uint64 { return (equal(x, '"') | equal(x, '\\')) & msb }

// Special marks what a JSON string cannot hold as it is: '"', '\\' and
// control bytes.
func Special(x uint64) uint64 { return (equal(x, '"') | equal(x, '\\') | below(x, 0x20)) & msb }

// equal and below are Equal and Below before the high bits are picked, so
// that a union picks them once.
func equal(x uint64, c byte) uint64 {
	y := x ^ (lsb * uint64(c))
	return (y - lsb) &^ y
}

func below(x uint64, n byte) uint64 { return (x - lsb*uint64(n)) &^ x }
