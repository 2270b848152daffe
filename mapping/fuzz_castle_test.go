package mapping_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/mapping"
)

// FuzzCastleContract: whatever Segment sends, every body the mapping
// forwards is one Castle's documented contract takes, as the
// Castle-compatible server judges it (castleserver's Validate, the checks
// its handler makes). A refused body would be dead-lettered at send time:
// a lost signal. Two records are mapped in turn through one session (an
// identify, then the event it sets the user of), under each golden
// configuration: pages as $page and as $custom, the example EVENT_MAP,
// Secure Mode with the golden secret. Each forwarded event's bodies are
// checked where the sender may send them: /v1/log with and without its
// request token (the fallback), and the scoring endpoint it names.
func FuzzCastleContract(f *testing.F) {
	files, err := filepath.Glob("testdata/*.segment.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range files {
		b, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(in), ".segment.json")
		if recs := records(name, b); len(recs) == 2 {
			f.Add(recs[0], recs[1])
		} else {
			f.Add(b, []byte(nil))
		}
	}
	for _, c := range hostileSeeds(f) {
		f.Add([]byte(c[0]), []byte(c[1]))
	}

	srv, err := castleserver.New(castleserver.Config{Secret: "fuzz", RateLimitOff: true, MaxRecords: 1})
	if err != nil {
		f.Fatal(err)
	}
	events := exampleEventMap(f)
	mappers := []*mapping.Mapper{
		goldenMapperFor(mapping.Config{Events: events}),
		goldenMapperFor(mapping.Config{Events: events, PageType: mapping.PageAsCustom, AcceptMobile: true}),
		goldenMapperFor(mapping.Config{RequireUserJWT: true, VerifyAtEventTime: true}),
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		for _, m := range mappers {
			s := newSession(m)
			for _, rec := range [][]byte{first, second} {
				if rec == nil {
					continue
				}
				for _, r := range s.Map(rec, goldenNow) {
					if r.Action == mapping.Forward {
						checkContract(t, srv, &r.Event)
					}
				}
			}
		}
	})
}

// checkContract fails t for any body of e that srv refuses: the /v1/log
// body with its request token and without (the fallback), and the body
// for the endpoint it is scored on, if any.
func checkContract(t *testing.T, srv *castleserver.Server, e *mapping.Event) {
	t.Helper()
	type send struct {
		ep        mapping.Endpoint
		withToken bool
	}
	sends := []send{{mapping.Log, true}, {mapping.Log, false}}
	if ep := e.Scoring(); ep != mapping.Log {
		sends = append(sends, send{ep, true})
	}
	for _, b := range sends {
		body := e.AppendBody(nil, b.ep, b.withToken)
		if err := srv.Validate(b.ep.Path(), body); err != nil {
			t.Fatalf("%s refuses the body (token %v): %v\n%s", b.ep.Path(), b.withToken, err, body)
		}
	}
}

