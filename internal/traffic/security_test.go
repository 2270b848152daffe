package traffic_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/mapping"
)

// legacyNames are Castle's legacy security event names and what they become
// (docs/mapping.md, "Castle's legacy names"), read independently of the
// generator.
var legacyNames = map[string][2]string{
	"$login.succeeded":                  {"$login", "$succeeded"},
	"$login.failed":                     {"$login", "$failed"},
	"$registration.succeeded":           {"$registration", "$succeeded"},
	"$registration.failed":              {"$registration", "$failed"},
	"$password_reset_request.succeeded": {"$password_reset_request", "$succeeded"},
	"$password_reset_request.failed":    {"$password_reset_request", "$failed"},
}

func securityCfg(seed int64, share float64) traffic.Config {
	c := cfg(seed)
	c.Mix = traffic.SecurityMix(share)
	return c
}

// castleKey returns the value under key (matched case-insensitively) of the
// Castle object m holds under "Castle" (any spelling).
func castleKey(m map[string]any, key string) any {
	for k, v := range m {
		if !strings.EqualFold(k, "castle") {
			continue
		}
		obj, _ := v.(map[string]any)
		for kk, vv := range obj {
			if strings.EqualFold(kk, key) {
				return vv
			}
		}
	}
	return nil
}

// securityOracle completes the oracle's Expects for security events: a
// forwarded track with a legacy name gets its Castle type and status, and,
// when it carries a request token, an event time within 120 s of now and a
// public IP, the endpoint a scoring worker sends it to.
func securityOracle(value []byte, es []traffic.Expect, now time.Time) ([]traffic.Expect, error) {
	if len(es) != 1 || es[0].Outcome != traffic.Forward || es[0].Type != "track" {
		return es, nil
	}
	var m map[string]any
	if err := json.Unmarshal(value, &m); err != nil {
		return nil, err
	}
	event, _ := m["event"].(string)
	ts, ok := legacyNames[event]
	if !ok {
		if strings.HasPrefix(event, "$") {
			return nil, fmt.Errorf("a track named %q, which is no legacy name the generator should use", event)
		}
		return es, nil
	}
	e := es[0]
	e.CastleType, e.CastleStatus = ts[0], ts[1]
	ctx, _ := m["context"].(map[string]any)
	integ, _ := m["integrations"].(map[string]any)
	tok := castleKey(integ, "requestToken")
	if tok == nil {
		tok = castleKey(ctx, "requestToken")
	}
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["timestamp"]))
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(fmt.Sprint(ctx["ip"]))
	if s, ok := tok.(string); ok && s != "" && at.Sub(now).Abs() <= 120*time.Second &&
		ip != nil && ip.IsGlobalUnicast() && !ip.IsPrivate() {
		e.Scoring = traffic.ScoringFilter
		if e.UserID != "" && e.CastleType != "$password_reset_request" {
			e.Scoring = traffic.ScoringRisk
		}
	}
	return []traffic.Expect{e}, nil
}

// TestSecurityEventsAgreeWithOracle reads a stream rich in security events
// with the oracle (which knows the filtering rules) plus the security
// reading above, and compares with the generator's Expects.
func TestSecurityEventsAgreeWithOracle(t *testing.T) {
	t.Parallel()
	c := securityCfg(21, 0.2)
	c.EnvelopeFraction = 0.05
	o := newOracle(secret, now)
	g := traffic.New(c)
	var tally traffic.Tally
	for i := range 6000 {
		r := g.Next()
		tally.Add(r)
		got, err := o.record(r.Value)
		if err == nil {
			got, err = securityOracle(r.Value, got, now)
		}
		if err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, short(r.Value))
		}
		if !reflect.DeepEqual(got, r.Expects) {
			t.Fatalf("record %d:\n generator %+v\n oracle    %+v\n%s", i, r.Expects, got, short(r.Value))
		}
	}
	if tally.Scored[traffic.ScoringRisk] < 500 || tally.Scored[traffic.ScoringFilter] < 200 {
		t.Errorf("scored %v in 6,000 records with a 20%% share of security events", tally.Scored)
	}
	if o.notes["claim_id_differs_from_userId"] == 0 {
		t.Error("the stream lost its Secure Mode messages without userId")
	}
}

