package jsonw

import (
	"encoding/json"
	"testing"
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
