package castleserver

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, strict JSON parser (RFC 8259) for the request path. The server
// parses every body once into a flat array of nodes (pooled, so parsing
// allocates nothing in the steady state) and validates from it. This is
// several times cheaper than encoding/json's repeated scans into
// RawMessages, which dominated the server's CPU time. It is fuzzed against
// encoding/json (FuzzParseJSON in jsonparse_test.go): both accept the same
// inputs, up to maxDepth levels of nesting, and read the same values.

type jkind uint8

const (
	jNull jkind = iota + 1
	jBool
	jNumber
	jString
	jObject
	jArray
)

// node is one value. Strings span the text between the quotes (esc says
// whether it holds escapes); numbers and literals span their text. An
// object member's node also spans its key. Children are linked: child is
// the first, next the following sibling (-1 for none).
type node struct {
	kind         jkind
	esc, keyEsc  bool
	start, end   int32
	kstart, kend int32
	child, next  int32
}

// doc is a parsed body.
type doc struct {
	b     []byte
	nodes []node
}

var docPool = sync.Pool{New: func() any { return &doc{nodes: make([]node, 0, 64)} }}

// maxDepth bounds nesting, so hostile bodies cannot exhaust the stack.
const maxDepth = 128

var errSyntax = errors.New("invalid JSON")

// parseJSON parses b, one JSON value with nothing after it but whitespace.
// The root is node 0. Release the doc with free.
func parseJSON(b []byte) (*doc, error) {
	d := docPool.Get().(*doc)
	d.b, d.nodes = b, d.nodes[:0]
	p := parser{d: d, b: b}
	if _, err := p.value(0); err != nil {
		d.free()
		return nil, err
	}
	p.ws()
	if p.i != len(b) {
		d.free()
		return nil, errSyntax
	}
	return d, nil
}

func (d *doc) free() {
	if cap(d.nodes) > 4096 {
		return // do not keep huge arrays around
	}
	d.b = nil
	docPool.Put(d)
}

func (d *doc) kind(n int32) jkind { return d.nodes[n].kind }

// text returns a string value unescaped, invalid UTF-8 replaced by
// U+FFFD as encoding/json does.
func (d *doc) text(n int32) string {
	x := &d.nodes[n]
	raw := d.b[x.start:x.end]
	if !x.esc && utf8.Valid(raw) {
		return string(raw)
	}
	return string(unescape(raw))
}

// key returns an object member's key as text returns a value.
func (d *doc) key(n int32) string {
	x := &d.nodes[n]
	raw := d.b[x.kstart:x.kend]
	if !x.keyEsc && utf8.Valid(raw) {
		return string(raw)
	}
	return string(unescape(raw))
}

// runes counts the characters of a string value.
func (d *doc) runes(n int32) int {
	x := &d.nodes[n]
	raw := d.b[x.start:x.end]
	if !x.esc {
		return utf8.RuneCount(raw)
	}
	return utf8.RuneCount(unescape(raw))
}

func (d *doc) isTrue(n int32) bool { return d.nodes[n].kind == jBool && d.b[d.nodes[n].start] == 't' }

// isInteger reports whether n is a number written with no fraction and no
// exponent.
func (d *doc) isInteger(n int32) bool {
	x := &d.nodes[n]
	return x.kind == jNumber && !bytes.ContainsAny(d.b[x.start:x.end], ".eE")
}

// get returns the member of object n named key, or -1. With duplicate keys
// the last wins, as in encoding/json.
func (d *doc) get(n int32, key string) int32 {
	found := int32(-1)
	for c := d.nodes[n].child; c >= 0; c = d.nodes[c].next {
		x := &d.nodes[c]
		if x.keyEsc || !utf8.Valid(d.b[x.kstart:x.kend]) {
			if d.key(c) == key {
				found = c
			}
		} else if string(d.b[x.kstart:x.kend]) == key {
			found = c
		}
	}
	return found
}

// children counts the children of n.
func (d *doc) children(n int32) int {
	k := 0
	for c := d.nodes[n].child; c >= 0; c = d.nodes[c].next {
		k++
	}
	return k
}

