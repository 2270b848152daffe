package mapping_test

import (
	"encoding/json"
	"testing"

	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
)

// TestTrafficExpectations maps a generated stream whose expected outcome
// per message comes from the generator's intent, not from this package. It
// keeps identities and drops repeated messageIds as the pipeline does
// (pipeline.Dedupe is its last filter).
func TestTrafficExpectations(t *testing.T) {
	const secret = "s3cr3t-for-tests"
	now := traffic.DefaultNow()
	g := traffic.New(traffic.Config{Seed: 3, Secret: secret, Now: now})
	m := mapping.New(mapping.Config{Secret: []byte(secret), Version: "test"})
	users, seen := mapping.NewUsers(100_000), pipeline.NewDedupe(1_000_000)
	var res []mapping.Result
	bad := 0
	for i := range 20_000 {
		rec := g.Next()
		res = m.Map(res[:0], rec.Value, now, users)
		for k := range res {
			r := &res[k]
			switch {
			case r.Action == mapping.Identified:
				users.Put(r.Identity)
			case r.Action == mapping.Forward && r.MessageID != "" && !seen.Add(r.MessageID):
				r.Action, r.Reason = mapping.Drop, mapping.ReasonDuplicate
			}
		}
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
