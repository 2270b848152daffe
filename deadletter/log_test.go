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
