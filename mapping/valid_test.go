package mapping

import (
	"bytes"
	"encoding/json"
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
		if got, _ := scan([]byte(s)); got != want {
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
		ok, depth := scan([]byte(tc.in))
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
		if ok, _ := scan([]byte(s)); ok {
			t.Errorf("scan accepted %d bytes of unbalanced nesting", len(s))
		}
	}
	if !strings.Contains(tooDeep, strconv.Itoa(MaxNesting)) {
		t.Errorf("the dead-letter detail %q does not name MaxNesting", tooDeep)
	}
}

func TestScanAllocatesNothing(t *testing.T) {
	b := []byte(`{"type":"page","properties":{"a":[1,2,{"b":"c"}]},"context":{"ip":"81.2.69.142"}}`)
	if n := testing.AllocsPerRun(100, func() { scan(b) }); n != 0 {
		t.Errorf("scan allocates %v times per record", n)
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
		if got, _ := scan(b); got != json.Valid(b) {
			t.Fatalf("scan(%q) = %v, encoding/json says %v", b, got, !got)
		}
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
