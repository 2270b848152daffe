package traffic

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	analytics "github.com/segmentio/analytics-go/v3"
)

func decode(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b)
	}
	return v
}

// TestEncoderMatchesJSONMarshal encodes every analytics-go message a long
// stream builds both ways: the fast encoder and encoding/json (which runs
// analytics-go's own Context.MarshalJSON) must decode to the same value.
func TestEncoderMatchesJSONMarshal(t *testing.T) {
	t.Parallel()
	g := New(Config{Seed: 21, Secret: "s3cret", EnvelopeFraction: 0.05})
	types := map[string]int{}
	g.encode = func(dst []byte, msg any) []byte {
		fast := appendMessage(dst, msg)
		slow, err := json.Marshal(msg)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", msg, err)
		}
		if a, b := decode(t, fast), decode(t, slow); !reflect.DeepEqual(a, b) {
			t.Fatalf("%T encodes differently:\nfast %s\njson %s", msg, fast, slow)
		}
		typ := reflect.TypeOf(msg)
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		types[typ.Name()]++
		return fast
	}
	for range 3000 {
		g.Next()
	}
	for _, name := range []string{"Page", "Track", "Identify", "Screen", "Group", "Alias"} {
		if types[name] == 0 {
			t.Errorf("no %s encoded in 3,000 records (%v)", name, types)
		}
	}
}

func TestEncoderEdgeValues(t *testing.T) {
	ts := time.Date(2024, 2, 29, 23, 59, 59, 120_000_000, time.UTC)
	msgs := []any{
		analytics.Track{Event: "", Timestamp: ts}, // event has no omitempty
		analytics.Page{Type: "page", Timestamp: time.Time{}, Context: &analytics.Context{}},
		analytics.Track{Type: "track", Event: "<&> \u2028 \"q\" \\ \x01 \xff", Timestamp: ts, Properties: analytics.Properties{
			"f": 0.1, "big": 1e21, "tiny": 1e-7, "neg": -3.5, "zero": 0.0, "i64": int64(-9), "nil": nil,
			"nested": map[string]any{"a": []any{1, "x", true, map[string]any{}}, "e": []string{}},
			"t":      ts, "raw": json.RawMessage(`{"k":[1,2]}`), "other": uint8(7), "nan-free": math.MaxFloat64,
		}},
		analytics.Identify{Type: "identify", Timestamp: ts, Context: &analytics.Context{
			IP: net.ParseIP("2001:db8::1"), Direct: true, GroupID: "g", Traits: analytics.Traits{"a": 1},
			Location: analytics.LocationInfo{City: "Lyon", Latitude: 45.75}, Referrer: analytics.ReferrerInfo{Type: "t"},
			Network: analytics.NetworkInfo{Bluetooth: true, Cellular: true},
			Extra:   map[string]any{"ip": "shadowed by the field", "zz": 1, "Castle": map[string]any{"userJwt": "a.b.c"}},
		}},
		analytics.Group{GroupId: "", Timestamp: ts},
		analytics.Alias{Timestamp: ts},
		analytics.Screen{Name: "Home", Timestamp: ts, Integrations: analytics.Integrations{"All": false}},
		struct{ X int }{3}, // not an analytics-go message: encoding/json
	}
	for _, m := range msgs {
		fast := encodeMessage(m)
		slow, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := decode(t, fast), decode(t, slow); !reflect.DeepEqual(a, b) {
			t.Errorf("%T:\nfast %s\njson %s", m, fast, slow)
		}
	}
}

