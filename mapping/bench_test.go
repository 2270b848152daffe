package mapping_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/mapping"
)

// A realistic analytics.js page event (~1 KB) and track event, as Segment
// delivers them.
const (
	benchPage  = `{"anonymousId":"5f8a2c44-7b1e-4e0a-9d3b-2e6a1c9f0b7d","channel":"client","context":{"ip":"81.2.69.142","library":{"name":"analytics.js","version":"next-1.70.0"},"locale":"en-US","page":{"path":"/products/ultralight-tent-2p","referrer":"https://www.google.com/","search":"?utm_source=google&utm_medium=cpc","title":"Ultralight Tent 2P · Acme Outfitters","url":"https://www.acme-outfitters.com/products/ultralight-tent-2p?utm_source=google&utm_medium=cpc"},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15","timezone":"Europe/Zurich","campaign":{"source":"google","medium":"cpc","name":"tents-q1"}},"integrations":{},"messageId":"ajs-next-1736942340000-8c1d6a3e-5b7f-4a2e-9c1d-3f5e7a9b1c2d","name":"Product","category":"Shop","originalTimestamp":"2025-01-15T11:59:00.000Z","properties":{"path":"/products/ultralight-tent-2p","referrer":"https://www.google.com/","search":"?utm_source=google&utm_medium=cpc","title":"Ultralight Tent 2P · Acme Outfitters","url":"https://www.acme-outfitters.com/products/ultralight-tent-2p?utm_source=google&utm_medium=cpc"},"receivedAt":"2025-01-15T11:59:00.410Z","sentAt":"2025-01-15T11:59:00.020Z","timestamp":"2025-01-15T11:59:00.390Z","type":"page","userId":"usr_8Hq2LmZp4Kx","version":2}`
	benchTrack = `{"anonymousId":"5f8a2c44-7b1e-4e0a-9d3b-2e6a1c9f0b7d","channel":"client","context":{"ip":"81.2.69.142","library":{"name":"analytics.js","version":"next-1.70.0"},"locale":"en-US","page":{"path":"/checkout","referrer":"https://www.acme-outfitters.com/cart","title":"Checkout","url":"https://www.acme-outfitters.com/checkout"},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"},"event":"Order Completed","integrations":{"Castle":{"requestToken":"test_lZWva9rsNe3u0_EIc6R8V3t5beV38piPAQbhgREGygYCAo2FRSv1tAQ4-cb6ArKHOWK_zG18hO1uZ8K0LDbNqU9njuhscoLyaj3NyGxyiO0iS4ziIkm-oVom3LEsN9i6InSbuzo-w7ErJqrkYW2CrjA23LEyN92wIkCE82dggvktPtWvMmrl42Bj2uM7Zdn2AQGXC6qGTIECRlwaAgZjgcq-"}},"messageId":"ajs-next-1736942341000-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d","originalTimestamp":"2025-01-15T11:59:01.000Z","properties":{"order_id":"o-50314","total":327.4,"revenue":299,"shipping":19.9,"tax":8.5,"currency":"CHF","coupon":"WINTER10","products":[{"product_id":"tent-2p","sku":"T2P-GRN","price":299,"quantity":1}]},"receivedAt":"2025-01-15T11:59:01.410Z","sentAt":"2025-01-15T11:59:01.020Z","timestamp":"2025-01-15T11:59:01.390Z","type":"track","userId":"usr_8Hq2LmZp4Kx"}`
)

var benchNow = time.Date(2025, 1, 15, 11, 59, 2, 0, time.UTC)

// benchSecurePage is benchPage from a user in Secure Mode: a userJwt with
// an id, an email and one other claim, the same on every page the user
// views (its signature is checked once, then the token is cached).
func benchSecurePage() string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"id": "usr_8Hq2LmZp4Kx", "email": "ada@example.com", "plan": "pro", "exp": benchNow.Add(time.Hour).Unix(),
	}).SignedString([]byte("s"))
	if err != nil {
		panic(err)
	}
	return strings.Replace(benchPage, `"integrations":{}`, `"integrations":{"Castle":{"userJwt":"`+tok+`"}}`, 1)
}

func BenchmarkMap(b *testing.B) {
	for _, bc := range []struct{ name, msg string }{{"page", benchPage}, {"track", benchTrack}, {"page-jwt", benchSecurePage()}} {
		b.Run(bc.name, func(b *testing.B) {
			// Distinct messageIds, more than the dedupe window holds, so
			// that every message is forwarded (the full path).
			const variants = 1 << 15
			msgs := make([][]byte, variants)
			for i := range msgs {
				id := "ajs-next-" + strconv.Itoa(1_000_000+i)
				msgs[i] = []byte(strings.Replace(bc.msg, `"messageId":"ajs-next-`, `"messageId":"`+id+`-`, 1))
			}
			m := mapping.New(mapping.Config{Secret: []byte("s"), Version: "bench"})
			var res []mapping.Result
			var body []byte
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				res = m.Map(res[:0], msgs[i%variants], benchNow, nil)
				if res[0].Action != mapping.Forward {
					b.Fatalf("action %d %s", res[0].Action, res[0].Detail)
				}
				body = res[0].Event.AppendJSON(body[:0])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkMapRepeatedKeys maps a transaction whose object keys are
// repeated n times (repeatedKeysTrack): the time per copy (ns/key) stays
// flat as n grows when each object is read a fixed number of times, and
// grows with n when it is read again for every copy.
func BenchmarkMapRepeatedKeys(b *testing.B) {
	for _, n := range []int{1000, 8000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			msg := []byte(repeatedKeysTrack(n))
			m := mapping.New(mapping.Config{Secret: []byte("s"), Version: "bench"})
			var res []mapping.Result
			for b.Loop() {
				res = m.Map(res[:0], msg, benchNow, nil)
				if res[0].Action != mapping.Forward {
					b.Fatalf("action %d %s", res[0].Action, res[0].Detail)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
		})
	}
}

// Mapping the analytics.js page of the benchmark allocates once (the
// message's parse state); its User stays on the stack. In Secure Mode, with
// the token verified before, three: the claims beyond the user's fields go
// to its traits. Every allocation per event is paid again by the garbage
// collector at full speed.
func TestMapPageAllocations(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string // want: in the body
		max             float64
	}{{"page", benchPage, `"id":"usr_8Hq2LmZp4Kx"`, 1}, {"page-jwt", benchSecurePage(), `"email":"ada@example.com"`, 3}} {
		m := mapping.New(mapping.Config{Secret: []byte("s"), Version: "bench"})
		msg := []byte(tc.msg)
		var res []mapping.Result
		var body []byte
		n := testing.AllocsPerRun(200, func() {
			res = m.Map(res[:0], msg, benchNow, nil)
			body = res[0].Event.AppendJSON(body[:0])
		})
		if res[0].Action != mapping.Forward {
			t.Fatalf("%s: action %d %s", tc.name, res[0].Action, res[0].Detail)
		}
		if !strings.Contains(string(body), tc.want) {
			t.Fatalf("%s: body lacks %s: %s", tc.name, tc.want, body)
		}
		if n > tc.max {
			t.Errorf("mapping %s allocates %v times, want at most %v", tc.name, n, tc.max)
		}
	}
}
