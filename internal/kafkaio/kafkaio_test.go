package kafkaio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/internal/promtest"
	"github.com/castle-destination/castle-destination/internal/selfcert"
)

// startAutoCreating starts a cluster that would create a topic for any
// client asking it to: the tests show the worker never asks.
func startAutoCreating(t *testing.T, topics map[string]int, opts ...kfake.Opt) *kafkatest.Cluster {
	t.Helper()
	kc, err := kafkatest.Start(kafkatest.Config{Topics: topics, Opts: append([]kfake.Opt{kfake.AllowAutoTopicCreation()}, opts...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

func assertNoTopic(t *testing.T, kc *kafkatest.Cluster, topic string) {
	t.Helper()
	if ids, err := kc.Partitions(t.Context(), topic); !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("topic %q: partitions %v, %v; want it still missing (the worker never creates topics)", topic, ids, err)
	}
}

func TestCheckTopics(t *testing.T) {
	kc := startAutoCreating(t, map[string]int{"in": 2, "dlq": 1})
	cluster := kafkaio.Cluster{Brokers: kc.Addrs()}
	ctx := t.Context()

	if err := kafkaio.CheckTopics(ctx, cluster, []string{"in", "dlq"}, kafkaio.CheckOptions{}); err != nil {
		t.Fatalf("existing topics: %v", err)
	}
	err := kafkaio.CheckTopics(ctx, cluster, []string{"in", "missing-dlq", "missing-verdicts"}, kafkaio.CheckOptions{Wait: time.Minute})
	var te *kafkaio.TopicError
	if !errors.As(err, &te) || te.Topic != "missing-dlq" || te.Class != kafkaio.TopicMissing {
		t.Fatalf("missing topic: %v, want a TopicError for missing-dlq", err)
	}
	if want := `topic "missing-dlq" does not exist on the cluster (the worker never creates topics)`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	assertNoTopic(t, kc, "missing-dlq")
	assertNoTopic(t, kc, "missing-verdicts")

	tr := cluster.Transport()
	defer tr.CloseIdleConnections()
	if err := kafkaio.TopicExists(ctx, cluster.Client(tr, 0), "other"); kafkaio.Classify(err) != kafkaio.TopicMissing {
		t.Errorf("TopicExists(other) = %v, want TopicMissing", err)
	}
	assertNoTopic(t, kc, "other")
}

// aclCluster starts a cluster where user "app" may use topic "in" and
// nothing else; "admin" may do anything.
func aclCluster(t *testing.T) (*kafkatest.Cluster, kafkaio.Cluster) {
	t.Helper()
	admin := plain.Mechanism{Username: "admin", Password: "admin-pw"}
	allow := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "in", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	kc, err := kafkatest.Start(kafkatest.Config{
		Topics:     map[string]int{"in": 1, "dlq": 1},
		ClientSASL: admin,
		Opts: []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin-pw"),
			kfake.User("PLAIN", "app", "app-pw", allow(kmsg.ACLOperationDescribe), allow(kmsg.ACLOperationWrite))},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc, kafkaio.Cluster{Brokers: kc.Addrs(), SASL: plain.Mechanism{Username: "app", Password: "app-pw"}}
}

func TestCheckTopicsNotAuthorized(t *testing.T) {
	_, cluster := aclCluster(t)
	if err := kafkaio.CheckTopics(t.Context(), cluster, []string{"in"}, kafkaio.CheckOptions{}); err != nil {
		t.Fatalf("allowed topic: %v", err)
	}
	err := kafkaio.CheckTopics(t.Context(), cluster, []string{"in", "dlq"}, kafkaio.CheckOptions{Wait: time.Minute})
	var te *kafkaio.TopicError
	if !errors.As(err, &te) || te.Topic != "dlq" || te.Class != kafkaio.NotAuthorized || !strings.Contains(err.Error(), "not authorized") {
		t.Fatalf("refused topic: %v, want a NotAuthorized TopicError for dlq", err)
	}
}

// Brokers that do not answer are retried with backoff until the wait ends;
// the log gets the first few failures, not one line per attempt. The wait
// runs on synctest's clock: a refused connection takes no time there, so
// the attempts are the backoff schedule's alone, whatever the machine's
// load (on the wall clock a loaded machine made far fewer).
func TestCheckTopicsUnreachableRetriesWithCappedLogs(t *testing.T) {
	kc, err := kafkatest.Start(kafkatest.Config{Topics: map[string]int{"in": 1}})
	if err != nil {
		t.Fatal(err)
	}
	addr := kc.Addrs()[0]
	kc.Close() // nothing listens there any more
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.InfoLevel)
		began := time.Now()
		err := kafkaio.CheckTopics(t.Context(), kafkaio.Cluster{Brokers: []string{addr}}, []string{"in"}, kafkaio.CheckOptions{
			Wait: 400 * time.Millisecond, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Logger: zap.New(core),
		})
		var ue *kafkaio.UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("CheckTopics = %v, want an UnreachableError", err)
		}
		if took := time.Since(began); took != 400*time.Millisecond {
			t.Errorf("gave up after %s, want at the end of the 400ms wait", took)
		}
		// Pauses of 1, 2, then 4 ms: attempts at 0, 1 and 3 ms, then every
		// 4 ms from 7 to 399 ms (99), and a last one at 400 ms.
		if want := 3 + 99 + 1; ue.Attempts != want {
			t.Errorf("%d attempts in 400ms with a backoff of 1, 2, then 4 ms; want %d", ue.Attempts, want)
		}
		if kafkaio.Classify(err) != kafkaio.Unreachable || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "400ms") {
			t.Errorf("error %q: want it to name the brokers and the wait, class unreachable", err)
		}
		if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 3 {
			t.Errorf("%d WARN lines for %d attempts, want the first 3", n, ue.Attempts)
		}
	})
}

func TestCheckTopicsStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := kafkaio.CheckTopics(ctx, kafkaio.Cluster{Brokers: []string{"127.0.0.1:1"}}, []string{"in"}, kafkaio.CheckOptions{Wait: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CheckTopics = %v, want the context's error", err)
	}
}

func TestWriter(t *testing.T) {
	kc := startAutoCreating(t, map[string]int{"out": 1})
	cluster := kafkaio.Cluster{Brokers: kc.Addrs()}
	reg := prometheus.NewRegistry()
	w, err := kafkaio.NewWriter(kafkaio.WriterConfig{Cluster: cluster, Topic: "out", Sink: "dlq"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A second sink's writer shares the metrics, told apart by its label.
	missing, err := kafkaio.NewWriter(kafkaio.WriterConfig{Cluster: cluster, Topic: "no-such-topic", Sink: "verdict"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	ctx := t.Context()

	if err := w.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := w.Write(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v1")}, kafka.Message{Value: []byte("v2")}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := promtest.Value(t, reg, "castle_destination_kafka_records_written_total", "sink", "dlq"); got != 2 {
		t.Errorf("records written = %v, want 2", got)
	}
	end, err := kc.LogEndOffsets(ctx, "out")
	if err != nil || end[0] != 2 {
		t.Errorf("log end of out = %v, %v; want 2", end, err)
	}

	// A missing topic: classified, counted, and still missing.
	if err := missing.Check(ctx); kafkaio.Classify(err) != kafkaio.TopicMissing {
		t.Errorf("Check of a missing topic = %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = missing.Write(wctx, kafka.Message{Value: []byte("x")})
	cancel()
	var we *kafkaio.WriteError
	if !errors.As(err, &we) || we.Class != kafkaio.TopicMissing || we.Topic != "no-such-topic" || we.Records != 1 {
		t.Errorf("Write to a missing topic = %v, want a TopicMissing WriteError", err)
	}
	assertNoTopic(t, kc, "no-such-topic")
	if got := promtest.Value(t, reg, "castle_destination_kafka_write_errors_total", "sink", "verdict", "class", "topic_missing"); got != 1 {
		t.Errorf("verdict topic_missing errors = %v, want 1", got)
	}
	if got := promtest.Value(t, reg, "castle_destination_kafka_write_errors_total", "sink", "dlq", "class", "topic_missing"); got != 0 {
		t.Errorf("dlq topic_missing errors = %v, want 0", got)
	}

	// A record larger than the brokers take.
	err = w.Write(ctx, kafka.Message{Value: bytes.Repeat([]byte("x"), 2<<20)})
	if !errors.As(err, &we) || we.Class != kafkaio.TooLarge {
		t.Errorf("Write of 2 MiB = %v, want a TooLarge WriteError", err)
	}
}

func TestWriterNotAuthorized(t *testing.T) {
	_, cluster := aclCluster(t)
	reg := prometheus.NewRegistry()
	w, err := kafkaio.NewWriter(kafkaio.WriterConfig{Cluster: cluster, Topic: "dlq", Sink: "dlq"}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = w.Write(ctx, kafka.Message{Value: []byte("x")})
	var we *kafkaio.WriteError
	if !errors.As(err, &we) || we.Class != kafkaio.NotAuthorized {
		t.Errorf("Write without the ACL = %v, want a NotAuthorized WriteError", err)
	}
	if got := promtest.Value(t, reg, "castle_destination_kafka_write_errors_total", "sink", "dlq", "class", "not_authorized"); got != 1 {
		t.Errorf("not_authorized errors = %v, want 1", got)
	}
}

func TestWriterUnreachable(t *testing.T) {
	w, err := kafkaio.NewWriter(kafkaio.WriterConfig{Cluster: kafkaio.Cluster{Brokers: []string{"127.0.0.1:1"}}, Topic: "t", Sink: "dlq"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err = w.Write(ctx, kafka.Message{Value: []byte("x")})
	var we *kafkaio.WriteError
	if !errors.As(err, &we) || we.Class != kafkaio.Unreachable {
		t.Errorf("Write with no broker = %v, want an Unreachable WriteError", err)
	}
}

func TestNewWriterRefusesBadConfig(t *testing.T) {
	ok := kafkaio.WriterConfig{Cluster: kafkaio.Cluster{Brokers: []string{"k:9092"}}, Topic: "t", Sink: "dlq"}
	for name, edit := range map[string]func(*kafkaio.WriterConfig){
		"no brokers":      func(c *kafkaio.WriterConfig) { c.Cluster.Brokers = nil },
		"no topic":        func(c *kafkaio.WriterConfig) { c.Topic = "" },
		"unbounded label": func(c *kafkaio.WriterConfig) { c.Sink = "user-42" },
	} {
		c := ok
		edit(&c)
		if _, err := kafkaio.NewWriter(c, nil); err == nil {
			t.Errorf("%s: NewWriter accepted %+v", name, c)
		}
	}
}

// A client without TLS (or SASL) talking to a listener that requires it
// gets the connection closed without an answer: "unexpected EOF". The
// error, and the WARN lines while it retries, say what that may mean.
func TestCheckTopicsHintsAtTLSAndSASL(t *testing.T) {
	ca, err := selfcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := ca.ServerTLS("kfake")
	if err != nil {
		t.Fatal(err)
	}
	clientTLS := ca.ClientTLS()
	tlsCluster, err := kafkatest.Start(kafkatest.Config{Topics: map[string]int{"in": 1}, ClientTLS: clientTLS,
		Opts: []kfake.Opt{kfake.TLS(serverTLS)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tlsCluster.Close)
	saslCluster, err := kafkatest.Start(kafkatest.Config{Topics: map[string]int{"in": 1}, ClientTLS: clientTLS,
		ClientSASL: plain.Mechanism{Username: "admin", Password: "admin-pw"},
		Opts:       []kfake.Opt{kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "admin-pw")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(saslCluster.Close)
	plainCluster := startAutoCreating(t, map[string]int{"in": 1})

	for _, tc := range []struct {
		name    string
		cluster kafkaio.Cluster
		want    string // in the error; "" for no hint
		// slow: one attempt outlasts the wait, so no retry logs a WARN
		slow bool
	}{
		{"plaintext to a TLS listener", kafkaio.Cluster{Brokers: tlsCluster.Addrs()}, "requires TLS (KAFKA_TLS) or SASL (KAFKA_SASL_MECHANISM) does", false},
		{"TLS without SASL to a TLS and SASL listener", kafkaio.Cluster{Brokers: saslCluster.Addrs(), TLS: clientTLS}, "requires SASL (KAFKA_SASL_MECHANISM) does", false},
		{"a listener that is gone", kafkaio.Cluster{Brokers: []string{"127.0.0.1:1"}}, "", false},
		// The plaintext listener waits for the rest of the "request" the
		// handshake began: the attempt times out after DialTimeout.
		{"TLS to a plaintext listener", kafkaio.Cluster{Brokers: plainCluster.Addrs(), TLS: clientTLS}, "to a client speaking TLS (KAFKA_TLS)", true},
		{"TLS to a listener that is gone", kafkaio.Cluster{Brokers: []string{"127.0.0.1:1"}, TLS: clientTLS}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			err := kafkaio.CheckTopics(t.Context(), tc.cluster, []string{"in"}, kafkaio.CheckOptions{
				Wait: 200 * time.Millisecond, Backoff: 10 * time.Millisecond, Logger: zap.New(core)})
			if tc.want == "" {
				var ue *kafkaio.UnreachableError
				if errors.As(err, &ue) && ue.Hint != "" {
					t.Errorf("hint %q for %v", ue.Hint, ue.Err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckTopics = %v, want a hint naming %q", err, tc.want)
			}
			if w := logs.All(); !tc.slow && len(w) == 0 || len(w) > 0 && !strings.Contains(fmt.Sprint(w[0].ContextMap()["hint"]), tc.want) {
				t.Errorf("the WARN lines carry no hint: %v", w)
			}
		})
	}
	// The same settings against a plaintext listener work.
	if err := kafkaio.CheckTopics(t.Context(), kafkaio.Cluster{Brokers: plainCluster.Addrs()}, []string{"in"}, kafkaio.CheckOptions{}); err != nil {
		t.Errorf("plaintext to a plaintext listener: %v", err)
	}
}
