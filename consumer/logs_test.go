package consumer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// kafka-go's reader logs every failure it retries on its error logger,
// including ones that are no failure: those go to DEBUG; real failures to
// WARN, once a minute at most.
func TestReaderErrorLogRouting(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := newReaderErrorLog(zap.New(core))
	for _, line := range []struct {
		format string
		args   []any
		want   zapcore.Level
	}{
		{"the kafka reader got an unknown error reading partition %d of %s at offset %d: %s",
			[]any{0, "in", 5, "read tcp 127.0.0.1:5->127.0.0.1:9: i/o timeout"}, zapcore.DebugLevel},
		{"no messages received from kafka within the allocated time for partition %d of %s at offset %d: %v",
			[]any{1, "in", 0, "[7] Request Timed Out: the request exceeded the user-specified time limit in the request"}, zapcore.DebugLevel},
		{"Failed to join group %s: %v", []any{"g", "%!w(<nil>)"}, zapcore.DebugLevel},
		{"the kafka reader got an unknown error reading partition %d of %s at offset %d: %s", []any{0, "in", 0, "unexpected EOF"}, zapcore.WarnLevel},
		{"the kafka reader got an unknown error reading partition %d of %s at offset %d: %s", []any{0, "in", 0, "unexpected EOF"}, zapcore.DebugLevel},
		{"failed to read from current broker for partition %d of %s at offset %d: %v", []any{0, "in", 0, "[6] Not Leader For Partition"}, zapcore.DebugLevel},
	} {
		l.Printf(line.format, line.args...)
		all := logs.TakeAll()
		if len(all) != 1 || all[0].Level != line.want {
			t.Errorf("%q: logged %v, want one line at %s", line.format, all, line.want)
		}
	}
}

// When the brokers go away, the consumer retries joining its group many
// times; the log gets the first few failures at WARN, and kafka-go's own
// lines only at DEBUG.
func TestLostBrokersLogAFewLines(t *testing.T) {
	kc := kafkatest.New(t, "in", 2)
	cfg := testConfig(kc, "in", "g")
	cfg.JoinTimeout = 3 * time.Second
	cfg.RetryBackoff = 30 * time.Millisecond
	core, logs := observer.New(zapcore.DebugLevel)
	r := startLogged(t, cfg, 0, nil, zap.New(core))
	eventually(t, 20*time.Second, func() string {
		if err := r.c.Ready(); err != nil {
			return err.Error()
		}
		return ""
	})
	// The brokers go away from a consumer in its steady state: each
	// partition reader connected and long-polling an empty partition, which
	// kafka-go reports at DEBUG when a poll ends empty. Ready alone can come
	// before a reader has connected, and a reader that finds the broker gone
	// while it starts logs its failure twice (kafka-go's "error initializing
	// the kafka reader" and "fetch failed; retrying"). Records are not used
	// to get there: an ack commits, and a commit the closing broker stores
	// but never answers is one more WARN line.
	eventually(t, 20*time.Second, func() string {
		for p := range 2 {
			if logs.FilterMessageSnippet(fmt.Sprintf("no messages received from kafka within the allocated time for partition %d of in", p)).Len() == 0 {
				return fmt.Sprintf("the reader of partition %d has not polled yet", p)
			}
		}
		return ""
	})
	kc.Close()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not give up after JoinTimeout")
	}
	if r.err == nil {
		t.Fatal("Run returned nil with the brokers gone")
	}
	attempts, warns := 0, 0
	var loud, warnLines []string
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "Unable to establish connection to consumer group coordinator") ||
			strings.Contains(e.Message, "Failed to join group") {
			attempts++
		}
		if e.Level >= zapcore.WarnLevel {
			warns++
			warnLines = append(warnLines, e.Message)
		}
		if e.Level >= zapcore.InfoLevel && (strings.HasPrefix(e.Message, "Unable") || strings.HasPrefix(e.Message, "Failed") ||
			strings.HasPrefix(e.Message, "the kafka reader") || strings.HasPrefix(e.Message, "failed")) {
			loud = append(loud, e.Message)
		}
	}
	if attempts < 10 {
		t.Errorf("%d join attempts in %s at a %s backoff: the test did not exercise the retries", attempts, cfg.JoinTimeout, cfg.RetryBackoff)
	}
	// What the throttles let through within a minute: the first
	// retryLogBurst join failures, and per partition reader its first
	// retryLogBurst fetch failures and one line of kafka-go's reader.
	if bound := retryLogBurst + 2*(retryLogBurst+1); warns > bound {
		t.Errorf("%d WARN lines for %d join attempts, more than the %d the throttles allow: %q", warns, attempts, bound, warnLines)
	}
	for _, m := range loud {
		if !strings.HasPrefix(m, "the kafka reader") {
			t.Errorf("kafka-go's own line above DEBUG: %q", m)
		}
	}
}
