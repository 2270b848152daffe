package mapping_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/mapping"
)

var (
	update = flag.Bool("update", false, "rewrite the expected testdata/*.castle.json files")
	gen    = flag.Bool("gen", false, "rewrite the testdata/*.segment.json inputs from the cases table")
)

const goldenSecret = "golden-secret"

var goldenNow = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

func goldenMapper() *mapping.Mapper { return goldenMapperFor(mapping.Config{}) }

func goldenMapperFor(cfg mapping.Config) *mapping.Mapper {
	cfg.Secret, cfg.Version = []byte(goldenSecret), "test"
	return mapping.New(cfg)
}

// session maps records one after the other as the pipeline does: what an
// identify says of a user is kept for that user's later records.
type session struct {
	m     *mapping.Mapper
	users *mapping.Users
}

func newSession(m *mapping.Mapper) *session { return &session{m: m, users: mapping.NewUsers(1000)} }

func (s *session) Map(rec []byte, now time.Time) []mapping.Result {
	res := s.m.Map(nil, rec, now, s.users)
	for _, r := range res {
		if r.Action == mapping.Identified {
			s.users.Put(r.Identity)
		}
	}
	return res
}

// caseConfig is the configuration a golden case runs with, by its name:
// one that starts with "acceptmobile-" accepts mobile messages, one that
// starts with "eventmap-" maps names by testdata/event-map.example.yaml.
func caseConfig(t *testing.T, name string) mapping.Config {
	t.Helper()
	var cfg mapping.Config
	if strings.HasPrefix(name, "acceptmobile-") {
		cfg.AcceptMobile = true
	}
	if strings.HasPrefix(name, "eventmap-") {
		cfg.Events = exampleEventMap(t)
	}
	return cfg
}

func exampleEventMap(t testing.TB) mapping.EventMap {
	t.Helper()
	b, err := os.ReadFile("testdata/event-map.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	em, err := mapping.ParseEventMap(b)
	if err != nil {
		t.Fatalf("the example EVENT_MAP: %v", err)
	}
	return em
}

// summary is the golden form of one Result.
type summary struct {
	Action    string          `json:"action"`
	Reason    string          `json:"reason,omitempty"`
	Detail    string          `json:"detail,omitempty"`
	MessageID string          `json:"messageId,omitempty"`
	Type      string          `json:"type,omitempty"`
	Adjusted  string          `json:"adjusted,omitempty"`
	Castle    json.RawMessage `json:"castle,omitempty"` // the /v1/log body
	// A scorable event: where it is scored, that body, and the /v1/log
	// body of a fallback (no request token).
	Scoring  string          `json:"scoring,omitempty"`
	Scored   json.RawMessage `json:"scored,omitempty"`
	Fallback json.RawMessage `json:"fallback,omitempty"`
}

var actionNames = map[mapping.Action]string{mapping.Forward: "forward", mapping.Identified: "identified", mapping.Drop: "drop", mapping.DeadLetter: "dead_letter"}

// isSeq: a case whose name starts with "seq-" or holds "-seq-" is a
// sequence of records, one a line.
func isSeq(name string) bool {
	return strings.HasPrefix(name, "seq-") || strings.Contains(name, "-seq-")
}

// records splits a case input: a sequence case holds one record per line,
// processed in order (identify, then page...); others are one record.
func records(name string, b []byte) [][]byte {
	if isSeq(name) {
		var out [][]byte
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				out = append(out, l)
			}
		}
		return out
	}
	return [][]byte{b}
}

func TestGolden(t *testing.T) {
	if *gen {
		writeInputs(t)
	}
	files, err := filepath.Glob("testdata/*.segment.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("%d golden cases, want at least 40", len(files))
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".segment.json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			m := newSession(goldenMapperFor(caseConfig(t, name)))
			var out []summary
			for _, rec := range records(name, raw) {
				for _, r := range m.Map(rec, goldenNow) {
					s := summary{Action: actionNames[r.Action], Reason: string(r.Reason), Detail: r.Detail, MessageID: r.MessageID, Type: r.Type}
					if r.Adjusted != 0 {
						s.Adjusted = r.Adjusted.String()
					}
					if r.Action == mapping.Forward {
						s.Castle = validBody(t, r.Event.AppendJSON(nil))
						if ep := r.Event.Scoring(); ep != mapping.Log {
							s.Scoring = ep.String()
							s.Scored = validBody(t, r.Event.AppendBody(nil, ep, true))
							s.Fallback = validBody(t, r.Event.AppendBody(nil, mapping.Log, false))
						}
					}
					out = append(out, s)
				}
			}
			got, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(in, ".segment.json") + ".castle.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./mapping -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("mapping of %s differs from %s:\n got %s\nwant %s", in, golden, got, want)
			}
		})
	}
}

