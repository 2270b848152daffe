package traffic_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/internal/traffic"
)

const secret = "sk_test_3f9a1c2b7d4e"

var now = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

// short keeps failure messages readable.
func short(b []byte) string {
	if len(b) > 800 {
		return string(b[:800]) + "…"
	}
	return string(b)
}

func cfg(seed int64) traffic.Config {
	return traffic.Config{Seed: seed, Secret: secret, Now: now}
}

func TestSameSeedSameBytes(t *testing.T) {
	a := traffic.Generate(cfg(7), 3000)
	b := traffic.Generate(cfg(7), 3000)
	if !reflect.DeepEqual(a, b) {
		for i := range a {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Fatalf("record %d differs:\n%s\n%s", i, a[i].Value, b[i].Value)
			}
		}
		t.Fatal("streams differ")
	}
	// Streaming and batch generation are the same stream.
	g := traffic.New(cfg(7))
	for i := range a {
		if r := g.Next(); !reflect.DeepEqual(r, a[i]) {
			t.Fatalf("record %d from Next differs from Generate", i)
		}
	}
}

func TestDifferentSeedDifferentBytes(t *testing.T) {
	a := traffic.Generate(cfg(1), 200)
	b := traffic.Generate(cfg(2), 200)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Value, b[i].Value) {
			same++
		}
	}
	// Only fixed-text malformed values could coincide.
	if same > 10 {
		t.Fatalf("%d of 200 records are equal across seeds", same)
	}
}

// TestOracleAgrees checks every Expect against an independent reading of
// the bytes (oracle_test.go), on streams rich in envelopes.
func TestOracleAgrees(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{1, 2} {
		c := cfg(seed)
		c.EnvelopeFraction = 0.1
		o := newOracle(secret, now)
		g := traffic.New(c)
		for i := range 6000 {
			r := g.Next()
			got, err := o.record(r.Value)
			if err != nil {
				t.Fatalf("seed %d record %d: %v\n%s", seed, i, err, short(r.Value))
			}
			if !reflect.DeepEqual(got, r.Expects) {
				t.Fatalf("seed %d record %d:\n generator %+v\n oracle    %+v\n%s", seed, i, r.Expects, got, short(r.Value))
			}
		}
		// The stream must exercise the rules that make the comparison worth it.
		for _, note := range []string{"envelope", "server_side_by_batch_library", "disabled_by_batch", "claim_id_differs_from_userId"} {
			if o.notes[note] == 0 {
				t.Errorf("seed %d: no %s case in 6,000 records", seed, note)
			}
		}
		for _, f := range []string{"expired", "not_yet_valid", "alg_none", "wrong_alg", "bad_signature"} {
			if o.jwtFailures[f] == 0 {
				t.Errorf("seed %d: no %s token in 6,000 records (failures %v)", seed, f, o.jwtFailures)
			}
		}
		for f := range o.jwtFailures {
			if len(f) > 6 && f[:6] == "other:" {
				t.Errorf("seed %d: unexpected token failure %s", seed, f)
			}
		}
	}
}

// TestTokensHoldAcrossTheClockWindow checks the documented window: valid
// tokens verify, invalid ones fail, for a verifier clock anywhere in
// [Now-5min, Now+50min] with up to 5 min of leeway.
func TestTokensHoldAcrossTheClockWindow(t *testing.T) {
	t.Parallel()
	// Only records with tokens: a copy always travels with its original.
	var recs []traffic.Record
	var decoded []any // each record's value, decoded once for the six readings below
	for _, r := range traffic.Generate(cfg(11), 10000) {
		if bytes.Contains(r.Value, []byte("userJwt")) {
			var v any
			if json.Unmarshal(r.Value, &v) != nil {
				v = nil // not JSON: the oracle reads it as malformed, as record does
			}
			recs = append(recs, r)
			decoded = append(decoded, v)
		}
	}
	for _, v := range []struct{ at, leeway time.Duration }{
		{-5 * time.Minute, 5 * time.Minute}, {0, 0}, {0, 5 * time.Minute},
		{50 * time.Minute, 5 * time.Minute}, {59 * time.Minute, 0},
	} {
		o := newOracle(secret, now.Add(v.at))
		o.leeway = v.leeway
		for i, r := range recs {
			got, err := o.decoded(decoded[i])
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r.Expects) {
				t.Fatalf("clock Now%+v leeway %v, record %d: generator %+v, oracle %+v", v.at, v.leeway, i, r.Expects, got)
			}
		}
	}
	// A verifier with another secret must reject every Secure Mode message.
	o := newOracle("another-secret", now)
	n := 0
	for i, r := range recs {
		got, _ := o.decoded(decoded[i])
		for j, e := range got {
			if e.Outcome == traffic.Forward && r.Expects[j].UserID != e.UserID {
				t.Fatalf("a forward under the wrong secret kept its claim id")
			}
			if e.Reason == traffic.ReasonUserJWTInvalid {
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no token failed under the wrong secret")
	}
}

func TestValuesAreJSONAndRoundTrip(t *testing.T) {
	t.Parallel()
	c := cfg(5)
	c.EnvelopeFraction = 0.05
	for i, r := range traffic.Generate(c, 6000) {
		broken := len(r.Expects) == 1 && r.Expects[0].Reason == traffic.ReasonMalformed
		var v any
		err := json.Unmarshal(r.Value, &v)
		if broken {
			obj, isObj := v.(map[string]any)
			if err == nil && isObj && obj["type"] != nil {
				t.Fatalf("record %d is expected malformed but reads as a message: %s", i, r.Value)
			}
			if r.Key != nil {
				t.Fatalf("record %d is broken but has key %q", i, r.Key)
			}
			continue
		}
		if err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, r.Value)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w any
		if err := json.Unmarshal(again, &w); err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("record %d does not round-trip: %v", i, err)
		}
		if len(r.Key) == 0 {
			t.Fatalf("record %d has no key", i)
		}
	}
}

