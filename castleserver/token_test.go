package castleserver_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
)

func TestTokenRules(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	mint := func(age time.Duration) string { return castleserver.NewRequestToken(t0.Add(-age), "phone") }
	s.RefuseToken(mint(time.Second))
	for _, tc := range []struct {
		name   string
		tok    string
		ok     bool
		reason string
	}{
		{"fresh", mint(0), true, ""},
		{"119.999 s old", mint(120*time.Second - time.Millisecond), true, ""},
		{"exactly 120 s old", mint(120 * time.Second), true, ""},
		{"120.001 s old", mint(120*time.Second + time.Millisecond), false, "expired"},
		{"an hour old", mint(time.Hour), false, "expired"},
		{"30 s in the future", mint(-30 * time.Second), true, ""},
		{"31 s in the future", mint(-31 * time.Second), false, "future"},
		{"refused", mint(time.Second), false, "refused"},
		{"empty", "", false, "empty"},
		{"garbage", "not-a-token", false, "malformed"},
		{"Castle sandbox form", "test|device:chrome_on_mac|policy.action:deny", false, "malformed"},
		{"bad time", "cst1.abc.cGhvbmU", false, "malformed"},
		{"bad device", "cst1.1764496800000.%%%", false, "malformed"},
		{"extra part", mint(0) + ".x", false, "malformed"},
		{"wrong version", strings.Replace(mint(0), "cst1", "cst2", 1), false, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ep := range []struct {
				path string
				body map[string]any
			}{{castleserver.RiskPath, riskBody(tc.tok)}, {castleserver.FilterPath, filterBody(tc.tok)}} {
				a := post(t, s, ep.path, ev(ep.body, nil))
				if tc.ok {
					if a.code != http.StatusCreated {
						t.Errorf("%s: %d %s, want 201", ep.path, a.code, a.body)
					}
					continue
				}
				if a.code != http.StatusUnprocessableEntity || a.errType() != "invalid_request_token" {
					t.Errorf("%s: %d %s, want 422 invalid_request_token", ep.path, a.code, a.body)
				}
				if !strings.Contains(a.errMessage(), tc.reason) {
					t.Errorf("%s: message %q does not say %q", ep.path, a.errMessage(), tc.reason)
				}
				if tc.tok != "" && strings.Contains(string(a.body), tc.tok) {
					t.Errorf("%s: the error repeats the token: %s", ep.path, a.body)
				}
			}
		})
	}
	// /v1/log does not check tokens: a refused or expired one is accepted.
	for _, tok := range []string{mint(time.Second), mint(time.Hour), "garbage"} {
		a := post(t, s, castleserver.LogPath, ev(map[string]any{"type": "$login", "status": "$succeeded"}, map[string]any{"request_token": tok}))
		if a.code != http.StatusNoContent {
			t.Errorf("log with token %q: %d %s, want 204", tok, a.code, a.body)
		}
	}
	if n := len(s.Accepted()); n != 2*4+3 {
		t.Errorf("accepted %d requests, want %d: refused tokens must not be recorded", n, 2*4+3)
	}
}

// TestTokenExpiresWithTheClock: a token accepted now is refused once the
// server's clock (here the fake clock of a synctest bubble) passes its
// lifetime.
func TestTokenExpiresWithTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, castleserver.Config{RateLimitOff: true})
		tok := castleserver.NewRequestToken(time.Now(), "tablet")
		if a := post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil)); a.code != http.StatusCreated {
			t.Fatalf("fresh token: %d %s", a.code, a.body)
		}
		time.Sleep(castleserver.DefaultTokenLifetime)
		if a := post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil)); a.code != http.StatusCreated {
			t.Fatalf("token at its lifetime: %d %s", a.code, a.body)
		}
		time.Sleep(time.Millisecond)
		a := post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil))
		if a.code != http.StatusUnprocessableEntity || a.errType() != "invalid_request_token" {
			t.Fatalf("expired token: %d %s, want 422 invalid_request_token", a.code, a.body)
		}
	})
}

func TestTokenLifetimeConfigurable(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, TokenLifetime: 10 * time.Second})
	tok := castleserver.NewRequestToken(t0, "d")
	c.Advance(11 * time.Second)
	if a := post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil)); a.errType() != "invalid_request_token" {
		t.Fatalf("11 s old token with a 10 s lifetime: %d %s", a.code, a.body)
	}
}

// TestSkipTokenValidation: with skip_request_token_validation the token
// is not checked, and the verdict carries no scores (Castle computes none).
func TestSkipTokenValidation(t *testing.T) {
	s := newServer(t, castleserver.Config{Now: newClock().Now})
	a := post(t, s, castleserver.RiskPath, ev(riskBody("garbage"), map[string]any{"skip_request_token_validation": true}))
	v := parseVerdict(t, a)
	if v.Scores != nil || strings.Contains(string(a.body), `"risk"`) {
		t.Errorf("verdict without token validation has scores: %s", a.body)
	}
	if v.Policy.Action == "" {
		t.Errorf("verdict has no policy: %s", a.body)
	}
}