func validBody(t *testing.T, body []byte) json.RawMessage {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("invalid Castle JSON: %s", body)
	}
	return body
}

// The cases. {{NAME}} placeholders are replaced with tokens from tokens().
var cases = map[string]string{
	"page-analyticsjs": `{"type":"page","messageId":"ajs-1","userId":"u1","anonymousId":"a1","channel":"client","name":"Login","category":"Account",
	 "properties":{"path":"/login","url":"https://shop.example/login","title":"Sign in","referrer":"https://www.google.com/","search":"?next=%2F"},
	 "context":{"ip":"81.2.69.142","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","locale":"en-US","library":{"name":"analytics.js","version":"4.1.0"},
	 "page":{"path":"/login","referrer":"https://www.google.com/","title":"Sign in","url":"https://shop.example/login","search":"?next=%2F"}},
	 "timestamp":"2025-01-15T11:59:00.123Z","originalTimestamp":"2025-01-15T11:58:59.900Z","sentAt":"2025-01-15T11:59:00.000Z","receivedAt":"2025-01-15T11:59:00.223Z"}`,
	"page-context-page-only":        `{"type":"page","messageId":"ajs-2","userId":"u1","channel":"browser","context":{"ip":"81.2.69.142","library":{"name":"analytics.js"},"page":{"url":"https://shop.example/a","path":"/a","title":"A","referrer":"","search":""}},"timestamp":"2025-01-15T11:00:00Z"}`,
	"page-properties-win":           `{"type":"page","messageId":"ajs-3","anonymousId":"a3","channel":"client","name":"Home","properties":{"url":"https://override.example/","name":"explicit"},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"},"page":{"url":"https://shop.example/","path":"/"}}}`,
	"page-anonymous":                `{"type":"page","messageId":"ajs-4","anonymousId":"anon-only","channel":"client","context":{"ip":"2a00:1450:4001:80b::200e","library":{"name":"analytics.js"}}}`,
	"page-private-ip":               `{"type":"page","messageId":"ajs-5","userId":"u5","channel":"client","context":{"ip":"192.168.1.20","userAgent":"UA","library":{"name":"analytics.js"}}}`,
	"page-no-ip":                    `{"type":"page","messageId":"ajs-6","userId":"u6","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"page-loopback-ip":              `{"type":"page","messageId":"ajs-7","userId":"u7","channel":"client","context":{"ip":"127.0.0.1","library":{"name":"analytics.js"}}}`,
	"track-basic":                   `{"type":"track","messageId":"ajs-10","userId":"u10","event":"Order Completed","channel":"client","properties":{"order_id":"o-1","total":99.5,"currency":"EUR","coupon":null,"first":true},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}},"timestamp":"2025-01-15T11:59:00Z"}`,
	"track-nested-properties":       `{"type":"track","messageId":"ajs-11","userId":"u11","event":"Cart Viewed","channel":"client","properties":{"cart":{"id":"c1","totals":{"net":10,"gross":12.1}},"products":[{"sku":"A","qty":1},{"sku":"B","qty":2}],"tags":["x","y"]},"context":{"library":{"name":"analytics.js"}}}`,
	"track-deeply-nested":           `{"type":"track","messageId":"ajs-12","userId":"u12","event":"Deep","channel":"client","properties":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":"deep"}}}}}}}},"context":{"library":{"name":"analytics.js"}}}`,
	"track-unicode":                 `{"type":"track","messageId":"ajs-13","userId":"ユーザー13","event":"Ordre passé ✓","channel":"client","properties":{"ville":"Zürich","emoji":"🛒🎉","escaped":"tab\there \"quoted\" \u00e9 \ud83d\ude00","line\nkey":"v"},"context":{"ip":"81.2.69.142","locale":"fr-CH","library":{"name":"analytics.js"}}}`,
	"track-long-event-name":         `{"type":"track","messageId":"ajs-14","userId":"u14","event":"` + strings.Repeat("Long", 300) + `","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"track-long-property-value":     `{"type":"track","messageId":"ajs-15","userId":"u15","event":"Long Value","channel":"client","properties":{"v":"` + strings.Repeat("é", 1500) + `"},"context":{"library":{"name":"analytics.js"}}}`,
	"track-huge-property-map":       `{"type":"track","messageId":"ajs-16","userId":"u16","event":"Huge","channel":"client","properties":{` + hugeProps(300) + `},"context":{"library":{"name":"analytics.js"}}}`,
	"track-no-event-name":           `{"type":"track","messageId":"ajs-17","userId":"u17","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"track-number-userid":           `{"type":"track","messageId":"ajs-18","userId":12345,"event":"Numeric User","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"track-properties-not-object":   `{"type":"track","messageId":"ajs-19","userId":"u19","event":"Odd","channel":"client","properties":"a string","context":{"library":{"name":"analytics.js"}}}`,
	"track-wrong-field-types":       `{"type":"track","messageId":["not","a","string"],"userId":{"id":1},"event":42,"channel":"client","timestamp":12345,"context":{"ip":5,"library":{"name":"analytics.js"}}}`,
	"track-invalid-utf8":            "{\"type\":\"track\",\"messageId\":\"ajs-20\",\"userId\":\"u20\",\"event\":\"Bad \xff\xfe bytes\",\"channel\":\"client\",\"properties\":{\"k\":\"v\xc3\"},\"context\":{\"library\":{\"name\":\"analytics.js\"}}}",
	"track-time-from-sent-at":       `{"type":"track","messageId":"ajs-21","userId":"u21","event":"Skewed","channel":"client","originalTimestamp":"2025-01-15T10:00:00.000Z","sentAt":"2025-01-15T10:00:05.000Z","receivedAt":"2025-01-15T11:00:05.000Z","context":{"library":{"name":"analytics.js"}}}`,
	"track-time-unpadded":           `{"type":"track","messageId":"ajs-22","userId":"u22","event":"Unpadded","channel":"client","timestamp":"2015-2-02T00:30:08.276Z","context":{"library":{"name":"analytics.js"}}}`,
	"track-time-unparseable":        `{"type":"track","messageId":"ajs-23","userId":"u23","event":"Bad Time","channel":"client","timestamp":"yesterday","context":{"library":{"name":"analytics.js"}}}`,
	"track-request-token-fresh":     `{"type":"track","messageId":"ajs-24","userId":"u24","event":"Login","channel":"client","timestamp":"2025-01-15T11:59:30Z","integrations":{"Castle":{"requestToken":"tok-fresh"}},"context":{"library":{"name":"analytics.js"}}}`,
	"track-request-token-stale":     `{"type":"track","messageId":"ajs-25","userId":"u25","event":"Login","channel":"client","timestamp":"2025-01-15T11:00:00Z","integrations":{"Castle":{"requestToken":"tok-stale"}},"context":{"library":{"name":"analytics.js"}}}`,
	"track-context-traits":          `{"type":"track","messageId":"ajs-26","userId":"u26","event":"With Traits","channel":"client","context":{"traits":{"email":"u26@example.com","name":"U 26","plan":"pro"},"library":{"name":"analytics.js"}}}`,
	"track-no-headers-cookie":       `{"type":"track","messageId":"ajs-27","userId":"u27","event":"Headers","channel":"client","context":{"ip":"81.2.69.142","userAgent":"UA","headers":{"Cookie":"session=secret","Authorization":"Bearer secret"},"library":{"name":"analytics.js"}}}`,
	"malformed-not-json":            `{"type":"page",`,
	"malformed-array":               `[{"type":"page"}]`,
	"malformed-string":              `"just a string"`,
	"malformed-no-type":             `{"messageId":"m-1","event":"No Type"}`,
	"malformed-type-not-string":     `{"type":7,"messageId":"m-2"}`,
	"malformed-deep-nesting":        `{"type":"track","messageId":"m-3","properties":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat(`}`, 10001) + `}`,
	"unsupported-screen":            `{"type":"screen","messageId":"s-1","userId":"u","channel":"mobile","context":{"library":{"name":"analytics-ios"}}}`,
	"unsupported-group":             `{"type":"group","messageId":"g-1","userId":"u","groupId":"g","channel":"client"}`,
	"unsupported-alias":             `{"type":"alias","messageId":"al-1","userId":"u","previousId":"p"}`,
	"server-channel":                `{"type":"track","messageId":"srv-1","userId":"u","event":"Invoice Paid","channel":"server","context":{"library":{"name":"analytics.js"}}}`,
	"server-library-node":           `{"type":"track","messageId":"srv-2","userId":"u","event":"Invoice Paid","context":{"library":{"name":"@segment/analytics-node","version":"2.1.0"}}}`,
	"server-library-go":             `{"type":"page","messageId":"srv-3","userId":"u","context":{"library":{"name":"analytics-go","version":"3.3.0"}}}`,
	"server-http-api":               `{"type":"track","messageId":"srv-4","userId":"u","event":"From curl"}`,
	"client-channel-wins":           `{"type":"track","messageId":"cli-1","userId":"u","event":"Client with node lib","channel":"client","context":{"library":{"name":"analytics-node"}}}`,
	"mobile-dropped":                `{"type":"track","messageId":"mob-1","userId":"u","event":"Tap","channel":"mobile","context":{"library":{"name":"analytics-kotlin"}}}`,
	"disabled-castle-false":         `{"type":"track","messageId":"dis-1","userId":"u","event":"E","channel":"client","integrations":{"Castle":false},"context":{"library":{"name":"analytics.js"}}}`,
	"disabled-castle-lowercase":     `{"type":"page","messageId":"dis-2","userId":"u","channel":"client","integrations":{"castle":false},"context":{"library":{"name":"analytics.js"}}}`,
	"disabled-all-false":            `{"type":"track","messageId":"dis-3","userId":"u","event":"E","channel":"client","integrations":{"All":false,"Mixpanel":true},"context":{"library":{"name":"analytics.js"}}}`,
	"enabled-all-false-castle-true": `{"type":"track","messageId":"en-1","userId":"u","event":"E","channel":"client","integrations":{"All":false,"Castle":true},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-valid-overrides-user":      `{"type":"track","messageId":"jwt-1","userId":"claimed-by-client","event":"Secure","channel":"client","integrations":{"Castle":{"userJwt":"{{VALID}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-in-context":                `{"type":"page","messageId":"jwt-2","channel":"client","context":{"Castle":{"userJwt":"{{VALID}}"},"library":{"name":"analytics-next"}}}`,
	"jwt-alg-none":                  `{"type":"track","messageId":"jwt-3","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{NONE}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-rs256":                     `{"type":"track","messageId":"jwt-4","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{RS256}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-es256":                     `{"type":"track","messageId":"jwt-5","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{ES256}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-key-confusion":             `{"type":"track","messageId":"jwt-6","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{CONFUSED}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-other-secret":              `{"type":"track","messageId":"jwt-7","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{OTHER}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-tampered":                  `{"type":"track","messageId":"jwt-8","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{TAMPERED}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-expired":                   `{"type":"track","messageId":"jwt-9","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{EXPIRED}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-future-nbf":                `{"type":"track","messageId":"jwt-10","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{FUTURE}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-garbage":                   `{"type":"track","messageId":"jwt-11","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"not.a.jwt"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-oversized":                 `{"type":"track","messageId":"jwt-12","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{HUGE}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-crit-header":               `{"type":"track","messageId":"jwt-14","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{CRIT}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-payload-null":              `{"type":"track","messageId":"jwt-15","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{NULLBODY}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-payload-array":             `{"type":"track","messageId":"jwt-16","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{ARRBODY}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"jwt-not-a-string":              `{"type":"track","messageId":"jwt-17","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":{"token":"x"}}},"context":{"Castle":{"requestToken":"t"},"library":{"name":"analytics.js"}}}`,
	"jwt-hs512":                     `{"type":"track","messageId":"jwt-13","userId":"u","event":"E","channel":"client","integrations":{"Castle":{"userJwt":"{{HS512}}"}},"context":{"library":{"name":"analytics.js"}}}`,
	"envelope-browser": `{"batch":[{"type":"page","messageId":"env-1","userId":"ue","name":"Home"},{"type":"track","messageId":"env-2","userId":"ue","event":"Clicked","context":{"ip":"81.2.69.142"}},42,{"messageId":"env-3"},{"type":"track","messageId":"env-4","userId":"ue","event":"Off","integrations":{"Castle":true}}],
	 "context":{"library":{"name":"analytics.js"},"ip":"8.8.8.8"},"integrations":{"All":false},"sentAt":"2025-01-15T11:59:00Z"}`,
	"envelope-server":          `{"batch":[{"type":"track","messageId":"envs-1","userId":"a","event":"Paid"},{"type":"identify","messageId":"envs-2","userId":"b","traits":{"email":"b@example.com"}}],"context":{"library":{"name":"analytics-go","version":"3.3.0"}},"messageId":"batch-1","sentAt":"2025-01-15T11:59:00Z"}`,
	"envelope-batch-not-array": `{"batch":{"type":"page"},"context":{}}`,
	// One item nested 5,000 levels deep between two good ones: only it is
	// dead-lettered.
	"envelope-deep-item": `{"batch":[{"type":"page","messageId":"deep-0","userId":"ud","name":"Before"},{"type":"track","messageId":"deep-1","userId":"ud","event":"Deep","properties":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `},{"type":"track","messageId":"deep-2","userId":"ud","event":"After"}],
	 "context":{"library":{"name":"analytics.js"},"ip":"81.2.69.142"},"sentAt":"2025-01-15T11:59:00Z"}`,
	// The envelope's own context too deep: nothing can be judged alone.
	"envelope-deep-context": `{"batch":[{"type":"page","messageId":"deepc-0","userId":"ud","name":"Before"}],"context":{"library":{"name":"analytics.js"},"x":` + strings.Repeat(`[`, 1100) + strings.Repeat(`]`, 1100) + `}}`,
	"identify-only":         `{"type":"identify","messageId":"id-1","userId":"u-id","traits":{"email":"u@example.com"},"channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"seq-identify-then-track": `{"type":"identify","messageId":"sq-1","userId":"u-seq","channel":"client","traits":{"email":"seq@example.com","name":"Seq User","phone":"+41 44 000 00 00","createdAt":"2024-03-01T10:00:00Z","plan":"gold","address":{"street":"Bahnhofstrasse 1","city":"Zürich","country":"CH","postalCode":"8001"}},"context":{"library":{"name":"analytics.js"}}}
{"type":"track","messageId":"sq-2","userId":"u-seq","event":"After Identify","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"seq-identify-jwt-then-page": `{"type":"identify","messageId":"sq-3","userId":"u-secure","channel":"client","traits":{"email":"x@example.com"},"integrations":{"Castle":{"userJwt":"{{VALID}}"}},"context":{"library":{"name":"analytics.js"}}}
{"type":"page","messageId":"sq-4","userId":"u-secure","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
}

func hugeProps(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"p`)
		b.WriteString(strings.Repeat("0", 3-len(itoa(i))) + itoa(i))
		b.WriteString(`":`)
		b.WriteString(itoa(i))
	}
	return b.String()
}

func itoa(i int) string { return strings.TrimSpace(strings.Replace(jsonNum(i), "\n", "", -1)) }

func jsonNum(i int) string { b, _ := json.Marshal(i); return string(b) }

func sign(t *testing.T, m jwt.SigningMethod, c jwt.MapClaims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tokens(t *testing.T) map[string]string {
	t.Helper()
	now := goldenNow
	claims := func() jwt.MapClaims {
		return jwt.MapClaims{"id": "secure-user-1", "email": "secure@example.com", "plan": "enterprise", "iat": now.Add(-time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, jwt.SigningMethodHS256, claims(), []byte(goldenSecret))
	parts := strings.Split(valid, ".")
	other := strings.Split(sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"id": "admin", "exp": now.Add(time.Hour).Unix()}, []byte("x")), ".")
	expired := claims()
	expired["exp"] = now.Add(-time.Hour).Unix()
	future := claims()
	future["nbf"] = now.Add(time.Hour).Unix()
	huge := claims()
	huge["pad"] = strings.Repeat("x", 9000)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// Key confusion: an RS256 header, signed with HMAC-SHA256 using the
	// secret as the key (what a verifier trusting the header would check).
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
	confused.Header["alg"] = "RS256"
	cs, err := confused.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jwt.SigningMethodHS256.Sign(cs, []byte(goldenSecret))
	if err != nil {
		t.Fatal(err)
	}
	// Signed with the right secret, but a crit header the verifier does not
	// understand, or a payload that is not an object.
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
	crit.Header["crit"] = []string{"x-castle-bound"}
	crit.Header["x-castle-bound"] = true
	critSigned, err := crit.SignedString([]byte(goldenSecret))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"CRIT":     critSigned,
		"NULLBODY": signRaw(t, `{"alg":"HS256","typ":"JWT"}`, `null`),
		"ARRBODY":  signRaw(t, `{"alg":"HS256","typ":"JWT"}`, `[{"id":"secure-user-1"}]`),
		"VALID":    valid,
		"NONE":     none,
		"RS256":    sign(t, jwt.SigningMethodRS256, claims(), rsaKey),
		"ES256":    sign(t, jwt.SigningMethodES256, claims(), ecKey),
		"CONFUSED": cs + "." + base64.RawURLEncoding.EncodeToString(sig),
		"OTHER":    sign(t, jwt.SigningMethodHS256, claims(), []byte("another-secret")),
		"TAMPERED": parts[0] + "." + other[1] + "." + parts[2],
		"EXPIRED":  sign(t, jwt.SigningMethodHS256, expired, []byte(goldenSecret)),
		"FUTURE":   sign(t, jwt.SigningMethodHS256, future, []byte(goldenSecret)),
		"HUGE":     sign(t, jwt.SigningMethodHS256, huge, []byte(goldenSecret)),
		"HS512":    sign(t, jwt.SigningMethodHS512, claims(), []byte(goldenSecret)),
	}
}

// signRaw signs a header and payload given as JSON text, with HS256 under
// the golden secret.
func signRaw(t testing.TB, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(s, []byte(goldenSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s + "." + enc.EncodeToString(sig)
}

func writeInputs(t *testing.T) {
	tok := tokens(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range cases {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		in := cases[name]
		path := filepath.Join("testdata", name+".segment.json")
		if _, err := os.Stat(path); err == nil && (strings.Contains(in, "{{RS256}}") || strings.Contains(in, "{{ES256}}")) {
			continue // signed with a fresh random key each time: rewriting would only churn
		}
		for k, v := range tok {
			in = strings.ReplaceAll(in, "{{"+k+"}}", v)
		}
		if !isSeq(name) {
			in = strings.ReplaceAll(in, "\n\t ", "")
		}
		if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A token that verified once (and is cached) still expires.
func TestVerifiedTokenStillExpires(t *testing.T) {
	tok := tokens(t)["VALID"]
	m := goldenMapper()
	msg := func(id string) []byte {
		return []byte(`{"type":"track","event":"E","channel":"client","messageId":"` + id + `","integrations":{"Castle":{"userJwt":"` + tok + `"}},"context":{"library":{"name":"analytics.js"}}}`)
	}
	if r := m.Map(nil, msg("t1"), goldenNow, nil)[0]; r.Action != mapping.Forward || r.Event.UserID() != "secure-user-1" {
		t.Fatalf("valid token: %+v", r)
	}
	if r := m.Map(nil, msg("t2"), goldenNow.Add(3*time.Hour), nil)[0]; r.Action != mapping.DeadLetter || r.Reason != mapping.ReasonUserJWTInvalid {
		t.Fatalf("token past exp: action %d reason %q", r.Action, r.Reason)
	}
	if r := m.Map(nil, msg("t3"), goldenNow.Add(time.Minute), nil)[0]; r.Action != mapping.Forward {
		t.Fatalf("valid token again: %+v", r.Detail)
	}
}
