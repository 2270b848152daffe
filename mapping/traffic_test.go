package mapping_test

import (
	"encoding/json"
	"testing"

	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/mapping"
)

// TestTrafficExpectations maps a generated stream whose expected outcome
// per message comes from the generator's intent, not from this package.
func TestTrafficExpectations(t *testing.T) {
	const secret = "s3cr3t-for-tests"
	now := traffic.DefaultNow()
	g := traffic.New(traffic.Config{Seed: 3, Secret: secret, Now: now})
	m := mapping.New(mapping.Config{Secret: []byte(secret), Version: "test"}, mapping.NewDedupe(1_000_000), mapping.NewUsers(100_000))
	var res []mapping.Result
	bad := 0
	for i := range 20_000 {
		rec := g.Next()
		res = m.Map(res[:0], rec.Value, now)
		if len(res) != len(rec.Expects) {
			t.Fatalf("record %d: %d results, want %d: %s", i, len(res), len(rec.Expects), rec.Value)
		}
		for j, want := range rec.Expects {
			got := res[j]
			if ok := check(t, got, want); !ok {
				bad++
				if bad > 10 {
					t.Fatal("too many mismatches")
				}
				t.Logf("record %d item %d: %s", i, j, truncate(got.Raw))
			}
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 1500 {
		return string(b[:1500]) + "..."
	}
	return string(b)
}

func check(t *testing.T, got mapping.Result, want traffic.Expect) bool {
	t.Helper()
	action := map[traffic.Outcome]mapping.Action{
		traffic.Forward: mapping.Forward, traffic.Identified: mapping.Identified,
		traffic.Drop: mapping.Drop, traffic.DeadLetter: mapping.DeadLetter,
	}[want.Outcome]
	if got.Action != action || string(got.Reason) != want.Reason {
		t.Errorf("%s %s: got action %d reason %q (%s), want %s %q", want.Type, want.MessageID, got.Action, got.Reason, got.Detail, want.Outcome, want.Reason)
		return false
	}
	if want.Outcome != traffic.Forward {
		return true
	}
	body := got.Event.AppendJSON(nil)
	var ev struct {
		Type, Name string
		User       struct{ ID string }
		Properties map[string]any
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Errorf("%s: invalid JSON %v: %s", want.MessageID, err, body)
		return false
	}
	if ev.Type != want.CastleType || (want.CastleName != "" && ev.Name != want.CastleName) ||
		ev.User.ID != want.UserID || ev.Properties["trace_id"] != want.TraceID {
		t.Errorf("%s: got type %q name %q user %q trace %v, want %q %q %q %q", want.MessageID,
			ev.Type, ev.Name, ev.User.ID, ev.Properties["trace_id"], want.CastleType, want.CastleName, want.UserID, want.TraceID)
		return false
	}
	return true
}

func TestDedupeWindow(t *testing.T) {
	d := mapping.NewDedupe(3)
	m := mapping.New(mapping.Config{}, d, nil)
	msg := func(id string) []byte {
		return []byte(`{"type":"track","event":"E","channel":"client","messageId":"` + id + `","context":{"library":{"name":"analytics.js"}}}`)
	}
	now := traffic.DefaultNow()
	act := func(id string) mapping.Action { return m.Map(nil, msg(id), now)[0].Action }
	for _, id := range []string{"a", "b", "c"} {
		if act(id) != mapping.Forward {
			t.Fatalf("%s: first sight not forwarded", id)
		}
	}
	if act("a") != mapping.Drop {
		t.Fatal("a repeated within the window was forwarded")
	}
	if act("d") != mapping.Forward || act("a") != mapping.Forward {
		t.Fatal("after d evicted a (FIFO), a should forward again")
	}
	d.Forget("d")
	if act("d") != mapping.Forward {
		t.Fatal("a forgotten id is still a duplicate")
	}
	if d.Len() > 3 {
		t.Fatalf("window holds %d ids, bound 3", d.Len())
	}
}
