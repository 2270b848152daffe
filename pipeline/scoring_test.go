package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/promtest"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/verdict"
)

// verdictBox keeps verdicts, and fails while failing is set.
type verdictBox struct {
	mu      sync.Mutex
	vs      []*verdict.Verdict
	failing atomic.Bool
}

func (b *verdictBox) Write(_ context.Context, vs ...*verdict.Verdict) error {
	if b.failing.Load() {
		return errors.New("verdict topic unavailable")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.vs = append(b.vs, vs...)
	return nil
}

func login(user string, ts time.Time, token string) string {
	return fmt.Sprintf(`{"type":"track","messageId":"m-%s","userId":%q,"event":"$login.succeeded","channel":"client",`+
		`"integrations":{"Castle":{"requestToken":%q}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js","version":"2"}},`+
		`"timestamp":%q}`, user, user, token, ts.UTC().Format(time.RFC3339Nano))
}

// A 201 whose body is not JSON is counted and writes no verdict; a 201
// without a policy writes a verdict without one, counted. Both events are
// delivered and their records acknowledged.
func TestUnreadableVerdicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		box := &verdictBox{}
		r := newRig(t, pipeline.Config{Scoring: true, ScoringMaxAge: 100 * time.Second, Verdicts: box}, destination.Config{Concurrency: 1})
		defer r.stop()
		now := time.Now()
		r.srv.FailNext(1, castleserver.Respond(201, "<html>not json</html>").On(castleserver.RiskPath))
		r.srv.FailNext(1, castleserver.Respond(201, `{"id":"ev-2","risk":0.2}`).On(castleserver.RiskPath))
		a := &acker{}
		tok := castleserver.NewRequestToken(now, "laptop")
		if err := r.run(context.Background(), record(0, login("a", now, tok), a), record(1, login("b", now, tok), a)); err != nil {
			t.Fatal(err)
		}
		if a.n.Load() != 2 {
			t.Fatalf("acked %d of 2", a.n.Load())
		}
		if got := promtest.Value(t, r.reg, "castle_destination_verdict_errors_total", "kind", "not_json"); got != 1 {
			t.Errorf("verdict_errors{not_json} = %v, want 1", got)
		}
		if got := promtest.Value(t, r.reg, "castle_destination_verdict_errors_total", "kind", "no_policy"); got != 1 {
			t.Errorf("verdict_errors{no_policy} = %v, want 1", got)
		}
		if len(box.vs) != 1 || box.vs[0].UserID != "b" || box.vs[0].Policy != nil || box.vs[0].CastleEventID != "ev-2" {
			t.Errorf("verdicts %+v, want b's, without a policy", box.vs)
		}
	})
}

// An event older than ScoringMaxAge when it is read goes to /v1/log,
// counted as a token_aged fallback.
func TestScoringAgedOnArrival(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{Scoring: true, ScoringMaxAge: 10 * time.Second}, destination.Config{})
		defer r.stop()
		ts := time.Now().Add(-30 * time.Second) // token still fresh for the mapping (120 s), too old for scoring
		if err := r.run(context.Background(), record(0, login("a", ts, castleserver.NewRequestToken(ts, "x")), nil)); err != nil {
			t.Fatal(err)
		}
		if n := len(r.srv.AcceptedOn(castleserver.LogPath)); n != 1 {
			t.Errorf("%d on /v1/log, want 1", n)
		}
		if n := len(r.srv.AcceptedOn(castleserver.RiskPath)); n != 0 {
			t.Errorf("%d scored", n)
		}
		if got := promtest.Value(t, r.reg, "castle_destination_scoring_fallbacks_total", "reason", "token_aged"); got != 1 {
			t.Errorf("fallbacks{token_aged} = %v, want 1", got)
		}
	})
}

// An event whose request token is older than Castle's 120 s when it is
// read (consumer lag of minutes) has its token left out by the mapping:
// it goes to /v1/log, counted as a token_aged fallback all the same, so
// that the fallback rate (and its alert) shows lag eating every token. An
// event that could not have been scored with its token (an anonymous
// $logout) and one without a token are no fallback.
func TestScoringAgedPastTheTokensLifeOnArrival(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{Scoring: true, ScoringMaxAge: 100 * time.Second}, destination.Config{})
		defer r.stop()
		ts := time.Now().Add(-10 * time.Minute)
		tok := castleserver.NewRequestToken(ts, "x")
		anonLogout := fmt.Sprintf(`{"type":"track","messageId":"m-anon","anonymousId":"anon","event":"$logout.succeeded","channel":"client",`+
			`"integrations":{"Castle":{"requestToken":%q}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js","version":"2"}},"timestamp":%q}`,
			tok, ts.UTC().Format(time.RFC3339Nano))
		noToken := strings.Replace(login("c", ts, ""), `"integrations":{"Castle":{"requestToken":""}},`, "", 1)
		if err := r.run(context.Background(), record(0, login("a", ts, tok), nil), record(1, anonLogout, nil), record(2, noToken, nil)); err != nil {
			t.Fatal(err)
		}
		if n := len(r.srv.AcceptedOn(castleserver.LogPath)); n != 3 {
			t.Errorf("%d on /v1/log, want 3", n)
		}
		for _, req := range r.srv.AcceptedOn(castleserver.LogPath) {
			if strings.Contains(string(req.Body), "request_token") {
				t.Errorf("a stale token was sent: %s", req.Body)
			}
		}
		if got := promtest.Value(t, r.reg, "castle_destination_scoring_fallbacks_total", "reason", "token_aged"); got != 1 {
			t.Errorf("fallbacks{token_aged} = %v, want 1 (the login)", got)
		}
	})
}

