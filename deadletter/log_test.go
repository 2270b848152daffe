package deadletter

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

func TestLogWritesEveryLetter(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	sink := NewLog(zap.New(core))
	big := strings.Repeat("é", MaxLoggedValue) // 2 bytes a rune: must be cut
	err := sink.Write(context.Background(),
		Letter{Value: []byte(`{"type":"page"`), Reason: "malformed", Error: "unexpected end of JSON input",
			Source: "segment", Partition: 3, Offset: 42, Time: time.Unix(0, 0)},
		Letter{Value: []byte(big), Reason: "rejected", Attempts: 1, MessageID: "m-1"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 2 {
		t.Fatalf("logged %d lines, want 2", logs.Len())
	}
	first := logs.All()[0].ContextMap()
	if first["reason"] != "malformed" || first["offset"] != int64(42) || first["partition"] != int64(3) ||
		first["value"] != `{"type":"page"` {
		t.Errorf("first letter logged as %v", first)
	}
	second := logs.All()[1].ContextMap()
	v := second["value"].(string)
	if len(v) > MaxLoggedValue || !utf8.ValidString(v) || second["value_truncated"] != true {
		t.Errorf("big value logged with %d bytes, valid=%v, truncated=%v", len(v), utf8.ValidString(v), second["value_truncated"])
	}
}

// The log shows no request token, userJwt, Cookie or Authorization, in any
// spelling Segment messages carry them, even in a value cut short or not
// JSON; everything else stays as it was.
func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"integrations":{"Castle":{"requestToken":"cst1.abc"}},"messageId":"m-1"}`,
			`{"integrations":{"Castle":{"requestToken":"[redacted]"}},"messageId":"m-1"}`},
		{`{"context":{"castle":{"REQUEST_TOKEN" : "t\"ok","userJwt":"eyJ.x.y"}}}`,
			`{"context":{"castle":{"REQUEST_TOKEN" : "[redacted]","userJwt":"[redacted]"}}}`},
		{`{"context":{"headers":{"Cookie":"sid=1","authorization":"Bearer x","Accept":"*/*"}}}`,
			`{"context":{"headers":{"Cookie":"[redacted]","authorization":"[redacted]","Accept":"*/*"}}}`},
		{`{"properties":{"note":"requestToken"},"requestToken":null}`, `{"properties":{"note":"requestToken"},"requestToken":null}`},
		// JSON held in a string (a message that carries another, an
		// echoed request) is redacted too.
		{`{"a":"x\"requestToken\":\"yes"}`, `{"a":"x\"requestToken\":\"[redacted]"}`},
		{`{"context":{"Castle":{"user_jwt":"eyJ.x.y"}}}`, `{"context":{"Castle":{"user_jwt":"[redacted]"}}}`},
		{`{"requestToken":"cut sho`, `{"requestToken":"[redacted]`},
		{`not json "userJwt": "eyJ" rest`, `not json "userJwt": "[redacted]" rest`},
		{`{"type":"page"`, `{"type":"page"`},
	} {
		if got := string(Redact([]byte(tt.in))); got != tt.want {
			t.Errorf("Redact(%s)\n = %s\nwant %s", tt.in, got, tt.want)
		}
	}
	core, logs := observer.New(zap.InfoLevel)
	in := []byte(`{"messageId":"m-9","integrations":{"Castle":{"requestToken":"cst1.secret-token"}}}`)
	if err := NewLog(zap.New(core)).Write(context.Background(), Letter{Value: in, Reason: "rejected"}); err != nil {
		t.Fatal(err)
	}
	if v := logs.All()[0].ContextMap()["value"].(string); strings.Contains(v, "secret-token") || !strings.Contains(v, "m-9") {
		t.Errorf("logged value %s", v)
	}
	if !strings.Contains(string(in), "secret-token") {
		t.Error("Redact changed the letter's own bytes")
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
		cut  bool
	}{
		{"abc", 5, "abc", false},
		{"abc", 3, "abc", false},
		{"abcd", 3, "abc", true},
		{"aé", 2, "a", true}, // é is 2 bytes: never split it
		{"a€b", 3, "a", true},
		{"a€b", 4, "a€", true},
	} {
		got, cut := Truncate([]byte(tt.in), tt.n)
		if string(got) != tt.want || cut != tt.cut {
			t.Errorf("Truncate(%q, %d) = %q, %v; want %q, %v", tt.in, tt.n, got, cut, tt.want, tt.cut)
		}
	}
}

func TestNewSink(t *testing.T) {
	sink, closer, err := NewSink(kafkaio.Cluster{}, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.(*Log); !ok {
		t.Errorf("no topic: sink %T, want the log", sink)
	}
	if err := closer.Close(); err != nil {
		t.Error(err)
	}
	sink, closer, err = NewSink(kafkaio.Cluster{Brokers: []string{"127.0.0.1:9"}}, "dlq", nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.(*Kafka); !ok {
		t.Errorf("topic dlq: sink %T, want the Kafka writer", sink)
	}
	if err := closer.Close(); err != nil {
		t.Error(err)
	}
}

// Redact never panics, and redacting twice changes nothing more.
func FuzzRedact(f *testing.F) {
	f.Add([]byte(`{"requestToken":"a","x":"\"","Cookie" :"b"}`))
	f.Add([]byte(`"userJwt":"`))
	f.Add([]byte(`"authorization"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		once := Redact(b)
		if twice := Redact(once); string(twice) != string(once) {
			t.Errorf("Redact(%q) = %q, again %q", b, once, twice)
		}
	})
}
