package mapping

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":1}`, ` {"a":[1,2,{"b":null}],"c":"x\"\u00e9"} `, `"s"`, `0`, `-1.5e+3`, `true`, `null`,
		`{"a":1,}`, `{"a"}`, `[1,]`, `{'a':1}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`,
		`{"a":1} x`, `[1 2]`, `{"a" 1}`, `{"a":1]`, `[}`, `tru`, `"\u12"`, `-`, ``, ` `, `{"a":{"b":[]}}`,
		strings.Repeat("[", 1024) + strings.Repeat("]", 1024),
	} {
		want := json.Valid([]byte(s))
		if got := valid([]byte(s)); got != want {
			t.Errorf("valid(%.40q) = %v, encoding/json says %v", s, got, want)
		}
	}
	deep := strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1)
	if valid([]byte(deep)) {
		t.Error("nesting past MaxNesting accepted")
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c"}]}`, `[1,2`, `"\u00e9"`, `-0.1e5`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") >= MaxNesting {
			return
		}
		if got, want := valid(b), json.Valid(b); got != want {
			t.Fatalf("valid(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// skipString must end every string literal where encoding/json does,
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
		if got, want := skipString(b, 1), 1+len(lit); got != want {
			t.Fatalf("skipString(%s) ends at %d, want %d", b, got, want)
		}
	})
}
