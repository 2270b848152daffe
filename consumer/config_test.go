package consumer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

func TestStartOffsetLatestForNewGroup(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 2)
	produceN(t, kc, "in", []int{0, 1}, 0, 10)
	cfg := testConfig(kc, "in", "latest")
	cfg.StartOffset = kafka.LastOffset
	r := start(t, cfg, 0)
	eventually(t, 20*time.Second, func() string {
		if err := r.c.Ready(); err != nil {
			return err.Error()
		}
		return ""
	})
	produceN(t, kc, "in", []int{0, 1}, 10, 3)
	recs := r.receive(t, 6, 20*time.Second)
	if got, want := keysOf(recs), rangeKeys([]int{0, 1}, 10, 13); !slices.Equal(got, want) {
		t.Fatalf("received %v, want only the records produced after joining %v", got, want)
	}
	for _, rec := range recs {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "latest", "in", map[int]int64{0: 13, 1: 13})
	if err := r.stop(t, func(rec *Record) { t.Errorf("unexpected record %s", recKey(rec)) }); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// A group with a committed offset resumes from it, whatever StartOffset.
	produceN(t, kc, "in", []int{0}, 13, 2)
	r2 := start(t, cfg, 0)
	again := r2.receive(t, 2, 20*time.Second)
	if got := keysOf(again); strings.Join(got, ",") != "0@13,0@14" {
		t.Fatalf("restart with a committed offset received %v, want [0@13 0@14]", got)
	}
	for _, rec := range again {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "latest", "in", map[int]int64{0: 15, 1: 13})
}

func TestMissingTopicFailsPromptly(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	cfg := testConfig(kc, "no-such-topic", "g")
	cfg.JoinTimeout = time.Minute // the error must not come from the join timeout
	c, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *Record)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	began := time.Now()
	err = c.Run(ctx, out)
	if err == nil {
		t.Fatal("Run on a missing topic returned nil")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Run took %s to fail on a missing topic", took)
	}
	if !strings.Contains(err.Error(), "no-such-topic") || !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("Run error = %v, want one naming the topic and wrapping UnknownTopicOrPartition", err)
	}
	if _, ok := <-out; ok {
		t.Error("out not closed after Run returned")
	}
	if c.Ready() == nil {
		t.Error("Ready is nil after Run failed")
	}
	if err := c.Run(ctx, make(chan *Record)); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("second Run = %v, want an error saying Run was called more than once", err)
	}
}

func TestUnreachableBrokersFailAfterJoinTimeout(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	addr := kc.Addrs()[0]
	kc.Close() // nothing listens there any more
	cfg := testConfig(kc, "in", "g")
	cfg.Brokers = []string{addr}
	cfg.JoinTimeout = 500 * time.Millisecond
	c, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	began := time.Now()
	err = c.Run(ctx, make(chan *Record))
	if err == nil {
		t.Fatal("Run with no broker returned nil")
	}
	if took := time.Since(began); took < cfg.JoinTimeout || took > 20*time.Second {
		t.Errorf("Run failed after %s, want about JoinTimeout %s", took, cfg.JoinTimeout)
	}
	if msg := err.Error(); !strings.Contains(msg, "unavailable") || !strings.Contains(msg, cfg.JoinTimeout.String()) {
		t.Errorf("Run error = %v, want one saying the brokers were unavailable for JoinTimeout", err)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	valid := Config{Brokers: []string{"localhost:9092"}, Topic: "in", GroupID: "g"}
	if err := valid.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Brokers", func(c *Config) { c.Brokers = nil }},
		{"Brokers", func(c *Config) { c.Brokers = []string{"localhost"} }},
		{"Brokers", func(c *Config) { c.Brokers = []string{":9092"} }},
		{"Topic", func(c *Config) { c.Topic = " " }},
		{"GroupID", func(c *Config) { c.GroupID = "" }},
		{"StartOffset", func(c *Config) { c.StartOffset = 42 }},
		{"MinBytes", func(c *Config) { c.MinBytes = -1 }},
		{"MaxBytes", func(c *Config) { c.MaxBytes = -1 }},
		{"MinBytes", func(c *Config) { c.MinBytes, c.MaxBytes = 2000, 1000 }},
		{"MaxInFlight", func(c *Config) { c.MaxInFlight = -1 }},
		{"MaxWait", func(c *Config) { c.MaxWait = -time.Second }},
		{"SessionTimeout", func(c *Config) { c.SessionTimeout = -time.Second }},
		{"HeartbeatInterval", func(c *Config) { c.HeartbeatInterval = -time.Second }},
		{"RebalanceTimeout", func(c *Config) { c.RebalanceTimeout = -time.Second }},
		{"CommitInterval", func(c *Config) { c.CommitInterval = -time.Second }},
		{"RebalanceDrain", func(c *Config) { c.RebalanceDrain = -time.Second }},
		{"DrainTimeout", func(c *Config) { c.DrainTimeout = -time.Second }},
		{"JoinTimeout", func(c *Config) { c.JoinTimeout = -time.Second }},
		{"RetryBackoff", func(c *Config) { c.RetryBackoff = -time.Second }},
		{"LagInterval", func(c *Config) { c.LagInterval = -time.Second }},
		{"SessionTimeout", func(c *Config) { c.SessionTimeout = 1000 * time.Hour }},
		{"HeartbeatInterval", func(c *Config) { c.HeartbeatInterval = c.withDefaults().SessionTimeout }},
		{"RebalanceDrain", func(c *Config) { c.RebalanceDrain = 40 * time.Second }},
		{"RebalanceDrain", func(c *Config) {
			c.RebalanceTimeout = time.Minute
			c.RebalanceDrain = 40 * time.Second
		}},
	}
	for _, tc := range cases {
		c := valid
		tc.edit(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: Validate accepted %+v", tc.field, c)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
		if _, nerr := New(c, nil, nil); nerr == nil || nerr.Error() != err.Error() {
			t.Errorf("%s: New error = %v, want %v", tc.field, nerr, err)
		}
	}
}

// A member that starts a new group at the log end and acks nothing must not
// leave the next member to start at a later log end: the records it handed
// out would be skipped.
func TestStartOffsetLatestPinnedAcrossRestart(t *testing.T) {
	t.Parallel()
	kc := kafkatest.New(t, "in", 1)
	produceN(t, kc, "in", []int{0}, 0, 10)
	cfg := testConfig(kc, "in", "latest")
	cfg.StartOffset = kafka.LastOffset
	cfg.DrainTimeout = 200 * time.Millisecond
	r := start(t, cfg, 0)
	eventually(t, 20*time.Second, func() string {
		if err := r.c.Ready(); err != nil {
			return err.Error()
		}
		return ""
	})
	produceN(t, kc, "in", []int{0}, 10, 5)
	recs := r.receive(t, 5, 20*time.Second)
	if recs[0].Offset != 10 {
		t.Fatalf("first record at offset %d, want 10", recs[0].Offset)
	}
	if err := r.stop(t, nil); err != nil { // nothing acked
		t.Fatalf("Run: %v", err)
	}
	produceN(t, kc, "in", []int{0}, 15, 2)

	r2 := start(t, cfg, 0)
	again := r2.receive(t, 7, 20*time.Second)
	if got, want := keysOf(again), rangeKeys([]int{0}, 10, 17); !slices.Equal(got, want) {
		t.Fatalf("restart received %v, want %v (the un-acked records and the new ones)", got, want)
	}
	for _, rec := range again {
		rec.Ack(nil)
	}
	waitCommitted(t, kc, "latest", "in", map[int]int64{0: 17})
}