// TestSecurityEventsAgreeWithTheMapping maps security events with the real
// mapping at the generator's Now: type, status, name, user, trace id and
// the scoring endpoint must be what the Expects say.
func TestSecurityEventsAgreeWithTheMapping(t *testing.T) {
	t.Parallel()
	g := traffic.New(securityCfg(22, 0.3))
	m := mapping.New(mapping.Config{Secret: []byte(secret), Version: "test"})
	users := mapping.NewUsers(100_000)
	var res []mapping.Result
	checked := 0
	for i := range 4000 {
		rec := g.Next()
		res = m.Map(res[:0], rec.Value, now, users)
		if len(res) != len(rec.Expects) {
			t.Fatalf("record %d: %d results, %d expects", i, len(res), len(rec.Expects))
		}
		for j, r := range res {
			if r.Action == mapping.Identified {
				users.Put(r.Identity)
			}
			want := rec.Expects[j]
			if want.Scoring == "" {
				continue
			}
			checked++
			ev := &r.Event
			ep := ev.Scoring()
			var body struct {
				Type, Status, Name string
				MatchingUserID     string `json:"matching_user_id"`
				User               struct{ ID string }
				Params             struct{ Email string }
				Properties         struct {
					TraceID string `json:"trace_id"`
					Email   string
				}
			}
			if err := json.Unmarshal(ev.AppendBody(nil, ep, true), &body); err != nil {
				t.Fatal(err)
			}
			user := body.User.ID
			if ep == mapping.Filter {
				user = body.MatchingUserID
			}
			if r.Action != mapping.Forward || body.Type != want.CastleType || body.Status != want.CastleStatus ||
				body.Name != want.CastleName || user != want.UserID || ep.String() != want.Scoring ||
				body.Properties.TraceID != want.TraceID {
				t.Fatalf("record %d: mapped to action %d, %s body %+v; want %+v\n%s", i, r.Action, ep, body, want, short(rec.Value))
			}
			if want.UserID == "" && body.Params.Email == "" {
				t.Fatalf("record %d: an anonymous attempt without params.email on %s: %+v", i, ep, body)
			}
			if r.Adjusted != 0 {
				t.Errorf("record %d: the mapping adjusted a security event (%v)", i, r.Adjusted)
			}
		}
	}
	if checked < 800 {
		t.Fatalf("only %d security events in 4,000 records with a 30%% share", checked)
	}
}