func TestPageEventIsAboutOneKilobyte(t *testing.T) {
	var n, total, smallest, largest int
	smallest = math.MaxInt
	for _, r := range traffic.Generate(cfg(3), 5000) {
		if len(r.Expects) == 1 && r.Expects[0].Type == "page" && r.Expects[0].Outcome == traffic.Forward {
			n++
			total += len(r.Value)
			smallest = min(smallest, len(r.Value))
			largest = max(largest, len(r.Value))
		}
	}
	mean := total / n
	t.Logf("%d forwardable page records: mean %d B, min %d, max %d", n, mean, smallest, largest)
	if mean < 900 || mean > 1600 || smallest < 600 || largest > 4096 {
		t.Fatalf("page events: mean %d B, min %d, max %d; want about 1 KB", mean, smallest, largest)
	}
}

// kindOf names the Mix kind a single record's Expect shows.
func kindOf(e traffic.Expect) string {
	switch e.Outcome {
	case traffic.Forward:
		return e.Type
	case traffic.Identified:
		return "identify"
	}
	return e.Reason
}

func TestMixSharesFollowTheWeights(t *testing.T) {
	t.Parallel()
	mixes := map[string]traffic.Mix{
		"default": traffic.DefaultMix(),
		"skewed": {Page: 1, Track: 0, Identify: 1, Duplicate: 2, Unsupported: 1, ServerSide: 1, Mobile: 1,
			IntegrationDisabled: 1, UserJWTInvalid: 2, Malformed: 1, Anonymous: 0.5, SecureUsers: 0.5},
	}
	for name, mix := range mixes {
		n := 100000 // the brief's figure, for the default mix
		if name != "default" {
			n = 20000
		}
		t.Run(name, func(t *testing.T) {
			c := cfg(9)
			c.Mix = mix
			c.EnvelopeFraction = -1
			counts := map[string]int{}
			g := traffic.New(c)
			for range n {
				r := g.Next()
				if len(r.Expects) != 1 {
					t.Fatalf("an envelope with EnvelopeFraction < 0")
				}
				counts[kindOf(r.Expects[0])]++
			}
			w := map[string]float64{
				"page": mix.Page, "track": mix.Track, "identify": mix.Identify, "duplicate": mix.Duplicate,
				"unsupported_type": mix.Unsupported, "server_side": mix.ServerSide, "mobile": mix.Mobile,
				"integration_disabled": mix.IntegrationDisabled, "user_jwt_invalid": mix.UserJWTInvalid, "malformed": mix.Malformed,
			}
			sum := 0.0
			for _, x := range w {
				sum += x
			}
			for k, x := range w {
				want := x / sum
				got := float64(counts[k]) / float64(n)
				tol := 5*math.Sqrt(want*(1-want)/float64(n)) + 0.001
				if math.Abs(got-want) > tol {
					t.Errorf("%s: share %.4f, want %.4f ± %.4f", k, got, want, tol)
				}
			}
			for k := range counts {
				if _, ok := w[k]; !ok {
					t.Errorf("unexpected kind %q", k)
				}
			}
		})
	}
}

