package mapping_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/castle-destination/castle-destination/mapping"
)

// FuzzDecode: no input panics, every message gets a result, and whatever is
// forwarded encodes to a valid Castle JSON object with a type.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.segment.json")
	for _, in := range files {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := goldenMapper()
		res := m.Map(nil, raw, goldenNow)
		if len(res) == 0 && kindOf(raw) != '{' {
			t.Fatalf("no result for %q", raw)
		}
		for _, r := range res {
			switch r.Action {
			case mapping.Forward:
				body := r.Event.AppendJSON(nil)
				var ev map[string]any
				if err := json.Unmarshal(body, &ev); err != nil {
					t.Fatalf("invalid Castle JSON %v: %s", err, body)
				}
				if typ, _ := ev["type"].(string); typ != "$page" && typ != "$custom" {
					t.Fatalf("type %v in %s", ev["type"], body)
				}
				if props, ok := ev["properties"].(map[string]any); ok {
					for k, v := range props {
						switch v.(type) {
						case map[string]any, []any:
							t.Fatalf("property %q is not one level: %s", k, body)
						}
					}
				}
			case mapping.Drop, mapping.DeadLetter:
				if r.Reason == "" {
					t.Fatalf("drop without reason: %+v", r)
				}
			case mapping.Identified:
			default:
				t.Fatalf("unknown action %d", r.Action)
			}
		}
	})
}

func kindOf(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