// TestSecurityEventsCoverTheDemo checks what a scorer must see in the
// stream: fresh tokens, failed logins with and without a user, disposable
// email domains, registrations and password resets, and one device shared
// by many accounts.
func TestSecurityEventsCoverTheDemo(t *testing.T) {
	t.Parallel()
	const n, share = 20000, 0.05
	disposable := map[string]bool{}
	for _, d := range castleserver.DefaultDisposableDomains {
		disposable[d] = true
	}
	isDisposable := func(email string) bool {
		_, domain, _ := strings.Cut(email, "@")
		return disposable[domain]
	}
	deviceUsers := map[string]map[string]bool{} // token device -> user ids
	count := map[string]int{}
	var security int
	for i, r := range traffic.Generate(securityCfg(23, share), n) {
		e := r.Expects[0]
		if e.Scoring == "" {
			continue
		}
		security++
		var m struct {
			UserID, AnonymousID, Event string
			Timestamp, ReceivedAt      time.Time
			Properties                 struct{ Email string }
			Context                    struct {
				IP     string
				Traits struct{ Email string }
				Castle struct{ RequestToken string }
			}
			Integrations struct{ Castle struct{ RequestToken string } }
		}
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		tok := m.Integrations.Castle.RequestToken
		if tok == "" {
			tok = m.Context.Castle.RequestToken
			count["token in context"]++
		}
		// cst1.<ms>.<device>, the server's documented format.
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || parts[0] != "cst1" {
			t.Fatalf("record %d: request token %q", i, tok)
		}
		ms, err := strconv.ParseInt(parts[1], 10, 64)
		minted := time.UnixMilli(ms)
		if err != nil || minted.After(m.Timestamp) || m.Timestamp.Sub(minted) > 2*time.Second {
			t.Fatalf("record %d: token minted %v, event at %v", i, minted, m.Timestamp)
		}
		if m.ReceivedAt.After(now) || now.Sub(m.ReceivedAt) > 3*time.Second || !r.Time.Equal(m.ReceivedAt) ||
			m.Timestamp.After(m.ReceivedAt) || m.ReceivedAt.Sub(m.Timestamp) > 2*time.Second {
			t.Fatalf("record %d: received %v (record time %v), event %v; want live, just before %v", i, m.ReceivedAt, r.Time, m.Timestamp, now)
		}
		if key := cmp(m.UserID, m.AnonymousID); string(r.Key) != key {
			t.Fatalf("record %d: key %q, want %q", i, r.Key, key)
		}
		if ip := net.ParseIP(m.Context.IP); ip == nil || ip.IsPrivate() {
			t.Fatalf("record %d: ip %q", i, m.Context.IP)
		}
		anon := m.UserID == ""
		count[m.Event+map[bool]string{true: " anonymous", false: ""}[anon]]++
		if anon && m.Properties.Email == "" {
			t.Fatalf("record %d: an anonymous attempt without properties.email", i)
		}
		if isDisposable(m.Properties.Email) || isDisposable(m.Context.Traits.Email) {
			count[m.Event+" disposable"]++
		}
		if m.UserID != "" {
			if deviceUsers[parts[2]] == nil {
				deviceUsers[parts[2]] = map[string]bool{}
			}
			deviceUsers[parts[2]][m.UserID] = true
		}
	}
	t.Logf("%d security events: %v", security, count)
	if want := n * share; math.Abs(float64(security)-want) > 5*math.Sqrt(want) {
		t.Errorf("%d security events in %d records, want about %.0f", security, n, want)
	}
	for _, k := range []string{"$login.succeeded", "$login.failed", "$login.failed anonymous", "$login.failed disposable",
		"$registration.succeeded", "$registration.succeeded disposable",
		"$password_reset_request.succeeded", "$password_reset_request.succeeded anonymous", "token in context"} {
		if count[k] < 5 {
			t.Errorf("%d of %q among %d security events", count[k], k, security)
		}
	}
	var sharedBy []int
	for _, users := range deviceUsers {
		sharedBy = append(sharedBy, len(users))
	}
	slices.Sort(sharedBy)
	if len(sharedBy) == 0 || sharedBy[len(sharedBy)-1] < 20 || len(sharedBy) > 1 && sharedBy[len(sharedBy)-2] > 2 {
		t.Errorf("users per device, most shared last: %v; want one device shared by many", sharedBy[max(0, len(sharedBy)-5):])
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// SecurityMix adds security events and changes nothing else; streams
// without them have none.
func TestSecurityMixLeavesOtherKindsAlone(t *testing.T) {
	d, s := traffic.DefaultMix(), traffic.SecurityMix(0.05)
	s.Security = 0
	if d != s {
		t.Fatalf("SecurityMix changed other weights: %+v", s)
	}
	if traffic.DefaultMix().Security != 0 {
		t.Fatal("DefaultMix has security events")
	}
	// The default stream has none, and the same seed gives the same stream
	// with security events too.
	for _, r := range traffic.Generate(cfg(24), 3000) {
		if r.Expects[0].Scoring != "" || r.Expects[0].CastleStatus != "" {
			t.Fatalf("a security event in the default stream: %+v", r.Expects[0])
		}
	}
	a, b := traffic.Generate(securityCfg(24, 0.1), 1000), traffic.Generate(securityCfg(24, 0.1), 1000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two streams")
	}
}