// While verdicts cannot be written, delivery holds (SPEC §5): no more
// events are scored (each would be scored again, firing Castle's policies
// twice, once its record is read again after a restart) and no dead letter
// is written. Once the verdict topic takes writes, every event is scored
// once and its verdict written.
func TestUnwritableVerdictTopicHoldsScoring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		box := &verdictBox{}
		box.failing.Store(true)
		r := newRig(t, pipeline.Config{Scoring: true, ScoringMaxAge: 100 * time.Second, Verdicts: box, DeadLetterRetry: time.Second}, destination.Config{})
		defer r.stop()
		now := time.Now()
		tok := castleserver.NewRequestToken(now, "laptop")
		a := &acker{}
		in := make(chan pipeline.Record, 32)
		done := make(chan error, 1)
		go func() { done <- r.p.Run(context.Background(), in) }()
		in <- record(0, login("a", now, tok), a)
		time.Sleep(2 * time.Second)
		for i := range 10 {
			in <- record(int64(1+i), login(fmt.Sprint("u", i), now, tok), a)
		}
		in <- record(11, `{"not json`, a)
		time.Sleep(10 * time.Second)
		if n := len(r.srv.AcceptedOn(castleserver.RiskPath)); n != 1 {
			t.Errorf("%d events scored while verdicts could not be written, want only the first", n)
		}
		if l := r.letters.get(); len(l) != 0 {
			t.Errorf("%d dead letters written while verdicts could not be", len(l))
		}
		if err := r.board.Ready(); err == nil || !strings.Contains(err.Error(), "verdict_topic") {
			t.Errorf("Ready() = %v while verdicts cannot be written", err)
		}
		box.failing.Store(false)
		close(in)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(r.srv.AcceptedOn(castleserver.RiskPath)); n != 11 {
			t.Errorf("%d events scored, want 11, each once", n)
		}
		if len(box.vs) != 11 {
			t.Errorf("%d verdicts written, want 11", len(box.vs))
		}
		if l := r.letters.get(); len(l) != 1 {
			t.Errorf("%d dead letters, want the malformed record's", len(l))
		}
		if got := a.n.Load(); got != 12 {
			t.Errorf("acked %d of 12 records", got)
		}
	})
}

// A /v1/log request whose delivery outlasts its request token's 120 s
// (Castle failing for a while, retried; or a hold) is sent without the
// token, counted: Castle takes a request token for 120 s after it is made,
// and one sent later could have the event refused. Sent in time, the
// token goes with it.
func TestLogTokenLeftOutOnceExpired(t *testing.T) {
	for _, c := range []struct {
		name      string
		failures  int
		fault     castleserver.Fault
		wantToken bool
	}{
		{"sent in time", 0, castleserver.Fault{}, true},
		{"retried past the token's life", 30, castleserver.Status(503), false},
		{"held past the token's life", 9, castleserver.Status(401), false}, // probes until ~51 s
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, pipeline.Config{}, destination.Config{})
				defer r.stop()
				if c.failures > 0 {
					r.srv.FailNext(c.failures, c.fault)
				}
				ts := time.Now().Add(-100 * time.Second) // fresh when read: 20 s left
				if err := r.run(context.Background(), record(0, login("a", ts, castleserver.NewRequestToken(ts, "x")), nil)); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(ts); took > mapping.TokenLifetime == c.wantToken {
					t.Fatalf("delivered %s after the event: the token was not left to expire as meant", took)
				}
				got := r.srv.AcceptedOn(castleserver.LogPath)
				if len(got) != 1 {
					t.Fatalf("%d on /v1/log, want 1", len(got))
				}
				if has := strings.Contains(string(got[0].Body), "request_token"); has != c.wantToken {
					t.Errorf("request_token sent: %v, want %v: %s", has, c.wantToken, got[0].Body)
				}
				want := 1.0
				if c.wantToken {
					want = 0
				}
				if n := promtest.Value(t, r.reg, "castle_destination_castle_tokens_expired_total"); n != want {
					t.Errorf("tokens_expired_total = %v, want %v", n, want)
				}
			})
		})
	}
}