var reasons = map[traffic.Outcome][]string{
	traffic.Drop: {traffic.ReasonUnsupportedType, traffic.ReasonServerSide, traffic.ReasonMobile,
		traffic.ReasonIntegrationDisabled, traffic.ReasonDuplicate},
	traffic.DeadLetter: {traffic.ReasonMalformed, traffic.ReasonUserJWTInvalid},
}

func TestEveryExpectHasTheFieldsItsOutcomeNeeds(t *testing.T) {
	t.Parallel()
	c := cfg(4)
	c.EnvelopeFraction = 0.1
	seen := map[string]bool{}
	for i, r := range traffic.Generate(c, 20000) {
		for _, e := range r.Expects {
			fail := func(why string) { t.Fatalf("record %d: %s: %+v", i, why, e) }
			switch e.Outcome {
			case traffic.Forward:
				switch {
				case e.MessageID == "" || e.Reason != "":
					fail("forward needs a MessageID and no Reason")
				case e.TraceID != e.MessageID:
					fail("TraceID must equal MessageID")
				case e.Type == "page" && (e.CastleType != "$page" || e.CastleName != ""):
					fail(`a page forwards as "$page" with no name`)
				case e.Type == "track" && (e.CastleType != "$custom" || e.CastleName == "" || len(e.CastleName) > 1024):
					fail(`a track forwards as "$custom" with its event name`)
				case e.Type != "page" && e.Type != "track":
					fail("only page and track forward")
				}
			case traffic.Identified:
				if e.Type != "identify" || e.MessageID == "" || e.Reason != "" || e.CastleType != "" || e.UserID != "" || e.TraceID != "" {
					fail("identified is an identify with no Castle fields")
				}
			case traffic.Drop, traffic.DeadLetter:
				if !slices.Contains(reasons[e.Outcome], e.Reason) {
					fail("reason not allowed for outcome")
				}
				if e.CastleType != "" || e.CastleName != "" || e.UserID != "" || e.TraceID != "" {
					fail("a drop carries no Castle fields")
				}
				if e.Reason != traffic.ReasonMalformed && (e.Type == "" || e.MessageID == "") {
					fail("a readable message keeps its type and messageId")
				}
				if e.Reason == traffic.ReasonMalformed && e.Type != "" {
					fail("a malformed message has no type")
				}
			default:
				fail("unknown outcome")
			}
			seen[string(e.Outcome)+"/"+e.Reason] = true
		}
	}
	for out, rs := range reasons {
		for _, r := range rs {
			if !seen[string(out)+"/"+r] {
				t.Errorf("no %s/%s in 20,000 records", out, r)
			}
		}
	}
}

func TestDuplicatesCopyAnEarlierForward(t *testing.T) {
	t.Parallel()
	dupHeavy := cfg(6)
	// Early in a copy-heavy stream the ring is small, so a copy made too
	// soon after its original would show.
	dupHeavy.Mix = traffic.Mix{Page: 1, Track: 1, Duplicate: 2, Malformed: 0.2, Anonymous: 0.3, SecureUsers: 0.3}
	for name, recs := range map[string][]traffic.Record{
		"default":    traffic.Generate(cfg(6), 30000),
		"copy-heavy": traffic.Generate(dupHeavy, 3000),
	} {
		checkDuplicates(t, name, recs)
	}
}

func checkDuplicates(t *testing.T, name string, recs []traffic.Record) {
	firstAt := map[string]int{} // messageId -> index of its forwarded original
	dups := 0
	for i, r := range recs {
		for _, e := range r.Expects {
			if e.Reason != traffic.ReasonDuplicate {
				if e.MessageID == "" {
					continue
				}
				if _, ok := firstAt[e.MessageID]; ok {
					t.Fatalf("%s: record %d: messageId %s reused by a non-duplicate", name, i, e.MessageID)
				}
				if e.Outcome == traffic.Forward {
					firstAt[e.MessageID] = i
				} else {
					firstAt[e.MessageID] = -1
				}
				continue
			}
			dups++
			j, ok := firstAt[e.MessageID]
			if !ok || j < 0 {
				t.Fatalf("%s: record %d duplicates %s, which was not forwarded before", name, i, e.MessageID)
			}
			if i-j < 2 {
				t.Fatalf("%s: record %d duplicates record %d with no record between", name, i, j)
			}
			if !bytes.Equal(recs[j].Key, r.Key) || !bytes.Equal(recs[j].Value, r.Value) || len(recs[j].Expects) != 1 {
				t.Fatalf("%s: record %d is not an exact copy of single record %d", name, i, j)
			}
			if e.Type != recs[j].Expects[0].Type {
				t.Fatalf("%s: record %d: duplicate type %q, original %q", name, i, e.Type, recs[j].Expects[0].Type)
			}
		}
	}
	if want := len(recs) / 100; dups < want {
		t.Fatalf("%s: %d duplicates in %d records, want at least %d", name, dups, len(recs), want)
	}
}

