package mapping_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/mapping"
)

// FuzzDecode: no input panics, every message gets a result, and whatever is
// forwarded encodes, for every endpoint, to a valid Castle JSON object with
// a type (and a status exactly when it is a security event), one level of
// properties, and only the fields that endpoint takes.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.segment.json")
	for _, in := range files {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	events := exampleEventMap(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := goldenMapperFor(mapping.Config{Events: events})
		res := m.Map(nil, raw, goldenNow, nil)
		if len(res) == 0 && kindOf(raw) != '{' {
			t.Fatalf("no result for %q", raw)
		}
		for _, r := range res {
			switch r.Action {
			case mapping.Forward:
				for _, ep := range []mapping.Endpoint{mapping.Log, mapping.Risk, mapping.Filter} {
					checkBody(t, &r.Event, ep)
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

func checkBody(t *testing.T, e *mapping.Event, ep mapping.Endpoint) {
	t.Helper()
	body := e.AppendBody(nil, ep, true)
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("%s: invalid Castle JSON %v: %s", ep, err, body)
	}
	typ, _ := ev["type"].(string)
	status, hasStatus := ev["status"].(string)
	switch {
	case typ == "$page" || typ == "$custom":
		if hasStatus {
			t.Fatalf("%s: %s with a status: %s", ep, typ, body)
		}
	case !strings.HasPrefix(typ, "$") || !hasStatus || status == "$requested" && ep != mapping.Risk:
		t.Fatalf("%s: type %q status %q in %s", ep, typ, status, body)
	}
	if props, ok := ev["properties"].(map[string]any); ok {
		for k, v := range props {
			switch v.(type) {
			case map[string]any, []any:
				t.Fatalf("%s: property %q is not one level: %s", ep, k, body)
			}
		}
	}
	if _, ok := ev["user"]; ok && ep == mapping.Filter {
		t.Fatalf("filter body with a user: %s", body)
	}
	if _, ok := ev["params"]; ok && ep != mapping.Filter {
		t.Fatalf("%s body with params: %s", ep, body)
	}
	if _, ok := ev["changeset"]; ok && ep != mapping.Risk {
		t.Fatalf("%s body with a changeset: %s", ep, body)
	}
	if c, ok := ev["context"].(map[string]any); ok {
		if _, ok := c["headers"].(map[string]any); !ok {
			t.Fatalf("%s: context without headers: %s", ep, body)
		}
	}
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