// A token is minted before the message carrying it is read, so it expires
// at Castle at most 120 s after the worker read it, whatever the event's
// time says: an event stamped in the future (the mapping keeps a token up
// to 120 s ahead) retried past that is sent without its token.
func TestLogTokenOfAFutureEventLeftOutOnceExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{
			Retry: destination.RetryPolicy{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2, MaxElapsed: 10 * time.Minute}})
		defer r.stop()
		r.srv.FailNext(20, castleserver.Status(503)) // retried for 175 s
		read := time.Now()
		ts := read.Add(100 * time.Second) // a client clock ahead: kept by the mapping
		if err := r.run(context.Background(), record(0, login("a", ts, castleserver.NewRequestToken(read, "x")), nil)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(read); took <= mapping.TokenLifetime {
			t.Fatalf("delivered after %s, want past the token's %s", took, mapping.TokenLifetime)
		}
		got := r.srv.AcceptedOn(castleserver.LogPath)
		if len(got) != 1 {
			t.Fatalf("%d on /v1/log, want 1", len(got))
		}
		if strings.Contains(string(got[0].Body), "request_token") {
			t.Errorf("sent %s after the read with the token: %s", time.Since(read), got[0].Body)
		}
		if n := promtest.Value(t, r.reg, "castle_destination_castle_tokens_expired_total"); n != 1 {
			t.Errorf("tokens_expired_total = %v, want 1", n)
		}
	})
}

// Leaving an expired token out takes the body's own request_token only: a
// property of that name is the customer's, and stays.
func TestLogTokenLeftOutKeepsAPropertyOfItsName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.FailNext(30, castleserver.Status(503))
		ts := time.Now().Add(-100 * time.Second)
		msg := fmt.Sprintf(`{"type":"track","messageId":"m-1","userId":"a","event":"$login.succeeded","channel":"client",`+
			`"properties":{"request_token":"kept","n":1},"integrations":{"Castle":{"requestToken":%q}},`+
			`"context":{"ip":"81.2.69.142"},"timestamp":%q}`, castleserver.NewRequestToken(ts, "x"), ts.UTC().Format(time.RFC3339Nano))
		if err := r.run(context.Background(), record(0, msg, nil)); err != nil {
			t.Fatal(err)
		}
		got := r.srv.AcceptedOn(castleserver.LogPath)
		if len(got) != 1 {
			t.Fatalf("%d on /v1/log, want 1", len(got))
		}
		var body struct {
			RequestToken *string        `json:"request_token"`
			Properties   map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(got[0].Body, &body); err != nil {
			t.Fatalf("%v: %s", err, got[0].Body)
		}
		if body.RequestToken != nil || body.Properties["request_token"] != "kept" || body.Properties["n"] != 1.0 {
			t.Errorf("sent %s, want no request_token and the properties kept", got[0].Body)
		}
	})
}

// Castle refusing a /v1/log request's token (422 invalid_request_token:
// expired in flight, or not Castle's) has the event sent again at once
// without it, counted, rather than dead-lettered: the token is optional
// on /v1/log.
func TestLogTokenRefusedIsLeftOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		r.srv.FailNext(1, castleserver.InvalidRequestToken().On(castleserver.LogPath))
		ts := time.Now()
		a := &acker{}
		if err := r.run(context.Background(), record(0, login("a", ts, castleserver.NewRequestToken(ts, "x")), a)); err != nil {
			t.Fatal(err)
		}
		got := r.srv.AcceptedOn(castleserver.LogPath)
		if len(got) != 1 || strings.Contains(string(got[0].Body), "request_token") {
			t.Fatalf("accepted on /v1/log: %d, want 1 without its request_token", len(got))
		}
		if n := len(r.letters.get()); n != 0 || a.n.Load() != 1 {
			t.Errorf("%d dead letters, acked %d; want none and 1", n, a.n.Load())
		}
		if n := promtest.Value(t, r.reg, "castle_destination_castle_tokens_expired_total"); n != 1 {
			t.Errorf("tokens_expired_total = %v, want 1", n)
		}
	})
}

// An event stamped in the future (a client clock ahead) is sent for
// scoring until SCORING_MAX_AGE after it was read at the latest: its
// token was minted before the read, whatever its time says. Past that it
// falls back to /v1/log as token_aged, not sent for scoring with a token
// Castle no longer takes.
func TestScoringOfAFutureEventEndsByTheRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{Scoring: true, ScoringMaxAge: 100 * time.Second}, destination.Config{
			Retry: destination.RetryPolicy{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2, MaxElapsed: 10 * time.Minute}})
		defer r.stop()
		r.srv.FailNext(15, castleserver.Status(503).On(castleserver.RiskPath)) // about 125 s
		read := time.Now()
		ts := read.Add(100 * time.Second)
		if err := r.run(context.Background(), record(0, login("a", ts, castleserver.NewRequestToken(read, "x")), nil)); err != nil {
			t.Fatal(err)
		}
		if n := len(r.srv.AcceptedOn(castleserver.LogPath)); n != 1 {
			t.Errorf("%d on /v1/log, want 1", n)
		}
		aged := promtest.Value(t, r.reg, "castle_destination_scoring_fallbacks_total", "reason", "token_aged")
		refused := promtest.Value(t, r.reg, "castle_destination_scoring_fallbacks_total", "reason", "token_refused")
		if aged != 1 || refused != 0 {
			t.Errorf("fallbacks token_aged %v, token_refused %v; want 1 and 0 (not sent for scoring past SCORING_MAX_AGE after the read)", aged, refused)
		}
	})
}
