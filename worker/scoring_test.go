package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/replay"
)

// securityTrack is a client-side track with a request token minted at ts
// (none when token is false) and a public IP.
func securityTrack(id, userID, anonID, event, props string, ts time.Time, token string) string {
	user := ""
	if userID != "" {
		user = fmt.Sprintf(`"userId":%q,`, userID)
	}
	if anonID != "" {
		user += fmt.Sprintf(`"anonymousId":%q,`, anonID)
	}
	castle := ""
	if token != "" {
		castle = fmt.Sprintf(`"integrations":{"Castle":{"requestToken":%q}},`, token)
	}
	if props == "" {
		props = "{}"
	}
	return fmt.Sprintf(`{"type":"track","messageId":%q,%s"event":%q,"channel":"client",%s"properties":%s,`+
		`"context":{"ip":"81.2.69.142","userAgent":"Mozilla/5.0","library":{"name":"analytics.js","version":"2.1"}},"timestamp":%q}`,
		id, user, event, castle, props, ts.UTC().Format(time.RFC3339Nano))
}

func page(id, userID string, ts time.Time, token string) string {
	return fmt.Sprintf(`{"type":"page","messageId":%q,"userId":%q,"name":"Home","channel":"client",`+
		`"integrations":{"Castle":{"requestToken":%q}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js","version":"2.1"}},"timestamp":%q}`,
		id, userID, token, ts.UTC().Format(time.RFC3339Nano))
}

// scoringRecords is a stream of security events: what each must become is
// in the test's checks.
func scoringRecords(now time.Time) (recs []traffic.Record, refused string) {
	fresh := now.Add(-5 * time.Second)
	stale := now.Add(-10 * time.Minute)
	tok := func(ts time.Time, device string) string { return castleserver.NewRequestToken(ts, device) }
	refused = tok(fresh, "refused-device")
	values := []string{
		securityTrack("login-ok", "u1", "", "$login.succeeded", "", fresh, tok(fresh, "laptop-1")),
		securityTrack("login-anon", "", "a2", "$login.failed", `{"email":"someone@mailinator.com"}`, fresh, tok(fresh, "phone-2")),
		securityTrack("login-stale", "u3", "", "$login.succeeded", "", stale, tok(stale, "laptop-3")),
		securityTrack("login-refused", "u4", "", "$login.succeeded", "", fresh, refused),
		securityTrack("custom", "u5", "", "Clicked", "", fresh, tok(fresh, "laptop-5")),
		page("page", "u6", fresh, tok(fresh, "laptop-6")),
		securityTrack("mapped", "u7", "", "Signed In", "", fresh, tok(fresh, "laptop-7")),
	}
	for i, v := range values {
		recs = append(recs, traffic.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(v)})
	}
	return recs, refused
}

// byMessage indexes what Castle accepted on path by the request's
// properties or user, keyed by the test's message ids as found in the body.
func bodies(srv *castleserver.Server, path string) []string {
	var out []string
	for _, r := range srv.AcceptedOn(path) {
		out = append(out, string(r.Body))
	}
	return out
}

func findBody(bodies []string, sub string) []string {
	var out []string
	for _, b := range bodies {
		if strings.Contains(b, sub) {
			out = append(out, b)
		}
	}
	return out
}

