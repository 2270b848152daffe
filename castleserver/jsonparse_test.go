package castleserver

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseJSON checks the request parser against encoding/json: the same
// inputs are valid (up to maxDepth levels of nesting, which the parser
// refuses beyond), and a valid input reads as the same value (numbers as
// their text, duplicate keys last-wins, strings unescaped the same way).
func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		`{"type":"$custom","name":"Clicked","user":{"id":"u1","traits":{"a":1}},"properties":{"x":-1.5e3,"y":true,"z":null}}`,
		`{"context":{"ip":"81.2.69.142","headers":[["User-Agent","x"],["Accept","*/*"]]}}`,
		`{"a":1,"a":2}`,
		`"\u00e9\ud83d\ude00\ud800x\/\b\f\n\r\t\"\\"`,
		"\"\xff\xfe raw invalid utf-8\"",
		`{"k\u0000ey":"v"}`,
		`[0,-0,0.1,1e5,1E-5,-12.34e+10]`,
		`   {}   `,
		`[]`,
		strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2),
		`{"a":}`, `[1,]`, `01`, `1.`, `-`, `"\x"`, `"\u12"`, `{"a" 1}`, `nul`, `[1 2]`, `{} {}`, "\"a\x01\"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseJSON(b)
		valid := json.Valid(b)
		if valid && depthOf(b) > maxDepth {
			if err == nil {
				d.free()
				t.Fatalf("nesting deeper than %d accepted: %q", maxDepth, b)
			}
			return
		}
		if (err == nil) != valid {
			t.Fatalf("parseJSON err = %v, json.Valid = %v for %q", err, valid, b)
		}
		if err != nil {
			return
		}
		defer d.free()
		got := d.value(0)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("value of %q:\n got %#v\nwant %#v", b, got, want)
		}
	})
}

// value converts node n to what encoding/json decodes with UseNumber.
func (d *doc) value(n int32) any {
	switch d.kind(n) {
	case jNull:
		return nil
	case jBool:
		return d.isTrue(n)
	case jNumber:
		x := &d.nodes[n]
		return json.Number(d.b[x.start:x.end])
	case jString:
		return d.text(n)
	case jArray:
		out := []any{}
		for c := d.nodes[n].child; c >= 0; c = d.nodes[c].next {
			out = append(out, d.value(c))
		}
		return out
	default:
		out := map[string]any{}
		for c := d.nodes[n].child; c >= 0; c = d.nodes[c].next {
			out[d.key(c)] = d.value(c)
		}
		return out
	}
}

// depthOf is the deepest nesting of a value in valid JSON b: 0 for the
// root, 1 for a member of the root container, and so on.
func depthOf(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	open, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		if delim, ok := tok.(json.Delim); ok && (delim == '}' || delim == ']') {
			open--
			continue
		}
		deepest = max(deepest, open)
		if delim, ok := tok.(json.Delim); ok && (delim == '{' || delim == '[') {
			open++
		}
	}
}

func TestParseJSONDepthLimit(t *testing.T) {
	ok := strings.Repeat("[", maxDepth) + "1" + strings.Repeat("]", maxDepth)
	if d, err := parseJSON([]byte(ok)); err != nil {
		t.Errorf("%d levels: %v", maxDepth, err)
	} else {
		d.free()
	}
	deep := strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)
	if _, err := parseJSON([]byte(deep)); err == nil {
		t.Error("10,000 levels accepted")
	}
}
