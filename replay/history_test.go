package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/replay"
)

// A replay of history checks a userJwt's exp and nbf at the event's time:
// the tokens of last month's archive were valid when used and have
// expired since. Checked at now, every Secure Mode event was dead-lettered.
// A token already expired at its event's time still is.
func TestReplayChecksTokensAtTheEventsTime(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	token := func(exp time.Time) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "u1", "exp": exp.Unix()}).SignedString([]byte(harness.Secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var lines bytes.Buffer
	for _, c := range []struct {
		id  string
		exp time.Time
	}{{"valid-then", at.Add(time.Hour)}, {"expired-then", at.Add(-time.Hour)}} {
		fmt.Fprintf(&lines, `{"type":"track","event":"E","channel":"client","messageId":%q,"userId":"u1","timestamp":%q,`+
			`"integrations":{"Castle":{"userJwt":%q}},"properties":{"trace_id":%q},"context":{"library":{"name":"analytics.js"}}}`+"\n",
			c.id, at.Format(time.RFC3339), token(c.exp), c.id)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "history.ndjson"), lines.Bytes())
	srv, url := castleServer(t, 0)
	s := settings(t, url, dir)
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	sum, err := replay.Execute(context.Background(), s, replay.Options{Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range srv.Accepted() {
		if bytes.Contains(r.Body, []byte(`"valid-then"`)) {
			got["valid-then"]++
		}
		if bytes.Contains(r.Body, []byte(`"expired-then"`)) {
			got["expired-then"]++
		}
	}
	if got["valid-then"] != 1 || got["expired-then"] != 0 {
		t.Errorf("Castle accepted %v; want the token valid at its event's time once, the one expired then not", got)
	}
	if sum.DeadLettered["user_jwt_invalid"] != 1 {
		t.Errorf("dead-lettered %v; want the token expired at its event's time", sum.DeadLettered)
	}
}

// A dry run without the secret cannot verify any userJwt: its summary
// says so, rather than let every Secure Mode message pass for forged.
func TestDryRunWithoutTheSecretSaysWhyTokensFail(t *testing.T) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "u1"}).SignedString([]byte(harness.Secret))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "in.ndjson"), []byte(`{"type":"track","event":"E","channel":"client","messageId":"m1","userId":"u1",`+
		`"integrations":{"Castle":{"userJwt":"`+tok+`"}},"context":{"library":{"name":"analytics.js"}}}`+"\n"))
	for _, withSecret := range []bool{false, true} {
		env := map[string]string{}
		if withSecret {
			env["CASTLE_API_SECRET"] = harness.Secret
		}
		out, errOut := dryRunDir(t, env, dir)
		hinted := strings.Contains(errOut, "Without CASTLE_API_SECRET")
		if hinted == withSecret {
			t.Errorf("secret given %v: summary hints at the missing secret %v:\n%s", withSecret, hinted, errOut)
		}
		if sent := strings.Contains(out, `"u1"`); sent != withSecret {
			t.Errorf("secret given %v: the event is in the output %v", withSecret, sent)
		}
	}
}

// An endpoint setting that does not parse fails at start naming it, and
// never quotes it: it may carry a password.
func TestS3EndpointThatDoesNotParse(t *testing.T) {
	for _, v := range []string{"http://euser:EPPASS@[::1", "euser:EPPASS@host:9000", "ftp://h", "http://euser:EPPASS@127.0.0.1:1/p?x=1",
		"http://127.0.0.1:1/?X-Amz-Signature=EPPASS", "http://127.0.0.1:1/p#EPPASS", "ftp://h/?token=EPPASS"} {
		t.Setenv("AWS_ENDPOINT_URL", v)
		_, err := replay.NewS3Client(context.Background(), nil)
		var se *replay.SettingError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL") || strings.Contains(err.Error(), "EPPASS") {
			t.Errorf("AWS_ENDPOINT_URL=%s: %v, want a setting error naming it, without the password", v, err)
		}
	}
}

// A checkpoint of the previous format resumes: its finished units stay
// finished, and its files in progress, whose records after a damaged gzip
// member were numbered otherwise, are read again from their start rather
// than resumed at an index that may skip records. A Kafka replay's units
// in progress keep their offsets.
func TestCheckpointOfThePreviousFormat(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		replay   string
		keepOpen bool
	}{{"sources=/archive", false}, {"sources=kafka:segment since=2026-01-01T00:00:00Z", true}} {
		path := filepath.Join(dir, "cp.json")
		write(t, path, []byte(`{"version":2,"replay":"`+c.replay+`","done":1,"last":"a",`+
			`"after":[{"seq":2,"name":"c"}],"open":[{"seq":1,"name":"b","next":4,"done":[[6,9]]}]}`))
		cp, err := replay.LoadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Done != 1 || cp.Last != "a" || len(cp.After) != 1 || (len(cp.Open) == 1) != c.keepOpen {
			t.Errorf("%s: %+v; want done 1, one after, open kept %v", c.replay, cp, c.keepOpen)
		}
	}
	write(t, filepath.Join(dir, "v1.json"), []byte(`{"version":1,"replay":"sources=/archive","done":0}`))
	if _, err := replay.LoadCheckpoint(filepath.Join(dir, "v1.json")); err == nil {
		t.Error("a version 1 checkpoint was read")
	}
}

// A dry run prints each request as it would go to Castle, but never a
// request token: it shows that one would be sent, not its value, as the
// demo's samples do. It hides that token only: a property whose key reads
// like a credential's (cookie, authorization, user_jwt), or a string
// property holding JSON with such a key, is sent as it is and printed as
// it is.
func TestDryRunHidesTheRequestTokenOnly(t *testing.T) {
	const props = `{"cookie":"accepted","authorization":"granted","user_jwt":"none","note":"{\"request_token\":\"as typed\"}"}`
	dir := t.TempDir()
	write(t, filepath.Join(dir, "in.ndjson"), []byte(`{"type":"track","event":"E","channel":"client","messageId":"m1","userId":"u1",`+
		`"timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","integrations":{"Castle":{"requestToken":"cst1.tok-value"}},`+
		`"properties":`+props+`,"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`+"\n"))
	got, _ := dryRunDir(t, nil, dir)
	if strings.Contains(got, "cst1.tok-value") || !strings.Contains(got, `"request_token":"[redacted]"`) {
		t.Errorf("dry run output shows the request token, or not that one is sent:\n%s", got)
	}
	for _, p := range []string{`"cookie":"accepted"`, `"authorization":"granted"`, `"user_jwt":"none"`, `"note":"{\"request_token\":\"as typed\"}"`} {
		if !strings.Contains(got, p) {
			t.Errorf("dry run output lacks %s, which is sent:\n%s", p, got)
		}
	}
}

// dryRunDir runs replay --dry-run over the files in dir with the settings
// env gives, and returns what it wrote to stdout and stderr.
func dryRunDir(t *testing.T, env map[string]string, dir string) (stdout, stderr string) {
	t.Helper()
	cfg, err := harness.ParseConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	s := replay.Settings{Config: cfg, Sources: []string{dir}, Progress: "off", DryRun: true}
	if _, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String()
}
