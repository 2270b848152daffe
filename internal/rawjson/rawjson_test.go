package rawjson_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/internal/rawjson"
)

// SkipString must end every string literal where encoding/json does,
// short or long, with escapes anywhere (runs of backslashes before a
// quote included).
func FuzzSkipString(f *testing.F) {
	for _, s := range []string{"", "a", `x"y`, `\`, `\\`, strings.Repeat(`\\`, 9) + `"`, strings.Repeat("é", 20), "abcdefghijklmno\\\"p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit, err := json.Marshal(s)
		if err != nil {
			t.Skip()
		}
		b := append(append([]byte(`[`), lit...), `,1]`...)
		if got, want := rawjson.SkipString(b, 1), 1+len(lit); got != want {
			t.Fatalf("SkipString(%s) ends at %d, want %d", b, got, want)
		}
	})
}

// Members and Elements see, on any valid JSON, the members and elements
// encoding/json sees, in document order, each value exactly as written.
// On input that is not JSON they must not panic.
func FuzzMembersElements(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":1,"b":"x\"y","c":{"d":[1,{"e":null}]},"f":[true,false]}`,
		` { "a" : [ 1 , 2 ] , "b" : { } } `, `[1,"two",{"three":3},[4],null]`,
		`{"k\u00e9y":"v\\"}`, `{"a":{"b":"}]{["},"c":2}`, `[["]\"]"],1]`, `{"a":`, `[1,`, `"str"`, `12`, `{"a":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var keys, vals []string
		rawjson.Members(b, func(k, v []byte) bool {
			keys, vals = append(keys, string(k)), append(vals, string(v))
			return true
		})
		var elems []string
		rawjson.Elements(b, func(v []byte) bool {
			elems = append(elems, string(v))
			return true
		})
		if !json.Valid(b) {
			return // not panicking is all that is asked
		}
		switch rawjson.First(b) {
		case '{':
			d := json.NewDecoder(bytes.NewReader(b))
			if _, err := d.Token(); err != nil {
				t.Fatal(err)
			}
			for i := 0; d.More(); i++ {
				k, err := d.Token()
				if err != nil {
					t.Fatal(err)
				}
				var v json.RawMessage
				if err := d.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if i >= len(keys) {
					t.Fatalf("Members of %s stopped after %d members", b, len(keys))
				}
				var gotKey string
				if err := json.Unmarshal([]byte(keys[i]), &gotKey); err != nil || gotKey != k.(string) {
					t.Fatalf("member %d of %s: key %s, want %q", i, b, keys[i], k)
				}
				if vals[i] != string(v) {
					t.Fatalf("member %d of %s: value %s, want %s", i, b, vals[i], v)
				}
			}
			if len(elems) != 0 {
				t.Fatalf("Elements of the object %s saw %d elements", b, len(elems))
			}
		case '[':
			var want []json.RawMessage
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if len(elems) != len(want) {
				t.Fatalf("Elements of %s saw %d elements, want %d", b, len(elems), len(want))
			}
			for i := range want {
				if elems[i] != string(bytes.TrimSpace(want[i])) {
					t.Fatalf("element %d of %s: %s, want %s", i, b, elems[i], want[i])
				}
			}
			if len(keys) != 0 {
				t.Fatalf("Members of the array %s saw %d members", b, len(keys))
			}
		default:
			if len(keys)+len(elems) != 0 {
				t.Fatalf("a scalar %s has members or elements", b)
			}
		}
	})
}

// fn returning false stops the walk at once.
func TestStopEarly(t *testing.T) {
	n := 0
	rawjson.Members([]byte(`{"a":1,"b":2,"c":3}`), func(k, _ []byte) bool { n++; return string(k) != `"b"` })
	if n != 2 {
		t.Errorf("Members called fn %d times after a false at the second member, want 2", n)
	}
	n = 0
	rawjson.Elements([]byte(`[1,2,3]`), func([]byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("Elements called fn %d times after a false at the first element, want 1", n)
	}
}

func TestFirst(t *testing.T) {
	for in, want := range map[string]byte{``: 0, ` `: 0, ` {"a":1}`: '{', "\n\t[1]": '[', `"s"`: '"', `-1`: '-', `null`: 'n'} {
		if got := rawjson.First([]byte(in)); got != want {
			t.Errorf("First(%q) = %q, want %q", in, got, want)
		}
	}
}

// Member finds the object's own member, the first of a repeated key, not
// one nested in a value or named in a string.
func TestMember(t *testing.T) {
	key := []byte(`"k"`)
	for in, want := range map[string]string{
		`{"a":1,"k":"v","k":2}`:      `"v"`,
		`{"a":{"k":"nested"},"k":3}`: `3`,
		`{"a":"\"k\":1"}`:            ``,
		`{"a":{"k":1}}`:              ``,
		`["k"]`:                      ``,
		`{"kk":1}`:                   ``,
	} {
		if got := rawjson.Member([]byte(in), key); string(got) != want {
			t.Errorf("Member(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestWithout(t *testing.T) {
	key := []byte(`"k"`)
	for in, want := range map[string]string{
		`{"a":1,"k":"v","b":2}`:      `{"a":1,"b":2}`,
		`{"k":"v","b":2}`:            `{"b":2}`,
		`{"a":1,"k":"v"}`:            `{"a":1}`,
		`{"k":1,"k":2}`:              `{}`,
		` { "a" : 1 , "k" : "v" } `:  `{"a":1}`,
		`{"a":{"k":"nested"},"b":3}`: `{"a":{"k":"nested"},"b":3}`,
		`{"a":"\"k\":1"}`:            `{"a":"\"k\":1"}`,
		`["k"]`:                      `["k"]`,
	} {
		if got := rawjson.Without([]byte(in), key); string(got) != want {
			t.Errorf("Without(%s) = %s, want %s", in, got, want)
		}
	}
}

// Without never panics; on a valid object it gives valid JSON holding the
// other members, raw and in order, and none whose raw key is the key (a
// key spelled with escapes is another raw key, and stays).
func FuzzWithout(f *testing.F) {
	for _, s := range []string{
		`{}`, `{ }`, `[]`, `"k"`, `12`, ``, `{"k":1}`, `{"a":1,"k":"v","b":{"k":2}}`, `{"k":1,"k":2,"a":[{"k":3}]}`,
		` { "k" : "v" , "a" : "\"k\":1" } `, `{"\u006b":1,"k":2}`, `{"k":`, `{"k":1,`, `{"a":1}}`, `{"k"}`, `{"k":}`,
	} {
		f.Add([]byte(s))
	}
	key := []byte(`"k"`)
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		got := rawjson.Without(b, key)
		if !bytes.Equal(b, in) {
			t.Fatalf("Without changed its input %q to %q", in, b)
		}
		if !json.Valid(b) {
			return // not panicking is all that is asked
		}
		if rawjson.Member(b, key) == nil {
			if !bytes.Equal(got, b) {
				t.Fatalf("Without(%s) = %s, want the input itself", b, got)
			}
			return
		}
		if !json.Valid(got) {
			t.Fatalf("Without(%s) = %s: not JSON", b, got)
		}
		var want, have []string
		rawjson.Members(b, func(k, v []byte) bool {
			if !bytes.Equal(k, key) {
				want = append(want, string(k)+":"+string(v))
			}
			return true
		})
		rawjson.Members(got, func(k, v []byte) bool {
			have = append(have, string(k)+":"+string(v))
			return true
		})
		if strings.Join(have, ",") != strings.Join(want, ",") {
			t.Fatalf("Without(%s) = %s, want the members %v", b, got, want)
		}
	})
}
