package verdict_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/verdict"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json (except spec-*.json, which is the contract's own example)")

func f64(f float64) *float64 { return &f }

// specExample is the record of the contract's example, field by field.
func specExample() verdict.Verdict {
	return verdict.Verdict{
		MessageID: "ajs-next-4f1c9a", UserID: "u-1001", AnonymousID: "anon-77c2",
		Event:     verdict.Event{Type: "$login", Status: "$succeeded", Name: "Signed In"},
		CreatedAt: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC),
		ScoredAt:  time.Date(2026, 11, 30, 11, 0, 1, 0, time.FixedZone("CET", 3600)),
		Endpoint:  verdict.EndpointRisk, CastleEventID: "ASZoelALT5-PaVw2pAVMXg",
		Policy: &verdict.Policy{Action: "deny", Name: "Deny risk >= 0.80",
			ID: "2ee938c8-24c2-4c26-9d25-19511dd75029", RevisionID: "900b183a-9f6d-4579-8c47-9ddcccf637b4"},
		Risk:    f64(0.93),
		Scores:  map[string]float64{"bot": 0.34, "account_abuse": 0.67, "account_takeover": 0.77},
		Signals: []string{"bot_behavior", "proxy_ip"},
		Device:  verdict.Device{Fingerprint: "ohvjn8adSnetYTzZ8B7bOP"},
		Source:  &verdict.Source{Topic: "segment-events", Partition: 3, Offset: 1234},
	}
}

// TestGolden: records byte for byte. spec-example.json is the example of
// the verdict format in the contract, spacing aside.
func TestGolden(t *testing.T) {
	anon := verdict.Verdict{
		MessageID: "m-2", AnonymousID: "anon-9",
		Event:     verdict.Event{Type: "$login", Status: "$failed"},
		CreatedAt: time.Date(2026, 11, 30, 10, 0, 0, 250_000_000, time.UTC),
		ScoredAt:  time.Date(2026, 11, 30, 10, 0, 0, 731_000_000, time.UTC),
		Endpoint:  verdict.EndpointFilter, CastleEventID: "ev-2",
		Risk:   f64(0), // present, and zero
		Scores: map[string]float64{"account_takeover": 0, "bot": 1e-7, "zz_new_kind": 0.5, "account_abuse": 0.05},
		Source: &verdict.Source{Topic: "t", Partition: 0, Offset: 0},
	}
	for name, v := range map[string]verdict.Verdict{
		"spec-example":        specExample(),
		"filter-no-policy":    anon,
		"only-what-is-known":  {Endpoint: verdict.EndpointRisk, UserID: "u"},
		"escapes-and-unicode": {UserID: "ü\"\\\n\t\x01<&>\u2028", Signals: []string{"new_device", "\xff"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := v.AppendJSON(nil)
			path := filepath.Join("testdata", name+".json")
			if *update && !strings.HasPrefix(name, "spec-") {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, want); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("record:\n got %s\nwant %s", got, compact.Bytes())
			}
			if !json.Valid(got) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestRiskZeroIsPresent(t *testing.T) {
	v := verdict.Verdict{Risk: f64(0)}
	if got := string(v.AppendJSON(nil)); got != `{"risk":0}` {
		t.Errorf("risk 0: %s", got)
	}
	v.Risk = nil
	if got := string(v.AppendJSON(nil)); got != `{}` {
		t.Errorf("no risk: %s", got)
	}
	v = verdict.Verdict{Risk: f64(math.NaN()), Scores: map[string]float64{"bot": math.Inf(1)}}
	if got := string(v.AppendJSON(nil)); got != `{}` {
		t.Errorf("non-finite numbers: %s", got)
	}
	v = verdict.Verdict{Policy: &verdict.Policy{}, Device: verdict.Device{}, Event: verdict.Event{}}
	if got := string(v.AppendJSON(nil)); got != `{}` {
		t.Errorf("empty policy, device, event: %s", got)
	}
}

// TestRoundTrip: encoding/json reads a record back into the same Verdict,
// and writes what AppendJSON writes (it escapes <, > and & unless told
// not to).
func TestRoundTrip(t *testing.T) {
	v := specExample()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.Equal(b, v.AppendJSON(nil)) {
		t.Errorf("encoding/json differs from AppendJSON:\n%s\n%s", b, v.AppendJSON(nil))
	}
	var back verdict.Verdict
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.ScoredAt.Equal(v.ScoredAt) {
		t.Errorf("scored_at %v, want %v", back.ScoredAt, v.ScoredAt)
	}
	back.ScoredAt, v.ScoredAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(back, v) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, v)
	}
	if dst := v.AppendJSON([]byte("prefix:")); !bytes.HasPrefix(dst, []byte("prefix:{")) {
		t.Errorf("AppendJSON does not append: %s", dst)
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		user, anon, want string
	}{{"u1", "a1", "u1"}, {"", "a1", "a1"}, {"u1", "", "u1"}, {"", "", ""}} {
		v := verdict.Verdict{UserID: tc.user, AnonymousID: tc.anon}
		if got := string(v.Key()); got != tc.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tc.user, tc.anon, got, tc.want)
		}
	}
	if (&verdict.Verdict{}).Key() != nil {
		t.Error("Key with no ids is not nil")
	}
}

// plain is Verdict without its MarshalJSON: encoding/json's own encoding
// of the same fields, the reference for FuzzAppendJSON.
type plain verdict.Verdict

// FuzzAppendJSON: AppendJSON writes valid JSON that reads as the same
// value as encoding/json's encoding of the same Verdict (strings with
// invalid UTF-8 included; a non-finite number is left out).
func FuzzAppendJSON(f *testing.F) {
	f.Add("u1", "$login", "new_device", 0.5, int64(3), "t")
	f.Add("\x00\"\\\u2028<>&", "\xff\xfe", "", math.Copysign(0, -1), int64(-1), "\u00e9")
	f.Add("", "", "a", 1e-9, int64(math.MaxInt64), "")
	f.Add("a", "b", "c", 1e21, int64(0), "\x7f")
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, x float64, off int64, topic string) {
		v := verdict.Verdict{
			MessageID: s1, UserID: s2, AnonymousID: s3, Event: verdict.Event{Name: s3, Type: s1},
			Endpoint: s2, CastleEventID: s3,
			Policy: &verdict.Policy{Action: s2, Name: s3, ID: s1}, Risk: &x,
			Scores: map[string]float64{s1: x, s3: x / 3}, Signals: []string{s1, s2, s3},
			Device: verdict.Device{Fingerprint: s3}, Source: &verdict.Source{Topic: topic, Offset: off},
		}
		got := v.AppendJSON(nil)
		if !json.Valid(got) {
			t.Fatalf("invalid JSON: %q", got)
		}
		if !finite(x) {
			return
		}
		ref := plain(v)
		if *ref.Policy == (verdict.Policy{}) {
			ref.Policy = nil // AppendJSON leaves an empty policy out
		}
		want, err := json.Marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("AppendJSON reads as\n%v\nencoding/json as\n%v", g, w)
		}
	})
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
