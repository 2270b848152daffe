package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValid(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":1}`, ` {"a":[1,2,{"b":null}],"c":"x\"\u00e9"} `, `"s"`, `0`, `-1.5e+3`, `true`, `null`,
		`{"a":1,}`, `{"a"}`, `[1,]`, `{'a':1}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`,
		`{"a":1} x`, `[1 2]`, `{"a" 1}`, `{"a":1]`, `[}`, `tru`, `"\u12"`, `-`, ``, ` `, `{"a":{"b":[]}}`,
		strings.Repeat("[", 1024) + strings.Repeat("]", 1024),
	} {
		want := json.Valid([]byte(s))
		if got, _ := scan([]byte(s), nil); got != want {
			t.Errorf("scan(%.40q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

// scan has no depth limit of its own: it reports the depth, which nesting
// computes the same way for a part of the record.
func TestScanDepth(t *testing.T) {
	for _, tc := range []struct {
		in    string
		depth int
	}{
		{`1`, 0}, {`"[{"`, 0}, {`[]`, 1}, {`{"a":[1,{"b":"]]]"}]}`, 3}, {`[[],[[]],{}]`, 3},
		{strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting), MaxNesting},
		{strings.Repeat(`{"a":[`, 2500) + strings.Repeat(`]}`, 2500), 5000},
	} {
		ok, depth := scan([]byte(tc.in), nil)
		if !ok || depth != tc.depth {
			t.Errorf("scan(%.40q) = %v, %d; want true, %d", tc.in, ok, depth, tc.depth)
		}
		if n := nesting([]byte(tc.in)); n != tc.depth {
			t.Errorf("nesting(%.40q) = %d, want %d", tc.in, n, tc.depth)
		}
	}
	// Unbalanced past the first 1024 levels: still invalid.
	for _, s := range []string{
		strings.Repeat("[", 3000) + strings.Repeat("]", 2999),
		strings.Repeat("[", 3000) + "}" + strings.Repeat("]", 2999),
	} {
		if ok, _ := scan([]byte(s), nil); ok {
			t.Errorf("scan accepted %d bytes of unbalanced nesting", len(s))
		}
	}
	if !strings.Contains(tooDeep, strconv.Itoa(MaxNesting)) {
		t.Errorf("the dead-letter detail %q does not name MaxNesting", tooDeep)
	}
}

func TestScanAllocatesNothing(t *testing.T) {
	b := []byte(`{"type":"page","properties":{"a":[1,2,{"b":"c"}]},"context":{"ip":"81.2.69.142"}}`)
	var nt notes
	if n := testing.AllocsPerRun(100, func() { scan(b, &nt) }); n != 0 {
		t.Errorf("scan allocates %v times per record", n)
	}
}

// The members scan notes, the record's and its context's, decode as a
// walk of the record does: duplicate keys, whitespace, empty and nested
// values, batches, a context that is not an object or not the last, and
// more members than are noted.
func TestScanNotesMembers(t *testing.T) {
	var many strings.Builder
	many.WriteString(`{"type":"track"`)
	for i := range maxMembers + 3 {
		fmt.Fprintf(&many, `,"k%d":%d`, i, i)
	}
	many.WriteString(`,"event":"Last"}`)
	var manyCtx strings.Builder
	manyCtx.WriteString(`{"type":"page","context":{"ip":"1.2.3.4"`)
	for i := range maxMembers + 3 {
		fmt.Fprintf(&manyCtx, `,"k%d":%d`, i, i)
	}
	manyCtx.WriteString(`,"userAgent":"Last"}}`)
	inputs := []string{
		`{}`, ` { } `, `{"type":"page"}`, "\t{ \"type\" :\n\"page\" , \"userId\":\"u\"}\n",
		`{"type":"page","type":"track","event":{},"properties":{"a":{}},"context":{"ip":"1.2.3.4","library":{"name":"x"}},"x":[],"y":[[]]}`,
		`{"batch":[{"type":"page"}],"context":{"ip":"1.2.3.4"},"sentAt":"2026-01-01T00:00:00Z","integrations":{"All":false}}`,
		`{"userId":null,"anonymousId":12,"messageId":true,"timestamp":-1.5e3,"properties":"s","traits":[1,{"a":"\"}"}]}`,
		"{\"properties\":{\"a\":1} ,\"integrations\":{}\n}", `{"traits":{"email":"e"}}`,
		many.String(), manyCtx.String(),
		`{"context":{"ip":"1.2.3.4"},"context":{"userAgent":"ua"}}`, `{"context":{"ip":"1.2.3.4"},"context":5}`,
		`{"context":null,"context":{"ip":"1.2.3.4","Castle":{"userJwt":"t"}}}`, `{"context" : { } }`,
		`{"Context":{"ip":"1.2.3.4"},"properties":{"context":{"ip":"5.6.7.8"}},"traits":[{"context":{}}]}`,
		"{\"context\":{\"ip\" : \"1.2.3.4\" ,\"library\":{\"name\":\"analytics.js\"}\n,\"page\":{\"url\":\"u\"} } ,\"type\":\"page\"}",
		`{"context":{"ip":"1.2.3.4","ip":"5.6.7.8","traits":{"context":{"ip":"9.9.9.9"}}}}`,
	}
	files, _ := filepath.Glob("testdata/*.segment.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		checkMembers(t, []byte(in))
	}
	var nt notes
	if scan([]byte(many.String()), &nt); !nt.top.over {
		t.Errorf("%d members were noted in room for %d", nt.top.n, maxMembers)
	}
	if scan([]byte(manyCtx.String()), &nt); !nt.ctx.over {
		t.Errorf("%d context members were noted in room for %d", nt.ctx.n, maxMembers)
	}
	if scan([]byte(`{"type":"page","context":{"ip":"1.2.3.4","library":{}}}`), &nt); nt.ctx.n != 2 || nt.ctxAt < 0 {
		t.Errorf("the context's members were not noted: %d at %d", nt.ctx.n, nt.ctxAt)
	}
}

// checkMembers checks that b, if a valid object, decodes from the members
// scan notes as from a walk of b.
func checkMembers(t *testing.T, b []byte) {
	t.Helper()
	var nt notes
	ok, depth := scan(b, &nt)
	if ok2, depth2 := scan(b, nil); ok != ok2 || depth != depth2 {
		t.Fatalf("scan(%q) = %v, %d noting members, %v, %d not", b, ok, depth, ok2, depth2)
	}
	if !ok || kind(b) != '{' {
		return
	}
	if got, want := decodeMembers(b, &nt), decode(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: from noted members %+v, from a walk %+v", b, got, want)
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c"}]}`, `[1,2`, `"\u00e9"`, `-0.1e5`,
		`"01234567\"89abcdef"`, `"0123456789abcdef\u00e9xyz0123"`, "\"012345678\x01abcdefgh\"", `["abcdefgh\\","ijklmnop\\\""]`,
		"\"0123456\xc3\xa9789abcdef\x7f\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") >= MaxNesting {
			return
		}
		if got, _ := scan(b, nil); got != json.Valid(b) {
			t.Fatalf("scan(%q) = %v, encoding/json says %v", b, got, !got)
		}
		checkMembers(t, b)
	})
}

