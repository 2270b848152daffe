package castleserver_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/castle-destination/castle-destination/castleserver"
)

func logBody(i int) string {
	return fmt.Sprintf(`{"type":"$custom","name":"Clicked","properties":{"seq":%d}}`, i)
}

// TestFailAfter: Castle accepts n events, then refuses the secret (as
// after a rotation) until the outage ends.
func TestFailAfter(t *testing.T) {
	s := newServer(t, castleserver.Config{})
	s.FailAfter(3, castleserver.Status(401))
	// A rejected request does not count towards the three.
	if a := post(t, s, castleserver.LogPath, `{"type":"$nope"}`); a.code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid body: %d", a.code)
	}
	for i := range 3 {
		if a := post(t, s, castleserver.LogPath, logBody(i)); a.code != http.StatusNoContent {
			t.Fatalf("request %d before the rotation: %d %s", i, a.code, a.body)
		}
	}
	for i := range 5 {
		path := []string{castleserver.LogPath, castleserver.RiskPath, castleserver.FilterPath}[i%3]
		a := post(t, s, path, logBody(i))
		if a.code != http.StatusUnauthorized || a.errType() != "unauthorized" {
			t.Fatalf("request %d to %s after the rotation: %d %s, want 401 unauthorized", i, path, a.code, a.body)
		}
	}
	s.EndOutage()
	if a := post(t, s, castleserver.LogPath, logBody(9)); a.code != http.StatusNoContent {
		t.Fatalf("after recovery: %d %s", a.code, a.body)
	}
	st := s.Stats()
	if st.Accepted != 4 || st.ByStatus[http.StatusUnauthorized] != 5 || st.Faults["status_401"] != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestFailAfterCanceled(t *testing.T) {
	s := newServer(t, castleserver.Config{})
	s.FailAfter(1, castleserver.Status(503))
	s.ClearFaults()
	for i := range 3 {
		if a := post(t, s, castleserver.LogPath, logBody(i)); a.code != http.StatusNoContent {
			t.Fatalf("request %d after ClearFaults: %d", i, a.code)
		}
	}
	s.FailAfter(0, castleserver.Status(503)) // at once
	if a := post(t, s, castleserver.LogPath, logBody(0)); a.code != http.StatusServiceUnavailable {
		t.Fatalf("FailAfter(0): %d", a.code)
	}
}

// TestSetSecret rotates the secret while requests are served.
func TestSetSecret(t *testing.T) {
	s := newServer(t, castleserver.Config{RateLimitOff: true})
	const next = "sk_test_rotated_77"
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				a := postAs(t, s, castleserver.LogPath, logBody(g*100+i), secret)
				if a.code != http.StatusNoContent && a.code != http.StatusUnauthorized {
					t.Errorf("status %d", a.code)
				}
			}
		})
	}
	s.SetSecret(next)
	wg.Wait()
	if a := postAs(t, s, castleserver.LogPath, logBody(0), secret); a.code != http.StatusUnauthorized || a.errType() != "unauthorized" {
		t.Errorf("old secret after rotation: %d %s", a.code, a.body)
	}
	if a := postAs(t, s, castleserver.LogPath, logBody(0), next); a.code != http.StatusNoContent {
		t.Errorf("new secret: %d %s", a.code, a.body)
	}
	s.SetSecret("")
	if a := postAs(t, s, castleserver.LogPath, logBody(0), ""); a.code != http.StatusUnauthorized {
		t.Errorf("empty secret must refuse an empty password: %d", a.code)
	}
}

func TestStatusBodies(t *testing.T) {
	s := newServer(t, castleserver.Config{})
	for code, typ := range map[int]string{
		400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
		422: "invalid_parameters", 429: "too_many_requests", 500: "server_error", 503: "service_unavailable",
	} {
		s.FailNext(1, castleserver.Status(code))
		if a := post(t, s, castleserver.RiskPath, `{}`); a.code != code || a.errType() != typ || a.errMessage() == "" {
			t.Errorf("Status(%d): %d %s, want type %q", code, a.code, a.body, typ)
		}
	}
}

// TestFaultsOnAPath: a fault narrowed with On leaves the other paths
// alone; a queued one waits for its path.
func TestFaultsOnAPath(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	risk := func() answer {
		return post(t, s, castleserver.RiskPath, ev(riskBody(castleserver.NewRequestToken(c.Now(), "d")), nil))
	}
	s.FailNext(1, castleserver.Respond(201, `not json`).On(castleserver.RiskPath))
	s.FailNext(1, castleserver.InvalidRequestToken().On(castleserver.RiskPath))
	s.FailNext(1, castleserver.Respond(201, `{"id":"x","signals":{}}`).On(castleserver.RiskPath))
	if a := post(t, s, castleserver.LogPath, logBody(1)); a.code != http.StatusNoContent {
		t.Fatalf("log while risk faults are queued: %d %s", a.code, a.body)
	}
	if a := risk(); a.code != 201 || string(a.body) != "not json" || a.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("Respond(201, not json): %d %q %v", a.code, a.body, a.header)
	}
	if a := risk(); a.code != 422 || a.errType() != "invalid_request_token" {
		t.Errorf("InvalidRequestToken: %d %s", a.code, a.body)
	}
	if a := risk(); a.code != 201 || string(a.body) != `{"id":"x","signals":{}}` {
		t.Errorf("Respond(201, no policy): %d %s", a.code, a.body)
	}
	parseVerdict(t, risk()) // the queue is empty: a real verdict

	s.StartOutage(castleserver.Status(503).On(castleserver.FilterPath))
	if a := post(t, s, castleserver.FilterPath, ev(filterBody(castleserver.NewRequestToken(c.Now(), "d")), nil)); a.code != 503 {
		t.Errorf("filter during its outage: %d", a.code)
	}
	parseVerdict(t, risk())
	s.FailRate(1, castleserver.Status(500).On(castleserver.LogPath))
	if a := post(t, s, castleserver.LogPath, logBody(2)); a.code != 500 {
		t.Errorf("log at rate 1: %d", a.code)
	}
	parseVerdict(t, risk())
	st := s.Stats()
	want := map[string]int64{"respond_201": 2, "invalid_request_token": 1, "status_503": 1, "status_500": 1}
	for k, v := range want {
		if st.Faults[k] != v {
			t.Errorf("Faults[%s] = %d, want %d (%v)", k, st.Faults[k], v, st.Faults)
		}
	}
	if len(s.AcceptedOn(castleserver.RiskPath)) != 3 {
		t.Errorf("faulted requests were recorded: %d on risk", len(s.AcceptedOn(castleserver.RiskPath)))
	}
}

// TestRefuseTokenThenLog: the fallback the worker makes; a refused token
// on /v1/risk, the same event on /v1/log accepted.
func TestRefuseTokenThenLog(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now})
	tok := castleserver.NewRequestToken(c.Now(), "d")
	s.RefuseToken(tok)
	if a := post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil)); a.errType() != "invalid_request_token" {
		t.Fatalf("refused token: %d %s", a.code, a.body)
	}
	b := ev(riskBody(tok), map[string]any{"context": map[string]any{"ip": "81.2.69.142"}})
	if a := post(t, s, castleserver.LogPath, b); a.code != http.StatusNoContent {
		t.Fatalf("same event on log: %d %s", a.code, a.body)
	}
	if n := len(s.AcceptedOn(castleserver.LogPath)); n != 1 || len(s.Accepted()) != 1 {
		t.Errorf("accepted %d on log, %d in all; want 1, 1", n, len(s.Accepted()))
	}
}