// With CASTLE_SCORING=on, fresh security events go to /v1/risk or
// /v1/filter and their verdicts to VERDICT_TOPIC before the source offsets
// commit; stale ones, refused tokens, $custom and $page go to /v1/log. A
// replay of the same records scores nothing.
func TestScoringEndToEnd(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	now := time.Now()
	recs, refused := scoringRecords(now)
	env.Castle.RefuseToken(refused)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	mapFile := filepath.Join(t.TempDir(), "event-map.yaml")
	if err := os.WriteFile(mapFile, []byte("events:\n  Signed In: {type: $login, status: $succeeded}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, stop := run(t, env, map[string]string{
		"CASTLE_SCORING": "on", "VERDICT_TOPIC": env.VerdictTopic, "EVENT_MAP": mapFile,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.Castle.WaitFor(ctx, 7); err != nil {
		t.Fatalf("Castle accepted %d of 7 events: %v", env.Castle.Stats().Accepted, err)
	}
	waitCommitted(t, env, w.group, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}

	risk, filter, logs := bodies(env.Castle, castleserver.RiskPath), bodies(env.Castle, castleserver.FilterPath), bodies(env.Castle, castleserver.LogPath)
	if got := findBody(risk, `"id":"u1"`); len(got) != 1 || !strings.Contains(got[0], `"type":"$login"`) || !strings.Contains(got[0], `"status":"$succeeded"`) {
		t.Errorf("fresh login on /v1/risk: %v", got)
	}
	if got := findBody(risk, `"id":"u7"`); len(got) != 1 || !strings.Contains(got[0], `"type":"$login"`) {
		t.Errorf("EVENT_MAP's Signed In on /v1/risk: %v", got)
	}
	if len(filter) != 1 || !strings.Contains(filter[0], `"params":{"email":"someone@mailinator.com"}`) || !strings.Contains(filter[0], `"status":"$failed"`) {
		t.Errorf("anonymous failed login on /v1/filter with params.email: %v", filter)
	}
	if got := findBody(logs, `"id":"u3"`); len(got) != 1 || !strings.Contains(got[0], `"type":"$login"`) || !strings.Contains(got[0], `"status":"$succeeded"`) {
		t.Errorf("stale login on /v1/log with type and status: %v", got)
	}
	if got := findBody(logs, `"id":"u4"`); len(got) != 1 || strings.Contains(got[0], "request_token") {
		t.Errorf("refused token: %d on /v1/log (want 1, without the token): %v", len(got), got)
	}
	if got := findBody(logs, `"id":"u5"`); len(got) != 1 || !strings.Contains(got[0], `"type":"$custom"`) {
		t.Errorf("$custom on /v1/log: %v", got)
	}
	if got := findBody(logs, `"id":"u6"`); len(got) != 1 || !strings.Contains(got[0], `"type":"$page"`) {
		t.Errorf("$page on /v1/log: %v", got)
	}
	if len(risk) != 2 || len(logs) != 4 {
		t.Errorf("%d on /v1/risk, %d on /v1/log; want 2 and 4", len(risk), len(logs))
	}
	o, err := harness.Observe(w.reg)
	if err != nil {
		t.Fatal(err)
	}
	if o.Forwarded["track"]+o.Forwarded["page"] != 7 {
		t.Errorf("forwarded %v, want 7", o.Forwarded)
	}

	verdicts, err := env.ReadAll(context.Background(), env.VerdictTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]map[string]any{}
	for _, m := range verdicts {
		var v map[string]any
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("verdict is not JSON: %s", m.Value)
		}
		if strings.Contains(string(m.Value), "request_token") || strings.Contains(string(m.Value), harness.Secret) ||
			strings.Contains(string(m.Value), "Mozilla") || strings.Contains(string(m.Value), "cst1.") {
			t.Errorf("verdict carries a token, the secret or request headers: %s", m.Value)
		}
		keys[string(m.Key)] = v
	}
	if len(verdicts) != 3 || keys["u1"] == nil || keys["a2"] == nil || keys["u7"] == nil {
		t.Fatalf("verdicts keyed %v, want u1, a2 (anonymous id) and u7", mapKeys(keys))
	}
	u1 := keys["u1"]
	if u1["message_id"] != "login-ok" || u1["endpoint"] != "risk" || u1["user_id"] != "u1" {
		t.Errorf("u1's verdict: %v", u1)
	}
	if ev, _ := u1["event"].(map[string]any); ev["type"] != "$login" || ev["status"] != "$succeeded" {
		t.Errorf("u1's verdict event: %v", u1["event"])
	}
	if p, _ := u1["policy"].(map[string]any); p["action"] == nil || p["action"] == "" {
		t.Errorf("u1's verdict has no policy action: %v", u1)
	}
	if src, _ := u1["source"].(map[string]any); src["topic"] != env.Topic {
		t.Errorf("u1's verdict source: %v", u1["source"])
	}
	if a2 := keys["a2"]; a2["endpoint"] != "filter" || a2["anonymous_id"] != "a2" {
		t.Errorf("a2's verdict: %v", a2)
	}
	if sig, _ := keys["a2"]["signals"].([]any); !containsAny(sig, "disposable_email") {
		t.Errorf("a2's verdict signals %v, want disposable_email (mailinator)", sig)
	}

	// A replay of the same records scores nothing: history goes to /v1/log.
	env.Castle.Reset()
	file := filepath.Join(t.TempDir(), "history.ndjson")
	var b strings.Builder
	for _, r := range recs {
		b.Write(r.Value)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Config(map[string]string{"CASTLE_SCORING": "on", "VERDICT_TOPIC": env.VerdictTopic, "EVENT_MAP": mapFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Execute(context.Background(), replay.Settings{Config: cfg, Sources: []string{file}, Progress: "off"},
		replay.Options{Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if r, f := len(env.Castle.AcceptedOn(castleserver.RiskPath)), len(env.Castle.AcceptedOn(castleserver.FilterPath)); r+f != 0 {
		t.Errorf("replay scored %d events on /v1/risk and %d on /v1/filter", r, f)
	}
	if n := len(env.Castle.AcceptedOn(castleserver.LogPath)); n != 7 {
		t.Errorf("replay sent %d events to /v1/log, want 7", n)
	}
}

func mapKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func containsAny(l []any, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
