package castleserver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
)

// TestRateLimitAcrossEndpoints: one user's requests to /v1/risk, /v1/log
// and /v1/filter (by matching_user_id) share the per-user limit of 6 per
// second and 10 per 5 seconds.
func TestRateLimitAcrossEndpoints(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now})
	send := func(i int) answer {
		tok := castleserver.NewRequestToken(c.Now(), "laptop")
		switch i % 3 {
		case 0:
			return post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil))
		case 1:
			return post(t, s, castleserver.LogPath, `{"type":"$custom","name":"Clicked","user":{"id":"u1"}}`)
		default:
			return post(t, s, castleserver.FilterPath, ev(filterBody(tok), map[string]any{"matching_user_id": "u1"}))
		}
	}
	for i := range 6 {
		if a := send(i); a.code/100 != 2 {
			t.Fatalf("request %d: %d %s", i, a.code, a.body)
		}
	}
	for i := 6; i < 9; i++ { // the 7th, on each endpoint
		a := send(i)
		if a.code != http.StatusTooManyRequests || a.errType() != "too_many_requests" {
			t.Fatalf("request %d within a second: %d %s, want 429", i, a.code, a.body)
		}
		if a.header.Get("Retry-After") != "1" || a.header.Get("X-RateLimit-Remaining") != "0" {
			t.Errorf("429 headers: %v", a.header)
		}
	}
	// Anonymous and other users' requests flow meanwhile.
	if a := post(t, s, castleserver.FilterPath, ev(filterBody(castleserver.NewRequestToken(c.Now(), "x")), nil)); a.code != http.StatusCreated {
		t.Errorf("anonymous filter: %d %s", a.code, a.body)
	}
	if a := post(t, s, castleserver.RiskPath, login("u2", "x", "$succeeded", c.Now())); a.code != http.StatusCreated {
		t.Errorf("another user: %d %s", a.code, a.body)
	}
	c.Advance(time.Second)
	for i := range 4 {
		if a := send(i); a.code/100 != 2 {
			t.Fatalf("second second, request %d: %d %s", i, a.code, a.body)
		}
	}
	a := send(4)
	if a.code != http.StatusTooManyRequests {
		t.Fatalf("11th request within 5 s: %d %s, want 429", a.code, a.body)
	}
	if got := a.header.Get("Retry-After"); got != "4" {
		t.Errorf("Retry-After %q, want 4 (the first request leaves the 5 s window then)", got)
	}
	c.Advance(4 * time.Second)
	if a := send(5); a.code/100 != 2 {
		t.Fatalf("after the window: %d %s", a.code, a.body)
	}
	if got := s.Stats().ByStatus[http.StatusTooManyRequests]; got != 4 {
		t.Errorf("%d answers 429, want 4", got)
	}
}