func TestKeysAndTimes(t *testing.T) {
	t.Parallel()
	c := cfg(8)
	c.EnvelopeFraction = -1
	var prev time.Time
	wraps := 0
	for i, r := range traffic.Generate(c, 8000) {
		if r.Time.Before(now.Add(-3*time.Hour)) || r.Time.After(now) {
			t.Fatalf("record %d received at %v, outside the 3 h before Now", i, r.Time)
		}
		if r.Time.Before(prev) {
			wraps++
		}
		prev = r.Time
		if r.Expects[0].Reason == traffic.ReasonMalformed {
			continue
		}
		var m struct {
			UserID      string    `json:"userId"`
			AnonymousID string    `json:"anonymousId"`
			ReceivedAt  time.Time `json:"receivedAt"`
			Timestamp   time.Time `json:"timestamp"`
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		want := m.UserID
		if want == "" {
			want = m.AnonymousID
		}
		if string(r.Key) != want {
			t.Fatalf("record %d: key %q, want userId else anonymousId %q", i, r.Key, want)
		}
		if r.Expects[0].Reason == traffic.ReasonDuplicate {
			continue // a copy keeps its original's receivedAt
		}
		if !m.ReceivedAt.Equal(r.Time) {
			t.Fatalf("record %d: receivedAt %v, record time %v", i, m.ReceivedAt, r.Time)
		}
		if m.Timestamp.After(m.ReceivedAt) || m.Timestamp.Before(m.ReceivedAt.Add(-2*time.Hour-time.Minute)) {
			t.Fatalf("record %d: timestamp %v not in the 2 h before receivedAt %v", i, m.Timestamp, m.ReceivedAt)
		}
	}
	if wraps > 0 {
		t.Fatalf("the received clock went backwards %d times in 8,000 records", wraps)
	}
}

func TestEnvelopes(t *testing.T) {
	t.Parallel()
	c := cfg(12)
	c.EnvelopeFraction = 1
	withBad, mixedOutcomes := 0, 0
	for i, r := range traffic.Generate(c, 800) {
		var env struct {
			Batch []json.RawMessage `json:"batch"`
		}
		if err := json.Unmarshal(r.Value, &env); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if len(env.Batch) < 2 || len(env.Batch) > 20 || len(env.Batch) != len(r.Expects) {
			t.Fatalf("record %d: %d items, %d expects", i, len(env.Batch), len(r.Expects))
		}
		outcomes := map[traffic.Outcome]bool{}
		for _, e := range r.Expects {
			outcomes[e.Outcome] = true
			if e.Reason == traffic.ReasonMalformed {
				withBad++
			}
		}
		if len(outcomes) > 1 {
			mixedOutcomes++
		}
	}
	if withBad < 40 || mixedOutcomes < 200 {
		t.Fatalf("of 800 envelopes %d hold a bad item and %d mix outcomes", withBad, mixedOutcomes)
	}
}

func TestHeavyUsers(t *testing.T) {
	t.Parallel()
	c := cfg(13)
	c.EnvelopeFraction = -1
	perUser := map[string]int{}
	total := 0
	for _, r := range traffic.Generate(c, 30000) {
		if bytes.HasPrefix(r.Key, []byte("usr_")) {
			perUser[string(r.Key)]++
			total++
		}
	}
	counts := make([]int, 0, len(perUser))
	for _, n := range perUser {
		counts = append(counts, n)
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	top5 := counts[0] + counts[1] + counts[2] + counts[3] + counts[4]
	share := float64(top5) / float64(total)
	t.Logf("%d users; top 5 send %.1f%% of registered users' records; median user %d", len(counts), 100*share, counts[len(counts)/2])
	if share < 0.04 || share > 0.08 {
		t.Fatalf("the 5 heavy users send %.3f of registered users' records, want about 0.05", share)
	}
}

func TestTally(t *testing.T) {
	recs := []traffic.Record{
		{Expects: []traffic.Expect{{Type: "page", Outcome: traffic.Forward}, {Type: "track", Outcome: traffic.Forward}}},
		{Expects: []traffic.Expect{{Type: "page", Outcome: traffic.Forward}}},
		{Expects: []traffic.Expect{{Type: "identify", Outcome: traffic.Identified}}},
		{Expects: []traffic.Expect{{Type: "screen", Outcome: traffic.Drop, Reason: traffic.ReasonUnsupportedType},
			{Outcome: traffic.DeadLetter, Reason: traffic.ReasonMalformed}}},
		{Expects: []traffic.Expect{{Type: "page", Outcome: traffic.Drop, Reason: traffic.ReasonDuplicate}}},
	}
	var tally traffic.Tally
	for _, r := range recs {
		tally.Add(r)
	}
	want := traffic.Tally{
		Forward:    map[string]int{"page": 2, "track": 1},
		Identified: 1,
		Drop:       map[string]int{traffic.ReasonUnsupportedType: 1, traffic.ReasonDuplicate: 1},
		DeadLetter: map[string]int{traffic.ReasonMalformed: 1},
	}
	if !reflect.DeepEqual(tally, want) || tally.Total() != 7 {
		t.Fatalf("tally %+v (total %d), want %+v (total 7)", tally, tally.Total(), want)
	}
	// Over a generated stream the tally accounts for every message.
	var big traffic.Tally
	n := 0
	for _, r := range traffic.Generate(cfg(14), 3000) {
		big.Add(r)
		n += len(r.Expects)
	}
	if big.Total() != n || big.Forward["page"] == 0 || big.Identified == 0 {
		t.Fatalf("tally %+v counts %d messages, want %d", big, big.Total(), n)
	}
}

// TestStreamingIsBounded checks that a long stream keeps no per-record
// state: the heap after 80,000 records is about what it is after 20,000
// (the user population is built by then). Keeping the 60,000 records
// between would take ~85 MB.
func TestStreamingIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 80,000 records")
	}
	g := traffic.New(cfg(15))
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for range 20000 {
		g.Next()
	}
	before := heap()
	for range 60000 {
		g.Next()
	}
	after := heap()
	runtime.KeepAlive(g)
	t.Logf("heap after 20k records %d KB, after 80k %d KB", before>>10, after>>10)
	if after > before+16<<20 {
		t.Fatalf("heap grew from %d to %d bytes over 60,000 records", before, after)
	}
}

