package mapping_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/mapping"
)

// Where each kind of event is scored: the type and status, whether a user
// is named, a fresh token, a public IP.
func TestScoring(t *testing.T) {
	for _, tc := range []struct {
		event            string
		user, token, pub bool
		want             mapping.Endpoint
	}{
		{"$login.succeeded", true, true, true, mapping.Risk},
		{"$login.failed", false, true, true, mapping.Filter},
		{"$login.failed", true, true, true, mapping.Risk},
		{"$registration.succeeded", false, true, true, mapping.Filter},
		{"$logout.succeeded", true, true, true, mapping.Risk},
		{"$logout.succeeded", false, true, true, mapping.Log}, // Filter takes no $logout
		{"$profile_update.succeeded", true, true, true, mapping.Risk},
		{"$profile_update.failed", false, true, true, mapping.Log},
		{"$password_reset.succeeded", true, true, true, mapping.Risk}, // $profile_reset
		{"$password_reset_request.succeeded", true, true, true, mapping.Filter},
		{"$password_reset_request.failed", false, true, true, mapping.Filter},
		{"$challenge.requested", true, true, true, mapping.Risk},
		{"$challenge.requested", false, true, true, mapping.Log}, // $requested is Risk's only
		{"$challenge.failed", false, true, true, mapping.Filter},
		{"$transaction.attempted", true, true, true, mapping.Risk},
		{"$transaction.succeeded", false, true, true, mapping.Filter},
		{"$login.succeeded", true, false, true, mapping.Log},
		{"$login.succeeded", true, true, false, mapping.Log},
		{"$incident.mitigated", true, true, true, mapping.Log},
		{"Order Completed", true, true, true, mapping.Log},
	} {
		msg := map[string]any{"type": "track", "messageId": "m", "event": tc.event, "channel": "client",
			"timestamp": "2025-01-15T11:59:30Z", "context": map[string]any{"library": map[string]any{"name": "analytics.js"}}}
		if tc.user {
			msg["userId"] = "u"
		}
		if tc.token {
			msg["integrations"] = map[string]any{"Castle": map[string]any{"requestToken": "tok"}}
		}
		ctx := msg["context"].(map[string]any)
		ctx["ip"] = "10.1.2.3"
		if tc.pub {
			ctx["ip"] = "81.2.69.142"
		}
		raw, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		r := goldenMapper().Map(nil, raw, goldenNow, nil)[0]
		if r.Action != mapping.Forward {
			t.Fatalf("%s: %v %s", tc.event, r.Action, r.Detail)
		}
		if got := r.Event.Scoring(); got != tc.want {
			t.Errorf("%s user=%v token=%v public=%v: scored on %s, want %s", tc.event, tc.user, tc.token, tc.pub, got, tc.want)
		}
	}
}

// A fallback body never carries the request token, whatever the endpoint;
// a filter body never carries a user; $requested is sent as $attempted
// except to Risk.
func TestAppendBodyPerEndpoint(t *testing.T) {
	raw := []byte(`{"type":"track","messageId":"m","userId":"u","event":"$challenge.requested","channel":"client","timestamp":"2025-01-15T11:59:30Z",
		"properties":{"email":"e@example.com","username":"name","phone":"+41","changeset":{"email":{"changed":true}},"transaction":{"id":"t","type":"$purchase"},"k":"v"},
		"integrations":{"Castle":{"requestToken":"tok-secret"}},"context":{"ip":"81.2.69.142","traits":{"email":"user@example.com"},"library":{"name":"analytics.js"}}}`)
	r := goldenMapper().Map(nil, raw, goldenNow, nil)[0]
	if r.Action != mapping.Forward {
		t.Fatalf("%v %s", r.Action, r.Detail)
	}
	type body struct {
		Status         string
		RequestToken   *string `json:"request_token"`
		User           *struct{ ID, Email string }
		MatchingUserID string `json:"matching_user_id"`
		Params         map[string]string
		Properties     map[string]any
		Changeset      map[string]any
		Transaction    map[string]any
	}
	for _, ep := range []mapping.Endpoint{mapping.Log, mapping.Risk, mapping.Filter} {
		for _, withToken := range []bool{true, false} {
			b := r.Event.AppendBody(nil, ep, withToken)
			var got body
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v: %s", ep, err, b)
			}
			if (got.RequestToken != nil) != withToken || !withToken && strings.Contains(string(b), "tok-secret") {
				t.Errorf("%s withToken=%v: %s", ep, withToken, b)
			}
			wantStatus := "$attempted"
			if ep == mapping.Risk {
				wantStatus = "$requested"
			}
			if got.Status != wantStatus || got.Transaction["id"] != "t" || got.Properties["k"] != "v" {
				t.Errorf("%s: status %q, transaction %v, properties %v", ep, got.Status, got.Transaction, got.Properties)
			}
			_, csProp := got.Properties["changeset.email.changed"]
			_, emailProp := got.Properties["email"]
			switch ep {
			case mapping.Filter:
				if got.User != nil || got.MatchingUserID != "u" || got.Params["email"] != "e@example.com" ||
					got.Params["username"] != "name" || got.Params["phone"] != "+41" || emailProp || !csProp || got.Changeset != nil {
					t.Errorf("filter body: %s", b)
				}
			case mapping.Risk:
				if got.User == nil || got.User.ID != "u" || got.User.Email != "user@example.com" || got.Params != nil ||
					!emailProp || csProp || got.Changeset["email"] == nil {
					t.Errorf("risk body: %s", b)
				}
			case mapping.Log:
				if got.User == nil || got.Params != nil || !emailProp || !csProp || got.Changeset != nil {
					t.Errorf("log body: %s", b)
				}
			}
		}
	}
	if n := r.Event.Properties(); n != 5 { // k, changeset.email.changed, email, username, phone
		t.Errorf("Properties() = %d, want 5", n)
	}
	if !r.Event.Security() || r.Event.Status != "$requested" {
		t.Errorf("Security %v, Status %q", r.Event.Security(), r.Event.Status)
	}
}

// The cap on properties holds on every endpoint, the submitted identifier
// included.
func TestSecurityPropertiesCapped(t *testing.T) {
	raw := []byte(`{"type":"track","messageId":"m","userId":"u","event":"$login.failed","channel":"client","properties":{` + hugeProps(300) + `,"email":"e@example.com"},"context":{"library":{"name":"analytics.js"}}}`)
	r := goldenMapper().Map(nil, raw, goldenNow, nil)[0]
	if !r.Adjusted.Has(mapping.AdjustKeysCapped) {
		t.Error("keys past the cap not counted")
	}
	for _, ep := range []mapping.Endpoint{mapping.Log, mapping.Risk, mapping.Filter} {
		var b struct{ Properties map[string]any }
		if err := json.Unmarshal(r.Event.AppendBody(nil, ep, true), &b); err != nil {
			t.Fatal(err)
		}
		if len(b.Properties) > mapping.MaxKeys {
			t.Errorf("%s: %d properties, cap %d", ep, len(b.Properties), mapping.MaxKeys)
		}
		if _, ok := b.Properties["email"]; !ok && ep != mapping.Filter {
			t.Errorf("%s: the submitted identifier was capped away", ep)
		}
	}
}

func TestEndpointNames(t *testing.T) {
	for ep, want := range map[mapping.Endpoint]string{mapping.Log: "/v1/log", mapping.Risk: "/v1/risk", mapping.Filter: "/v1/filter"} {
		if ep.Path() != want || "/v1/"+ep.String() != want {
			t.Errorf("%d: %s %s", ep, ep, ep.Path())
		}
	}
}
