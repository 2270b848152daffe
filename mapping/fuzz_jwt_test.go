package mapping_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/mapping"
)

// FuzzUserJWT feeds arbitrary Secure Mode tokens through the whole mapping
// of a browser track event. Whatever the token, the event is forwarded only
// if the token is an HS256 JWT signed with the API secret and valid at the
// event's time (checked here independently of the mapper), and it is
// otherwise dead-lettered as user_jwt_invalid; the secret never appears in
// a reason's detail. Seeds: every token of the golden cases (valid, alg
// none, RS256/ES256, key confusion, other secret, tampered, expired, future,
// oversized).
func FuzzUserJWT(f *testing.F) {
	files, _ := filepath.Glob("testdata/jwt-*.segment.json")
	files = append(files, "testdata/seq-identify-jwt-then-page.segment.json")
	var valid, invalid int
	for _, in := range files {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		for _, tok := range userJWTs(b) {
			f.Add(tok)
			if verifies(tok) {
				valid++
			} else {
				invalid++
			}
		}
	}
	if valid == 0 || invalid < 11 {
		f.Fatalf("seed tokens: %d valid, %d invalid; the golden cases should give both", valid, invalid)
	}
	f.Add("e30.e30.")
	f.Add("...")
	f.Fuzz(func(t *testing.T, token string) {
		msg, err := json.Marshal(map[string]any{
			"type": "track", "messageId": "fuzz-1", "userId": "u1", "event": "E", "channel": "client",
			"context":      map[string]any{"library": map[string]any{"name": "analytics.js"}},
			"integrations": map[string]any{"Castle": map[string]any{"userJwt": token}},
		})
		if err != nil {
			t.Skip() // not representable as a JSON string
		}
		res := goldenMapper().Map(nil, msg, goldenNow, nil)
		if len(res) != 1 {
			t.Fatalf("%d results for one message", len(res))
		}
		r := res[0]
		if strings.Contains(r.Detail, goldenSecret) {
			t.Fatalf("detail %q contains the secret", r.Detail)
		}
		if token == "" {
			return // no token: Secure Mode does not apply
		}
		ok := verifies(token)
		switch {
		case ok && r.Action != mapping.Forward:
			t.Fatalf("valid token: %v %s (%s)", r.Action, r.Reason, r.Detail)
		case !ok && (r.Action != mapping.DeadLetter || r.Reason != mapping.ReasonUserJWTInvalid):
			t.Fatalf("token that does not verify: %v %s, want a %s dead letter", r.Action, r.Reason, mapping.ReasonUserJWTInvalid)
		}
	})
}

// verifies is the oracle: the token is at most MaxTokenBytes, HS256, signed
// with the golden secret, valid at goldenNow with 30 s of leeway, has no
// crit header and a payload that is a JSON object.
func verifies(token string) bool {
	if len(token) > mapping.MaxTokenBytes {
		return false
	}
	if parts := strings.Split(token, "."); len(parts) == 3 {
		var header map[string]json.RawMessage
		h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
		p, err2 := base64.RawURLEncoding.DecodeString(parts[1])
		if err1 != nil || err2 != nil || json.Unmarshal(h, &header) != nil || header["crit"] != nil {
			return false
		}
		if p = bytes.TrimLeft(p, " \t\r\n"); len(p) == 0 || p[0] != '{' {
			return false
		}
	}
	_, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(goldenSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithTimeFunc(func() time.Time { return goldenNow }),
		jwt.WithLeeway(30*time.Second))
	return err == nil
}

// userJWTs returns the integrations.Castle.userJwt strings of a message or
// of each message of a batch envelope.
func userJWTs(raw []byte) []string {
	type msg struct {
		Integrations struct {
			Castle struct {
				UserJWT string `json:"userJwt"`
			}
		}
		Batch []json.RawMessage
	}
	var m msg
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []string
	if m.Integrations.Castle.UserJWT != "" {
		out = append(out, m.Integrations.Castle.UserJWT)
	}
	for _, b := range m.Batch {
		out = append(out, userJWTs(b)...)
	}
	return out
}