func TestTruthy(t *testing.T) {
	for v, want := range map[string]bool{
		``: false, `null`: false, `false`: false, `0`: false, `-0`: false, `0.0`: false, `0e5`: false, `-0.000E-3`: false, `""`: false,
		` "" `: false, `true`: true, `1`: true, `-1`: true, `0.5`: true, `1e-9`: true, `"0"`: true, `"false"`: true,
		`" "`: true, `{}`: true, `[]`: true, `{"userJwt":"x"}`: true,
	} {
		if got := truthy([]byte(v)); got != want {
			t.Errorf("truthy(%s) = %v, want %v", v, got, want)
		}
	}
}

// plainString agrees with the three checks it stands for, on any bytes.
func FuzzPlainString(f *testing.F) {
	for _, s := range []string{"", "abc", "abcdefghijklmnop", "tab\there", `back\slash`, "caf\u00e9 long enough text", "bad \xff\xfe utf8", "\u2028"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) && noControl(b)
		if got := plainString(b); got != want {
			t.Fatalf("plainString(%q) = %v, want %v", b, got, want)
		}
	})
}

// unquote decodes a JSON string as encoding/json does (invalid UTF-8 and
// lone surrogates become U+FFFD), whether it returns the body as it is or
// decodes it.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`plain ascii text`, `caf\u00e9 and café`, `tab\there`, "0123456\xc3\xa9789abcdef\xff",
		`\ud83d\ude00 \ud83d x`, `long enough to take eight bytes at once \\ then a backslash`, "日本語のテキスト", `café, then \n an escape`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw := append(append([]byte{'"'}, body...), '"')
		var want string
		if json.Unmarshal(raw, &want) != nil {
			return
		}
		if got := unquote(raw); got != want {
			t.Fatalf("unquote(%q) = %q, encoding/json says %q", raw, got, want)
		}
		if verbatim(body) && want != string(body) {
			t.Fatalf("%q is taken as it is, but decodes to %q", body, want)
		}
	})
}
