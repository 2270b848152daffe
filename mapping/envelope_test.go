package mapping_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/mapping"
)

// An envelope is judged item by item: an item nested 5,000 levels deep
// between two good ones is dead-lettered alone, with its own bytes, and
// its siblings are forwarded.
func TestEnvelopeDeepItemAlone(t *testing.T) {
	good1 := `{"type":"page","messageId":"e-1","userId":"u","name":"Home"}`
	deep := `{"type":"track","messageId":"e-2","userId":"u","event":"Deep","properties":` +
		strings.Repeat(`{"a":[`, 2500) + `1` + strings.Repeat(`]}`, 2500) + `}`
	good2 := `{"type":"track","messageId":"e-3","userId":"u","event":"After"}`
	rec := []byte(`{"batch":[` + good1 + `, ` + deep + ` ,` + good2 + `],"context":{"library":{"name":"analytics.js"}}}`)

	res := goldenMapper().Map(nil, rec, goldenNow, nil)
	if len(res) != 3 {
		t.Fatalf("%d results, want one per item", len(res))
	}
	for i, want := range []struct {
		action mapping.Action
		raw    string
	}{{mapping.Forward, good1}, {mapping.DeadLetter, deep}, {mapping.Forward, good2}} {
		r := res[i]
		if r.Action != want.action || !bytes.Equal(r.Raw, []byte(want.raw)) {
			t.Errorf("item %d: action %d (%s %s), raw %.60q; want action %d, raw %.60q", i, r.Action, r.Reason, r.Detail, r.Raw, want.action, want.raw)
		}
	}
	if r := res[1]; r.Reason != mapping.ReasonMalformed || r.MessageID != "e-2" {
		t.Errorf("deep item: reason %q, messageId %q; want malformed, e-2", r.Reason, r.MessageID)
	}

	// The same item alone is a malformed record; a record that is not JSON
	// at all cannot be split and is dead-lettered whole.
	if r := goldenMapper().Map(nil, []byte(deep), goldenNow, nil); len(r) != 1 || r[0].Reason != mapping.ReasonMalformed {
		t.Errorf("deep message alone: %+v", r)
	}
	broken := bytes.Replace(rec, []byte(good2), []byte(good2[:len(good2)-1]), 1)
	if r := goldenMapper().Map(nil, broken, goldenNow, nil); len(r) != 1 || r[0].Reason != mapping.ReasonMalformed || !bytes.Equal(r[0].Raw, broken) {
		t.Errorf("envelope that is not JSON: %d results", len(r))
	}
}