type parser struct {
	d *doc
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) add(k jkind) int32 {
	p.d.nodes = append(p.d.nodes, node{kind: k, child: -1, next: -1})
	return int32(len(p.d.nodes) - 1)
}

// value parses a value into a new node and returns its index.
func (p *parser) value(depth int) (int32, error) {
	if depth > maxDepth {
		return -1, errSyntax
	}
	p.ws()
	if p.i >= len(p.b) {
		return -1, errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.container(depth, jObject)
	case c == '[':
		return p.container(depth, jArray)
	case c == '"':
		n := p.add(jString)
		s, e, esc, err := p.str()
		if err != nil {
			return -1, err
		}
		x := &p.d.nodes[n]
		x.start, x.end, x.esc = int32(s), int32(e), esc
		return n, nil
	case c == 't':
		return p.lit("true", jBool)
	case c == 'f':
		return p.lit("false", jBool)
	case c == 'n':
		return p.lit("null", jNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return -1, errSyntax
}

func (p *parser) lit(s string, k jkind) (int32, error) {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return -1, errSyntax
	}
	n := p.add(k)
	p.d.nodes[n].start, p.d.nodes[n].end = int32(p.i), int32(p.i+len(s))
	p.i += len(s)
	return n, nil
}

func (p *parser) container(depth int, k jkind) (int32, error) {
	closer := byte('}')
	if k == jArray {
		closer = ']'
	}
	n := p.add(k)
	p.i++ // { or [
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == closer {
		p.i++
		return n, nil
	}
	last := int32(-1)
	for {
		var ks, ke int
		var kesc bool
		if k == jObject {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return -1, errSyntax
			}
			var err error
			if ks, ke, kesc, err = p.str(); err != nil {
				return -1, err
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return -1, errSyntax
			}
			p.i++
		}
		c, err := p.value(depth + 1)
		if err != nil {
			return -1, err
		}
		x := &p.d.nodes[c]
		x.kstart, x.kend, x.keyEsc = int32(ks), int32(ke), kesc
		if last < 0 {
			p.d.nodes[n].child = c
		} else {
			p.d.nodes[last].next = c
		}
		last = c
		p.ws()
		if p.i >= len(p.b) {
			return -1, errSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case closer:
			p.i++
			return n, nil
		default:
			return -1, errSyntax
		}
	}
}

// str scans a string at p.i (the opening quote) and returns the span of
// its contents.
func (p *parser) str() (start, end int, esc bool, err error) {
	p.i++ // opening quote
	start = p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			end = p.i
			p.i++
			return start, end, esc, nil
		case c < 0x20:
			return 0, 0, false, errSyntax
		case c == '\\':
			esc = true
			p.i++
			if p.i >= len(p.b) {
				return 0, 0, false, errSyntax
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if len(p.b)-p.i < 5 {
					return 0, 0, false, errSyntax
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !isHex(h) {
						return 0, 0, false, errSyntax
					}
				}
				p.i += 5
			default:
				return 0, 0, false, errSyntax
			}
		default:
			p.i++
		}
	}
	return 0, 0, false, errSyntax
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (p *parser) number() (int32, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return -1, errSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return -1, errSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return -1, errSyntax
		}
	}
	n := p.add(jNumber)
	p.d.nodes[n].start, p.d.nodes[n].end = int32(start), int32(p.i)
	return n, nil
}

// unescape decodes the escapes of a scanned string body, the way
// encoding/json does (lone surrogates and invalid UTF-8 become U+FFFD).
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				out = append(out, c)
				i++
				continue
			}
			r, n := utf8.DecodeRune(s[i:])
			out = utf8.AppendRune(out, r) // RuneError for invalid bytes
			i += n
			continue
		}
		i++
		switch s[i] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s[i+1 : i+5])
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+7 <= len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2 = hex4(s[i+3 : i+7])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default: // " \ /
			out = append(out, s[i])
		}
		i++
	}
	return out
}

func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}
