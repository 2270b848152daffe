package deadletter

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

func scramSHA256(t *testing.T, user, password string) sasl.Mechanism {
	t.Helper()
	m, err := scram.Mechanism(scram.SHA256, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// readTopic reads n messages from partition 0 of topic.
func readTopic(t *testing.T, cl kafkaio.Cluster, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   cl.Brokers,
		Topic:     topic,
		Partition: 0,
		Dialer:    cl.Dialer(),
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	msgs := make([]kafka.Message, 0, n)
	for len(msgs) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read %s after %d of %d messages: %v", topic, len(msgs), n, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

func headerMap(t *testing.T, m kafka.Message) map[string]string {
	t.Helper()
	h := make(map[string]string, len(m.Headers))
	for _, kv := range m.Headers {
		if _, dup := h[kv.Key]; dup {
			t.Errorf("header %s appears twice", kv.Key)
		}
		h[kv.Key] = string(kv.Value)
	}
	return h
}

var dlqHeaders = []string{HeaderReason, HeaderError, HeaderSourceTopic, HeaderSourcePartition,
	HeaderSourceOffset, HeaderMessageID, HeaderAttempts, HeaderTime}

func TestKafkaSink(t *testing.T) {
	const user, password = "castle", "dlq-Secret-Password-42"
	mech := scramSHA256(t, user, password)
	kc, err := kafkatest.Start(kafkatest.Config{
		Topics:     map[string]int{"in": 1, "dlq": 1},
		ClientSASL: mech,
		Opts:       []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", user, password)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)

	reg := prometheus.NewRegistry()
	cluster := kafkaio.Cluster{Brokers: kc.Addrs(), SASL: mech}
	w, err := NewKafka(cluster, "dlq", reg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}

	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	long := strings.Repeat("é", 2000) // 4000 bytes of two-byte runes
	letters := []Letter{
		{
			Key:       []byte("user-1"),
			Value:     []byte(`{"type":"track","event":"x"}`),
			Reason:    "malformed",
			Error:     "invalid character 'x' looking for beginning of value",
			Source:    "in",
			Partition: 3,
			Offset:    41,
			MessageID: "msg-1",
			Attempts:  0,
			Time:      at,
		},
		{
			Value:     []byte{0, 1, 2, 0xff},
			Reason:    "retries_exhausted" + long,
			Error:     "castle said: " + long + "\xff\xfe",
			Source:    long,
			Partition: 0,
			Offset:    1 << 40,
			MessageID: long,
			Attempts:  7,
		},
	}
	before := time.Now()
	if err := w.Write(t.Context(), letters...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	after := time.Now()
	if err := w.Write(t.Context()); err != nil {
		t.Fatalf("empty Write: %v", err)
	}

	msgs := readTopic(t, cluster, "dlq", 2)

	// The first letter: original key and value, every documented header.
	m := msgs[0]
	if string(m.Key) != "user-1" || string(m.Value) != string(letters[0].Value) {
		t.Errorf("letter 0: key %q value %q, want the original", m.Key, m.Value)
	}
	h := headerMap(t, m)
	want := map[string]string{
		HeaderReason:          "malformed",
		HeaderError:           letters[0].Error,
		HeaderSourceTopic:     "in",
		HeaderSourcePartition: "3",
		HeaderSourceOffset:    "41",
		HeaderMessageID:       "msg-1",
		HeaderAttempts:        "0",
		HeaderTime:            "2024-05-06T05:08:09.123456789Z",
	}
	if len(h) != len(want) {
		t.Errorf("letter 0 has headers %v, want exactly %v", h, want)
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("letter 0 header %s = %q, want %q", k, h[k], v)
		}
	}
	if !m.Time.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("letter 0 timestamp %s, want %s", m.Time, at)
	}

	// The second: no key, binary value, bounded and valid header values,
	// the write time for a zero Letter.Time.
	m = msgs[1]
	if len(m.Key) != 0 || !bytes.Equal(m.Value, letters[1].Value) {
		t.Errorf("letter 1: key %q value %v, want no key and the original value", m.Key, m.Value)
	}
	h = headerMap(t, m)
	for _, k := range dlqHeaders {
		v, ok := h[k]
		if !ok {
			t.Errorf("letter 1 lacks header %s", k)
			continue
		}
		if !utf8.ValidString(v) {
			t.Errorf("letter 1 header %s is not valid UTF-8", k)
		}
		limit := maxShortHeader
		if k == HeaderError {
			limit = maxErrorHeader
		}
		if len(v) > limit {
			t.Errorf("letter 1 header %s is %d bytes, over %d", k, len(v), limit)
		}
	}
	for _, k := range []string{HeaderReason, HeaderError, HeaderSourceTopic, HeaderMessageID} {
		if !strings.HasSuffix(h[k], "…") || len(h[k]) < 200 {
			t.Errorf("letter 1 header %s = %.40q... (%d bytes), want a cut value ending in …", k, h[k], len(h[k]))
		}
	}
	if !strings.HasPrefix(h[HeaderReason], "retries_exhausted") || !strings.HasPrefix(h[HeaderError], "castle said: ") {
		t.Errorf("letter 1 reason/error lost their start: %.30q / %.30q", h[HeaderReason], h[HeaderError])
	}
	if h[HeaderAttempts] != "7" || h[HeaderSourceOffset] != strconv.FormatInt(1<<40, 10) || h[HeaderSourcePartition] != "0" {
		t.Errorf("letter 1 attempts/offset/partition = %s/%s/%s", h[HeaderAttempts], h[HeaderSourceOffset], h[HeaderSourcePartition])
	}
	ts, err := time.Parse(time.RFC3339Nano, h[HeaderTime])
	if err != nil {
		t.Errorf("letter 1 time header %q: %v", h[HeaderTime], err)
	} else if ts.Before(before.Add(-time.Second)) || ts.After(after.Add(time.Second)) {
		t.Errorf("letter 1 time header %s, want the write time (%s..%s)", ts, before, after)
	}

	// Nothing written carries the SASL password.
	for i, m := range msgs {
		blob := bytes.Join([][]byte{m.Key, m.Value}, nil)
		for _, kv := range m.Headers {
			blob = append(append(blob, kv.Key...), kv.Value...)
		}
		if bytes.Contains(blob, []byte(password)) {
			t.Errorf("letter %d contains the SASL password", i)
		}
	}

	if got := counter(t, w.written); got != 2 {
		t.Errorf("letters written = %v, want 2", got)
	}
	if got := counter(t, w.writeErrs); got != 0 {
		t.Errorf("write errors = %v, want 0", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"castle_destination_dlq_letters_written_total", "castle_destination_dlq_write_errors_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}

	t.Run("missing topic", func(t *testing.T) {
		w, err := NewKafka(cluster, "no-such-dlq", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		err = w.Check(t.Context())
		if err == nil || !strings.Contains(err.Error(), "no-such-dlq") || !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Errorf("Check on a missing topic = %v, want an error naming it", err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "wrong-Secret-Password-43"
		w, err := NewKafka(kafkaio.Cluster{Brokers: kc.Addrs(), SASL: scramSHA256(t, user, wrong)}, "dlq", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		err = w.Check(ctx)
		if err == nil {
			t.Fatal("Check with a wrong password succeeded")
		}
		for _, secret := range []string{wrong, password} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Check error contains a password: %v", err)
			}
		}
	})
}

func TestTruncateHeader(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg…"},
		{"ééééé", 8, "éé…"}, // 10 bytes; the cut must not split é
		{"bad\xffutf8", 20, "bad\uFFFDutf8"},
	}
	for _, tc := range cases {
		got := truncate(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if len(got) > tc.n || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q: over the bound or invalid UTF-8", tc.in, tc.n, got)
		}
	}
	for n := 3; n < 40; n++ {
		for _, s := range []string{strings.Repeat("日本", 20), strings.Repeat("a€", 20), strings.Repeat("𝄞", 20)} {
			got := truncate(s, n)
			if len(got) > n || !utf8.ValidString(got) {
				t.Errorf("truncate(%q, %d) = %q: over the bound or invalid UTF-8", s, n, got)
			}
		}
	}
}