// hostileSeeds are hand-made pairs of records (the second may be empty):
// invalid UTF-8, lone surrogates, numbers where strings are expected, long
// strings, deep nesting, duplicate keys, nulls, odd ids, IPs, headers and
// integrations, and Secure Mode tokens whose claims have such values.
func hostileSeeds(tb testing.TB) [][2]string {
	const ctx = `"channel":"client","context":{"ip":"81.2.69.142","userAgent":"UA","library":{"name":"analytics.js"}}`
	const tok = `"integrations":{"Castle":{"requestToken":"tok"}},"timestamp":"2025-01-15T11:59:30Z"`
	track := func(fields string) string {
		return `{"type":"track","messageId":"h","userId":"u","event":"E",` + fields + `,` + ctx + `}`
	}
	login := func(fields string) string {
		return `{"type":"track","messageId":"h","userId":"u","event":"$login.succeeded",` + fields + `,` + tok + `,` + ctx + `}`
	}
	identify := func(traits string) string {
		return `{"type":"identify","messageId":"i","userId":"u","channel":"client","traits":` + traits + `,"context":{"library":{"name":"analytics.js"}}}`
	}
	withIP := func(ip string) string {
		return `{"type":"track","messageId":"h","userId":"u","event":"$login.failed","channel":"client",` + tok + `,"context":{"ip":` + ip + `,"library":{"name":"analytics.js"}}}`
	}
	long := strings.Repeat("é", 1100)
	deep := strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100)
	jwtWith := func(claims string) string {
		return signRaw(tb, `{"alg":"HS256","typ":"JWT"}`, `{"id":"j1","exp":1900000000`+claims+`}`)
	}
	secure := func(claims string) string {
		return `{"type":"track","messageId":"h","event":"$login.succeeded","integrations":{"Castle":{"requestToken":"tok","userJwt":"` + jwtWith(claims) + `"}},"timestamp":"2025-01-15T11:59:30Z",` + ctx + `}`
	}
	seeds := [][2]string{
		{"{\"type\":\"track\",\"messageId\":\"\xff\",\"userId\":\"u\xc3\",\"event\":\"\xed\xa0\x80\"," + ctx + "}", ""},
		{track(`"properties":{"\ud800":"\udc00x","k\xff":"\ud83d"}`), ""},
		{`{"type":"track","messageId":"h","userId":"\ud800","event":"\udfff",` + ctx + `}`, ""},
		{track(`"timestamp":1e400,"originalTimestamp":-1,"sentAt":1.5,"receivedAt":"9999-99-99"`), ""},
		{track(`"timestamp":"0000-01-01T00:00:00Z"`), ""},
		{track(`"timestamp":"10000-01-01T00:00:00Z"`), ""},
		{track(`"timestamp":"2025-01-15T11:59:30+14:00"`), ""},
		{track(`"timestamp":"2025-01-15T11:59:30.123456789123Z"`), ""},
		{identify(`{"registeredAt":-62135596801}`), track(`"properties":{}`)},
		{identify(`{"registeredAt":1e300}`), track(`"properties":{}`)},
		{identify(`{"createdAt":253402300800000}`), track(`"properties":{}`)},
		{identify(`{"createdAt":"-1"}`), track(`"properties":{}`)},
		{identify(`{"createdAt":"0000-00-00T00:00:00Z"}`), track(`"properties":{}`)},
		{identify(`{"email":123,"phone":{"n":1},"name":null,"address":{"country":1}}`), track(`"properties":{}`)},
		{identify(`{"address":{"country":"us","city":["x"],"postalCode":8001,"street":null}}`), track(`"properties":{}`)},
		{identify(`{"name":"` + long + `","email":"` + long + `","phone":"` + long + `"}`), track(`"properties":{}`)},
		{identify(`{"address":{"country":"CH","street":"` + long + `"}}`), track(`"properties":{}`)},
		{identify(`{"plan":"` + long + `","n":` + deep + `}`), track(`"properties":{}`)},
		{track(`"properties":{"v":"` + long + `","` + long + `":1}`), ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"` + long + `",` + ctx + `}`, ""},
		{`{"type":"page","messageId":"h","userId":"u","name":"` + long + `",` + ctx + `}`, ""},
		{`{"type":"page","messageId":"h","userId":"u","name":"","properties":{"title":"","url":"` + long + `"},` + ctx + `}`, ""},
		{`{"type":"page","messageId":"h","userId":"u","name":null,"properties":{"title":5},` + ctx + `}`, ""},
		{track(`"properties":` + deep), ""},
		{track(`"properties":{"a":1,"a":{"b":2},"a":[3]}`), ""},
		{`{"type":"track","type":"page","messageId":"h","userId":"u","userId":7,"event":"E",` + ctx + `}`, ""},
		{`{"type":"track","messageId":null,"userId":null,"anonymousId":null,"event":null,"properties":null,"context":null,"integrations":null,"timestamp":null,"channel":"client"}`, ""},
		{`{"type":"track","messageId":"","userId":"","anonymousId":"","event":"",` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":1e400,"event":"E",` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":-0.0,"event":"E",` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":{"id":"u"},"anonymousId":[1],"event":"E",` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"` + long + `","event":"E",` + ctx + `}`, ""},
		{withIP(`"fe80::1%eth0"`), ""},
		{withIP(`"2a00:1450:4001:80b::200e%1"`), ""},
		{withIP(`"::ffff:81.2.69.142"`), ""},
		{withIP(`"81.2.69.142:443"`), ""},
		{withIP(`"[2a00:1450:4001:80b::200e]:443"`), ""},
		{withIP(`" 81.2.69.142 "`), ""},
		{withIP(`"81.2.69.142, 10.0.0.1"`), ""},
		{withIP(`"081.002.069.142"`), ""},
		{withIP(`1358644622`), ""},
		{withIP(`["81.2.69.142"]`), ""},
		{withIP(`"64:ff9b::5102:458e"`), ""},
		{withIP(`"2002:5102:458e::1"`), ""},
		{track(`"properties":{}`) + "", `{"type":"track","messageId":"h2","userId":"u","event":"E","channel":"client","context":{"ip":"81.2.69.142","userAgent":"\u0000\n\r","locale":{"x":1},"page":{"referrer":5},"headers":{"Cookie":"s","X":["a"]},"library":{"name":"analytics.js"}}}`},
		{`{"type":"track","messageId":"h","userId":"u","event":"E","channel":"client","context":{"ip":"81.2.69.142","userAgent":"` + long + `","locale":"` + long + `","library":{"name":"analytics.js"}}}`, ""},
		{track(`"integrations":{"Castle":{"requestToken":5}},"timestamp":"2025-01-15T11:59:30Z"`), ""},
		{track(`"integrations":{"Castle":{"requestToken":""},"castle":{"requestToken":"b"}},"timestamp":"2025-01-15T11:59:30Z"`), ""},
		{track(`"integrations":[1,2]`), ""},
		{track(`"integrations":{"All":"false","Castle":{}}`), ""},
		{login(`"properties":{"email":5,"username":{"a":1},"phone":"` + long + `"}`), ""},
		{login(`"properties":{"email":"","username":null,"phone":"\ud800"}`), ""},
		{`{"type":"track","messageId":"h","anonymousId":"a","event":"$login.failed","properties":{"email":"` + long + `"},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"id":5,"type":"$purchase","amount":{"type":"$fiat","value":9.99}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"id":"` + long + `","type":"$sale","amount":{"type":"$crypto","value":"` + long + `","currency":null}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","billing_address":{"country_code":"us"},"card":{"exp_month":12,"exp_year":2030.0,"network":"$visa"}},"shipping_address":{"country_code":"d\u0065","city":5},"merchant":{"category":{"code":"3000"},"address":{"country_code":"FR","country_code":"France"}}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"id":"t1","type":"$purchase","amount":{"currency":"usd","type":"$fiat","currency":"\u0065ur","value":1}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"id":"t1","type":"$sale","payment_method":{"type":"$sepa","card":{"exp_month":1e400}},"shipping_address":{"country_code":"` + long + `"},"merchant":null}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"amount":null,"id":"t1","type":"$purchase","payment_method":{"card":null,"type":"$card","billing_address" : null },"shipping_address":null,"merchant":{"category":null,"address":null}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"amount":{"type":"$gift"},"id":"t1","type":"$sale","amou\u006et":null,"merchant":null,"merchant":{"id":"m","c\u0061tegory":{"code":1},"category":null},"payment_method":{"type":"$card"},"payment_method":null}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$profile_update.succeeded","properties":{"changeset":{"email":{"from":null,"to":5},"name":{"changed":"yes"},"phone":{"from":"a","to":"b","changed":true}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"ID":"t1","type":"$purchase","amount":{"Type":"$fiat","value":"1","value":1}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$transaction.succeeded","properties":{"transaction":{"id":"t1","\u0069d":5,"type":"$purchase"}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$profile_update.succeeded","properties":{"changeset":{"email":{"FROM":"a","TO":"b"},"password":{"Changed":true}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$profile_update.succeeded","properties":{"changeset":{"email":{"from":5,"to":["b"]}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$profile_update.succeeded","properties":{"changeset":{"authentication_method.type":{"from":null,"to":"$push"},"authentication_method_type":{"from":"$sms","to":"$push"}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$profile_update.succeeded","properties":{"changeset":{"authentication_method.type":{"from":"$sms","to":"$push"}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$profile_update.succeeded","properties":{"changeset":{"p\u0061ssword":{"from":"old","to":"new"}}},` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"$challenge.requested",` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","event":"$password_reset_request.succeeded",` + tok + `,` + ctx + `}`, ""},
		{`{"type":"track","messageId":"h","userId":"u","event":"Signed In",` + tok + `,` + ctx + `}`, ""},
		{secure(`,"email":5,"name":{"a":1},"registered_at":-1e300`), ""},
		{secure(`,"id":""`), ""},
		{secure(`,"id":123`), ""},
		{secure(`,"id":{"x":1}`), ""},
		{secure(`,"id":"` + long + `"`), ""},
		{secure(`,"registered_at":"yesterday","phone":"` + long + `"`), ""},
		{secure(`,"address":{"country_code":"us","city":5}`), ""},
		{secure(`,"address":"Main St"`), ""},
		{secure(`,"traits":{"plan":"` + long + `","n":` + deep + `}`), ""},
		{secure(`,"traits":"x","email":"\ud800"`), ""},
		{`{"batch":[` + track(`"properties":{}`) + `,null,` + withIP(`"81.2.69.142"`) + `],"context":{"ip":7},"integrations":{"Castle":{"requestToken":["x"]}}}`, ""},
	}
	return seeds
}
