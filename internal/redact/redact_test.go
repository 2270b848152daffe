package redact_test

import (
	"testing"

	"github.com/castle-destination/castle-destination/internal/redact"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		`no tokens here`: `no tokens here`,
		`echo: {"type":"$login","request_token":"tok-1","context":{"headers":{"Cookie":"sid=1","Authorization":"Bearer x"}}}`: `echo: {"type":"$login","request_token":"[redacted]","context":{"headers":{"Cookie":"[redacted]","Authorization":"[redacted]"}}}`,
		`{"userJwt": "eyJ", "cut short`: `{"userJwt": "[redacted]", "cut short`,
		// The mapping takes context.Castle.user_jwt as well as userJwt.
		`{"context":{"Castle":{"user_jwt":"eyJ.a.b"}}}`: `{"context":{"Castle":{"user_jwt":"[redacted]"}}}`,
		// A gateway that echoes the request as a JSON string inside its
		// own JSON answer: the keys are quoted with \", one level down.
		`{"error":"Bad Gateway","request":"{\"type\":\"$login\",\"request_token\":\"cst1.tok\",\"n\":1}"}`: `{"error":"Bad Gateway","request":"{\"type\":\"$login\",\"request_token\":\"[redacted]\",\"n\":1}"}`,
		`{"a":"{\"b\":\"{\\\"Cookie\\\": \\\"sid=1\\\"}\"}"}`:                                              `{"a":"{\"b\":\"{\\\"Cookie\\\": \\\"[redacted]\\\"}\"}"}`,
		// A value's own escaped quotes and backslashes do not end it early.
		`{"Authorization":"Bearer \"x\" y\\","n":1}`:                                                            `{"Authorization":"[redacted]","n":1}`,
		`{"headers":{"Set-Cookie":"sid=1","Proxy-Authorization":"Basic eA==","X-Castle-Request-Token":"cst1"}}`: `{"headers":{"Set-Cookie":"[redacted]","Proxy-Authorization":"[redacted]","X-Castle-Request-Token":"[redacted]"}}`,
		`{"s":"{\"Authorization\":\"a\\\"b\\\\\",\"n\":1}"}`:                                                    `{"s":"{\"Authorization\":\"[redacted]\",\"n\":1}"}`,
		// A key name as a value, or without a colon after it, is not a key.
		`{"name":"cookie","list":["userJwt"]}`: `{"name":"cookie","list":["userJwt"]}`,
		`{"request":"{\"cookie\" is set}"}`:    `{"request":"{\"cookie\" is set}"}`,
	} {
		if got := redact.String(in); got != want {
			t.Errorf("String(%s) = %s, want %s", in, got, want)
		}
	}
}

// JSON never panics, and what it redacted it leaves alone the second time.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"userJwt":"eyJ"}`, `{"a":"{\"Cookie\":\"x\\\"y\"}"}`, `"cookie"\\\":\\\"`, `{"Authorization":"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := redact.String(s)
		if twice := redact.String(once); twice != once {
			t.Errorf("String(%q) = %q, then %q", s, once, twice)
		}
	})
}
