package worker_test

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/internal/harness"
)

// badMessage is one hostile record and what the worker must make of it.
type badMessage struct {
	name  string
	value []byte
	// forward is the trace id that must reach Castle ("" for none);
	// letter is the dead-letter reason expected ("" for none).
	forward, letter string
}

// track is a browser track event carrying trace id id, with extra members
// spliced into its properties.
func track(id, extraProps string) string {
	return `{"type":"track","messageId":"` + id + `","userId":"u-` + id + `","event":"Bad Input","channel":"client",` +
		`"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}},` +
		`"properties":{"trace_id":"` + id + `"` + extraProps + `}}`
}

func badMessages() []badMessage {
	good := track("bad-good-1", "")
	tenMB := strings.Repeat("a", 10<<20)
	var huge strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&huge, `,"k%d":%d`, i, i)
	}
	deep := strings.Repeat(`{"a":`, 10_000) + "1" + strings.Repeat("}", 10_000)
	return []badMessage{
		{name: "invalid JSON", value: []byte(`{"type":"track",,}`), letter: "malformed"},
		{name: "truncated JSON", value: []byte(good[:len(good)/2]), letter: "malformed"},
		{name: "empty", value: nil, letter: "malformed"},
		{name: "10 MB malformed", value: []byte(`{"type":"track","properties":{"x":"` + tenMB), letter: "malformed"},
		{name: "10 MB valid", value: []byte(track("bad-10mb", `,"blob":"`+tenMB+`"`)), forward: "bad-10mb"},
		{name: "10,000 levels deep", value: []byte(track("bad-deep", `,"deep":`+deep)), letter: "malformed"},
		{name: "invalid UTF-8", value: []byte(track("bad-utf8", `,"name":"caf`+"\xff\xfe"+`"`)), forward: "bad-utf8"},
		{name: "wrong field types", value: []byte(`{"type":"track","messageId":7,"userId":{"x":1},"event":["E"],"channel":"client",` +
			`"context":"nope","properties":{"trace_id":"bad-types"},"timestamp":12}`), forward: "bad-types"}, // tolerated: see mapping's doc
		{name: "huge property map", value: []byte(track("bad-huge-map", huge.String())), forward: "bad-huge-map"},
		{name: "envelope with one bad message", value: []byte(`{"batch":[` + track("bad-env-1", "") + `,{"type":5},` + track("bad-env-2", "") +
			`],"context":{"library":{"name":"analytics.js"}}}`), forward: "bad-env-1,bad-env-2", letter: "malformed"},
		{name: "good after the bad", value: []byte(good), forward: "bad-good-1"},
	}
}

// Hostile input, among ordinary traffic on the same partitions: every bad
// message becomes a counted drop or a dead letter with its reason, a 10 MB
// message neither crashes the worker nor stalls its partition (its dead
// letter is cut to fit the dead-letter topic), and everything forwardable
// around it still reaches Castle, with every offset committed.
func TestBadInputNeverStallsAPartition(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 2)
	ctx := context.Background()
	raiseMessageLimit(t, env, 16<<20)

	recs, _ := harness.Generate(41, 1_000, time.Now())
	want, tally := forwards(recs)
	if err := env.Produce(ctx, recs[:500]); err != nil {
		t.Fatal(err)
	}
	bad := badMessages()
	w := &kafka.Writer{
		Addr: kafka.TCP(env.Brokers...), Topic: env.Topic, Balancer: &kafka.RoundRobin{},
		RequiredAcks: kafka.RequireAll, BatchBytes: 16 << 20, BatchTimeout: time.Millisecond,
	}
	wantLetters := map[string]int{}
	for _, b := range bad {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(b.name), Value: b.value}); err != nil {
			t.Fatalf("produce %s: %v", b.name, err)
		}
		for id := range strings.SplitSeq(b.forward, ",") {
			if id != "" {
				want[id] = true
			}
		}
		if b.letter != "" {
			wantLetters[b.name] = 1
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := env.Produce(ctx, recs[500:]); err != nil {
		t.Fatal(err)
	}

	// kafka-go gives a fetch until KAFKA_FETCH_MAX_WAIT to start answering;
	// the harness's 100ms is too short for kfake to build a 10 MB fetch
	// under -race on a busy machine, and the reader would refetch it in a
	// loop. A real broker streams the answer; this is about the test rig.
	wr, stop := run(t, env, map[string]string{"KAFKA_FETCH_MAX_WAIT": "5s"})
	got, out := finish(t, env, wr, stop, want, 120*time.Second)
	for id := range got {
		if strings.HasPrefix(id, "bad-") && !want[id] {
			t.Errorf("Castle received %q, which is not forwardable", id)
		}
	}

	// Every dead letter is on the topic with its reason; the 10 MB ones are
	// cut to the bound and say how long they were.
	letters := map[string]int{}
	for _, m := range readDLQ(t, env) {
		h := headers(m)
		if h[deadletter.HeaderReason] != "malformed" || !isBad(bad, string(m.Key)) {
			continue
		}
		letters[string(m.Key)]++
		if len(m.Value) > deadletter.MaxLetterValueBytes {
			t.Errorf("dead letter %q: value of %d bytes, over the %d bound", m.Key, len(m.Value), deadletter.MaxLetterValueBytes)
		}
		if string(m.Key) == "10 MB malformed" {
			if n, _ := strconv.Atoi(h[deadletter.HeaderValueBytes]); n <= deadletter.MaxLetterValueBytes {
				t.Errorf("cut dead letter: %s = %q, want the original length", deadletter.HeaderValueBytes, h[deadletter.HeaderValueBytes])
			}
		}
	}
	if !maps.Equal(letters, wantLetters) {
		t.Errorf("malformed dead letters by message %v, want %v", letters, wantLetters)
	}
	// The traffic's own malformed messages, plus one per bad message.
	if got, want := out.DeadLettered["malformed"], tally.DeadLetter["malformed"]+len(wantLetters); got != want {
		t.Errorf("malformed dead letters counted %d, want %d", got, want)
	}
	t.Logf("outcomes: forwarded %v, dropped %v, dead-lettered %v", out.Forwarded, out.Dropped, out.DeadLettered)
}

// raiseMessageLimit lets the source topic take messages of up to n bytes,
// as a topic carrying such messages must be configured; the dead-letter
// topic keeps Kafka's default 1 MiB limit.
func raiseMessageLimit(t *testing.T, env *harness.Env, n int) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(env.Brokers...), Timeout: 10 * time.Second}
	resp, err := c.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{
		Resources: []kafka.AlterConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: env.Topic,
			Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(n)}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range resp.Errors {
		if err != nil {
			t.Fatalf("alter %v: %v", r, err)
		}
	}
}

func readDLQ(t *testing.T, env *harness.Env) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := env.ReadAll(ctx, env.DLQTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func isBad(bad []badMessage, name string) bool {
	for _, b := range bad {
		if b.name == name {
			return true
		}
	}
	return false
}
