package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// testConfig returns a config with short timings for an in-process cluster.
func testConfig(kc *kafkatest.Cluster, topic, group string) Config {
	return Config{
		Brokers:           kc.Addrs(),
		Topic:             topic,
		GroupID:           group,
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    2 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  3 * time.Second,
		CommitInterval:    50 * time.Millisecond,
		RebalanceDrain:    300 * time.Millisecond,
		DrainTimeout:      2 * time.Second,
		JoinTimeout:       10 * time.Second,
		RetryBackoff:      100 * time.Millisecond,
		LagInterval:       50 * time.Millisecond,
	}
}

// running is a Consumer running in the background.
type running struct {
	c      *Consumer
	out    chan *Record
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
	err    error         // Run's result, set before done closes
}

func start(t *testing.T, cfg Config, buf int) *running {
	t.Helper()
	return startWith(t, cfg, buf, nil)
}

// startWith is start with the metrics registered on reg (nil: none).
func startWith(t *testing.T, cfg Config, buf int, reg prometheus.Registerer) *running {
	t.Helper()
	return startLogged(t, cfg, buf, reg, zaptest.NewLogger(t).Named(cfg.GroupID))
}

// startLogged is startWith with the given logger.
func startLogged(t *testing.T, cfg Config, buf int, reg prometheus.Registerer, logger *zap.Logger) *running {
	t.Helper()
	c, err := New(cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{c: c, out: make(chan *Record, buf), cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = c.Run(ctx, r.out)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		for range r.out {
		}
		<-r.done
	})
	return r
}

// stop cancels the consumer and calls onRecord for every record still handed
// out until Run closes out; it returns Run's error.
func (r *running) stop(t *testing.T, onRecord func(*Record)) error {
	t.Helper()
	r.cancel()
	for rec := range r.out {
		if onRecord != nil {
			onRecord(rec)
		}
	}
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after out was closed")
		return nil
	}
}

// receive returns the next n records or fails after timeout.
func (r *running) receive(t *testing.T, n int, timeout time.Duration) []*Record {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recs := make([]*Record, 0, n)
	for len(recs) < n {
		select {
		case rec, ok := <-r.out:
			if !ok {
				t.Fatalf("out closed after %d of %d records", len(recs), n)
			}
			recs = append(recs, rec)
		case <-deadline.C:
			t.Fatalf("received %d of %d records within %s", len(recs), n, timeout)
		}
	}
	return recs
}

// eventually polls cond every 10 ms until it returns "" or timeout passes,
// then fails with its last message.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func committed(t *testing.T, kc *kafkatest.Cluster, group, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := kc.CommittedOffsets(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitCommitted(t *testing.T, kc *kafkatest.Cluster, group, topic string, want map[int]int64) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		got := committed(t, kc, group, topic)
		for p, o := range want {
			if got[p] != o {
				return fmt.Sprintf("committed %v, want %v", got, want)
			}
		}
		return ""
	})
}

// produceN writes n messages to each of partitions, values "p<partition>-<i>".
func produceN(t *testing.T, kc *kafkatest.Cluster, topic string, partitions []int, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, p := range partitions {
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", from+i), Value: fmt.Appendf(nil, "p%d-%d", p, from+i)}
		}
		if err := kc.ProduceTo(ctx, topic, p, msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// set is a concurrency-safe string set with counts.
type set struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *set) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.m[k]++
}

func (s *set) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k] > 0
}

// collector receives every record of a running consumer in the background,
// without acking, until out closes.
type collector struct {
	mu   sync.Mutex
	recs []*Record
	done chan struct{} // closed when out is closed
}

// collect starts a collector on r. Use it instead of r.receive/r.stop.
func collect(r *running) *collector {
	col := &collector{done: make(chan struct{})}
	go func() {
		defer close(col.done)
		for rec := range r.out {
			col.mu.Lock()
			col.recs = append(col.recs, rec)
			col.mu.Unlock()
		}
	}()
	return col
}

// snapshot returns the records received so far.
func (col *collector) snapshot() []*Record {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]*Record(nil), col.recs...)
}

func (col *collector) len() int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return len(col.recs)
}

// waitLen waits until at least n records were received.
func (col *collector) waitLen(t *testing.T, n int, timeout time.Duration) []*Record {
	t.Helper()
	eventually(t, timeout, func() string {
		if got := col.len(); got < n {
			return fmt.Sprintf("received %d records, want %d", got, n)
		}
		return ""
	})
	return col.snapshot()
}

// recKey names a record by partition and offset.
func recKey(rec *Record) string { return fmt.Sprintf("%d@%d", rec.Partition, rec.Offset) }

// waitDone waits for Run to return and returns its error.
func (r *running) waitDone(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		t.Fatalf("Run did not return within %s", timeout)
		return nil
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatalf("metric %s is neither a counter nor a gauge", m.Desc())
	return 0
}
