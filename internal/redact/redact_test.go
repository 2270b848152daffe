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
	} {
		if got := redact.String(in); got != want {
			t.Errorf("String(%s) = %s, want %s", in, got, want)
		}
	}
}
