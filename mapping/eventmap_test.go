package mapping_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/mapping"
)

func TestParseEventMapExample(t *testing.T) {
	em := exampleEventMap(t)
	if em.Len() != 7 {
		t.Fatalf("the example maps %d names, want 7", em.Len())
	}
	for name, want := range map[string]mapping.SecurityEvent{
		"Signed In":                {Type: "$login", Status: "$succeeded"},
		"Login Failed":             {Type: "$login", Status: "$failed"},
		"Signed Up":                {Type: "$registration", Status: "$succeeded"},
		"Signed Out":               {Type: "$logout", Status: "$succeeded"},
		"Password Reset Requested": {Type: "$password_reset_request", Status: "$succeeded"},
		"Email Changed":            {Type: "$profile_update", Status: "$succeeded"},
		"Order Completed":          {Type: "$transaction", Status: "$succeeded"},
	} {
		if got, ok := em.Lookup(name); !ok || got != want {
			t.Errorf("%q maps to %+v (%v), want %+v", name, got, ok, want)
		}
	}
	if _, ok := em.Lookup("signed in"); ok {
		t.Error("names must match exactly")
	}
}

func TestParseEventMap(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"block style, quotes, alias", "events:\n  \"Signed: In\":\n    type: $login\n    status: $succeeded\n  'Again': &x {type: $challenge, status: $requested}\n  Copy: *x\n", ""},
		{"empty events", "events: {}\n", ""},
		{"events null", "events:\n", ""},
		{"comments only", "# nothing\n", "line 1: the file is empty: it needs an events: mapping"},
		{"empty", "", "line 1: the file is empty: it needs an events: mapping"},
		{"unknown type", "events:\n  Signed In: {type: $login, status: $succeeded}\n\n  Logged On: {type: $logon, status: $succeeded}\n", "line 4: type $logon is not a Castle event type"},
		{"unknown status", "events:\n  A: {type: $login,\n      status: $ok}\n", "line 3: status $ok is not a Castle event status"},
		{"pair nobody takes", "events:\n  A: {type: $login, status: $requested}\n", "line 2: no Castle endpoint accepts type $login with status $requested"},
		{"custom", "events:\n  A: {type: $custom, status: $succeeded}\n", "line 2: type $custom is not a security event type (a name not in EVENT_MAP is sent as $custom already)"},
		{"page", "events:\n  A: {type: $page, status: $succeeded}\n", "line 2: type $page is not a security event type (a name not in EVENT_MAP is sent as $custom already)"},
		{"duplicate", "events:\n  A: {type: $login, status: $failed}\n  B: {type: $login, status: $failed}\n  A: {type: $login, status: $succeeded}\n", `line 4: "A" is mapped twice (first on line 2)`},
		{"no status", "events:\n  A: {type: $login}\n", `line 2: "A" has no status`},
		{"no type", "events:\n  A:\n    status: $failed\n", `line 3: "A" has no type`},
		{"extra key", "events:\n  A: {type: $login, status: $failed, name: x}\n", `line 2: "A": unknown key "name" (an entry has type and status)`},
		{"entry not a mapping", "events:\n  A: $login\n", `line 2: "A": want {type: ..., status: ...}`},
		{"type not a string", "events:\n  A: {type: [$login], status: $failed}\n", `line 2: "A": type is not a string`},
		{"top-level key", "events: {}\nevnts: {}\n", `line 2: unknown key "evnts": the file has only events:`},
		{"events a list", "events:\n  - Signed In\n", "line 2: events is not a mapping of event names"},
		{"document a list", "- events\n", "line 1: the document is not a mapping: it needs an events: mapping"},
		{"not yaml", "events:\n  A: {type: $login, status: $failed\n  B: x\n", "line 2: not YAML: did not find expected ',' or '}'"},
		{"tab indent", "events:\n\tA: {type: $login, status: $failed}\n", "line 2: not YAML: found character that cannot start any token"},
		{"unclosed list", "events: [\n", "line 2: not YAML: did not find expected node content"},
		{"colon in plain name", "events:\n  A: b: c\n", "line 2: not YAML: mapping values are not allowed in this context"},
		{"bad first line", "events: {\n", "line 2: not YAML: did not find expected node content"},
		{"control character", "\x01", "line 1: not YAML: control characters are not allowed"},
		{"empty name", "events:\n  \"\": {type: $login, status: $failed}\n", "line 2: an event name must be a non-empty string"},
		{"events twice", "events:\n  A: {type: $login, status: $failed}\nevents:\n  B: {type: $login, status: $succeeded}\n", "line 3: events: appears twice (first on line 1)"},
		{"type twice", "events:\n  A: {type: $login, status: $succeeded, type: $logout}\n", `line 2: "A": type is given twice (first on line 2)`},
		{"status twice", "events:\n  A:\n    type: $login\n    status: $failed\n    status: $succeeded\n", `line 5: "A": status is given twice (first on line 4)`},
		{"second document", "events:\n  A: {type: $login, status: $failed}\n---\nevents:\n  B: {type: $login, status: $succeeded}\n", "line 4: a second YAML document (after ---)"},
		{"second document not YAML", "events: {}\n---\nevents: {\n", "line 4: not YAML: did not find expected node content"},
		{"document markers", "---\nevents:\n  A: {type: $login, status: $failed}\n...\n", ""},
		{"trailing marker", "events:\n  A: {type: $login, status: $failed}\n---\n", ""},
		{"trailing marker and comment", "events: {}\n---\n# nothing more\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			em, err := mapping.ParseEventMap([]byte(tc.yaml))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			var eme *mapping.EventMapError
			if err == nil || !errors.As(err, &eme) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v (%T), want %q", err, err, tc.want)
			}
			if em.Len() != 0 {
				t.Fatal("a map returned with an error")
			}
		})
	}
	em, err := mapping.ParseEventMap([]byte("events:\n  \"Signed: In\": {type: $login, status: $succeeded}\n  'Again': &x {type: $challenge, status: $requested}\n  Copy: *x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if se, ok := em.Lookup("Copy"); !ok || se != (mapping.SecurityEvent{Type: "$challenge", Status: "$requested"}) {
		t.Errorf("an alias entry maps to %+v", se)
	}
	if _, ok := em.Lookup("Signed: In"); !ok {
		t.Error("a quoted name with a colon is not mapped")
	}
}

// A name in EVENT_MAP wins over Castle's legacy name rule; a name not in it
// keeps the default mapping.
func TestEventMapWinsOverLegacyNames(t *testing.T) {
	em, err := mapping.ParseEventMap([]byte("events:\n  $password_reset.succeeded: {type: $profile_update, status: $succeeded}\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg := func(event string) []byte {
		return []byte(`{"type":"track","messageId":"` + event + `","userId":"u","event":"` + event + `","channel":"client","context":{"library":{"name":"analytics.js"}}}`)
	}
	m := goldenMapperFor(mapping.Config{Events: em})
	for event, want := range map[string]mapping.SecurityEvent{
		"$password_reset.succeeded": {Type: "$profile_update", Status: "$succeeded"}, // the map
		"$password_reset.failed":    {Type: "$profile_reset", Status: "$failed"},     // legacy
		"Signed In":                 {Type: "$custom"},                               // neither
	} {
		r := m.Map(nil, msg(event), goldenNow, nil)[0]
		if r.Action != mapping.Forward || r.Event.Type != want.Type || r.Event.Status != want.Status || r.Event.Name != event {
			t.Errorf("%s: %v %s %s %q, want %+v", event, r.Action, r.Event.Type, r.Event.Status, r.Event.Name, want)
		}
	}
}