// TestTokenKinds checks each token kind against jwt/v5 the way the worker
// verifies a Secure Mode userJwt: HS256 only, under the secret, at Now.
func TestTokenKinds(t *testing.T) {
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	g := New(Config{Seed: 1, Secret: "k3y", Now: now})
	u := g.pickSecureUser()
	if u == nil {
		t.Fatal("no Secure Mode user")
	}
	parse := func(tok string, secret string) (jwt.MapClaims, error) {
		c := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(func() time.Time { return now }))
		return c, err
	}
	tests := []struct {
		kind    jwtKind
		wantErr error // nil: verifies
		msg     string
	}{
		{jwtValid, nil, ""},
		{jwtAlgNone, jwt.ErrTokenSignatureInvalid, "signing method none is invalid"},
		{jwtOtherSecret, jwt.ErrTokenSignatureInvalid, "signature is invalid"},
		{jwtExpired, jwt.ErrTokenExpired, ""},
		{jwtNotYetValid, jwt.ErrTokenNotValidYet, ""},
		{jwtWrongAlg, jwt.ErrTokenSignatureInvalid, "signing method HS512 is invalid"},
		{jwtTampered, jwt.ErrTokenSignatureInvalid, "signature is invalid"},
	}
	if len(tests) != int(numJWTKinds-1) {
		t.Fatalf("%d kinds tested, %d exist", len(tests), numJWTKinds-1)
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			tok := g.token(u, tt.kind)
			c, err := parse(tok, "k3y")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("valid token rejected: %v", err)
				}
				if c["id"] != u.id || c["email"] != u.email {
					t.Fatalf("claims %v, want id %s email %s", c, u.id, u.email)
				}
				if exp, _ := c.GetExpirationTime(); !exp.Time.Equal(now.Add(2 * time.Hour)) {
					t.Fatalf("exp %v, want Now+2h", exp)
				}
				if _, err := parse(tok, "another"); err == nil {
					t.Fatal("valid token verifies under another secret")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want %v (%q)", err, tt.wantErr, tt.msg)
			}
			if tt.kind == jwtTampered {
				// The payload names another user; header and signature are the valid token's.
				p := jwt.NewParser()
				c := jwt.MapClaims{}
				if _, _, err := p.ParseUnverified(tok, c); err != nil || c["id"] == u.id {
					t.Fatalf("tampered payload %v (%v) still names %s", c, err, u.id)
				}
				valid := strings.Split(g.validToken(u), ".")
				got := strings.Split(tok, ".")
				if got[0] != valid[0] || got[2] != valid[2] || got[1] == valid[1] {
					t.Fatal("tampered token is not the valid one with another payload")
				}
			}
		})
	}
}

func TestEmptySecretMeansNoSecureMode(t *testing.T) {
	c := Config{Seed: 3}
	c = c.withDefaults()
	if c.Mix.SecureUsers != 0 || c.Mix.UserJWTInvalid != 0 {
		t.Fatalf("mix %+v keeps Secure Mode without a secret", c.Mix)
	}
	for _, r := range Generate(Config{Seed: 3}, 3000) {
		if strings.Contains(string(r.Value), "userJwt") {
			t.Fatalf("a token without a secret: %s", r.Value)
		}
	}
}

func TestAppendTime(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	for _, tm := range []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 100_000_000, time.UTC),
		time.Date(2025, 6, 7, 8, 9, 10, 120_000_000, time.UTC),
		time.Date(2025, 6, 7, 8, 9, 10, 123_000_000, time.UTC),
		time.Date(2025, 6, 7, 8, 9, 10, 123_456_789, time.UTC), // not whole ms: standard path
		time.Date(2025, 6, 7, 8, 9, 10, 5_000_000, paris),      // not UTC: standard path
		time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
	} {
		want, _ := json.Marshal(tm)
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
		if tm.Year() < 1000 {
			continue
		}
		wantStamp := `"` + tm.UTC().Format("2006-01-02T15:04:05.000Z") + `"`
		if got := appendStamp(nil, tm); string(got) != wantStamp {
			t.Errorf("appendStamp(%v) = %s, want %s", tm, got, wantStamp)
		}
	}
}

func TestGzipped(t *testing.T) {
	for _, v := range [][]byte{nil, []byte(`{"type":"track","event":"Signed In"}`), bytes.Repeat([]byte("é"), 30000)} {
		zr, err := gzip.NewReader(bytes.NewReader(gzipped(v)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("gzip round trip: %v, %d bytes of %d", err, len(got), len(v))
		}
	}
}

func TestEncodeIP(t *testing.T) {
	for _, s := range []string{"73.1.2.3", "10.0.0.1", "2601:0:bfc3::1", "fd12:3456::ff", "::ffff:1.2.3.4", "::1", "2003:c3:814a:af1:532d:4268:b6f2:1c2f"} {
		for _, ip := range []net.IP{net.ParseIP(s), net.ParseIP(s).To4()} {
			if ip == nil {
				continue
			}
			m := analytics.Identify{Context: &analytics.Context{IP: ip}}
			fast := encodeMessage(m)
			slow, _ := json.Marshal(m)
			if !reflect.DeepEqual(decode(t, fast), decode(t, slow)) {
				t.Errorf("ip %v: fast %s, json %s", ip, fast, slow)
			}
		}
	}
}