func FuzzStreamAgreesWithOracle(f *testing.F) {
	f.Add(int64(0), uint8(0), uint8(10))
	f.Add(int64(-1), uint8(200), uint8(0))
	f.Add(int64(1<<40), uint8(255), uint8(255))
	f.Fuzz(func(t *testing.T, seed int64, envelope, secure uint8) {
		c := cfg(seed)
		c.EnvelopeFraction = float64(envelope)/255 - 0.01 // sometimes none
		c.Mix = traffic.DefaultMix()
		c.Mix.SecureUsers = float64(secure) / 255
		c.Users = 50
		o := newOracle(secret, now)
		g := traffic.New(c)
		for i := range 200 {
			r := g.Next()
			got, err := o.record(r.Value)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if !reflect.DeepEqual(got, r.Expects) {
				t.Fatalf("record %d:\n generator %+v\n oracle    %+v\n%s", i, r.Expects, got, short(r.Value))
			}
		}
	})
}

func BenchmarkNext(b *testing.B) {
	g := traffic.New(cfg(1))
	var bytes int64
	b.ReportAllocs()
	for b.Loop() {
		r := g.Next()
		bytes += int64(len(r.Value))
	}
	b.SetBytes(bytes / int64(b.N))
}

// TestInterleavedSeedsStayValid backs a use the package doc offers: streams
// of different seeds share no users or messageIds, so interleaving them (to
// generate on several cores) keeps every Expect true.
func TestInterleavedSeedsStayValid(t *testing.T) {
	t.Parallel()
	a, b := traffic.New(cfg(31)), traffic.New(cfg(32))
	o := newOracle(secret, now)
	keys := [2]map[string]bool{{}, {}}
	for i := range 6000 {
		src := i % 2
		g := a
		if src == 1 {
			g = b
		}
		r := g.Next()
		got, err := o.record(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r.Expects) {
			t.Fatalf("record %d:\n generator %+v\n oracle    %+v", i, r.Expects, got)
		}
		if r.Key != nil {
			keys[src][string(r.Key)] = true
		}
	}
	for k := range keys[0] {
		if keys[1][k] {
			t.Fatalf("key %s appears in both streams", k)
		}
	}
}
