package worker_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/worker"
)

// run starts the worker and returns a stop func that shuts it down
// gracefully and reports its error.
func run(t *testing.T, env *harness.Env, overrides map[string]string) (*workerRun, func() error) {
	t.Helper()
	cfg, err := env.Config(overrides)
	if err != nil {
		t.Fatal(err)
	}
	w := &workerRun{reg: worker.NewRegistry(), group: cfg.Kafka.GroupID, listening: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pace := limits().Client
	go func() {
		done <- worker.Run(ctx, cfg, worker.Options{Registry: w.reg, UserRate: &pace, Listening: func(a string) { w.listening <- a }})
	}()
	var stopped bool
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = errors.New("worker did not stop within 60s")
			}
		}
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return w, stop
}

type workerRun struct {
	reg       *prometheus.Registry
	group     string
	listening chan string // the ops server's address, once
	addr      string
}

// opsAddr returns the address of the worker's /metrics, /healthz and
// /readyz.
func (w *workerRun) opsAddr(t *testing.T) string {
	t.Helper()
	if w.addr == "" {
		select {
		case w.addr = <-w.listening:
		case <-time.After(30 * time.Second):
			t.Fatal("the worker's ops server did not start")
		}
	}
	return w.addr
}

// forwards returns the messageIds the worker must deliver, and the tally.
func forwards(recs []traffic.Record) (map[string]bool, traffic.Tally) {
	want := map[string]bool{}
	var tally traffic.Tally
	for _, r := range recs {
		tally.Add(r)
		for _, e := range r.Expects {
			if e.Outcome == traffic.Forward {
				want[e.TraceID] = true
			}
		}
	}
	return want, tally
}

// received counts, per properties.trace_id, what the Castle API accepted.
func received(srv *castleserver.Server) map[string]int {
	got := map[string]int{}
	for _, r := range srv.Accepted() {
		id, _ := r.Properties["trace_id"].(string)
		got[id]++
	}
	return got
}

// duplicates reports every id Castle received that is not forwardable, and
// returns how many extra copies of the forwardable ones it received.
func duplicates(t *testing.T, got map[string]int, want map[string]bool) int {
	t.Helper()
	dups := 0
	for id, n := range got {
		if !want[id] {
			t.Errorf("Castle received %q, which is not forwardable", id)
		}
		dups += n - 1
	}
	return dups
}

// waitDelivered polls until every wanted id has been accepted at least once.
func waitDelivered(t *testing.T, srv *castleserver.Server, want map[string]bool, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	seen := int64(-1)
	for {
		// Decoding every accepted request is costly under -race, and doing
		// it at every poll of a long delivery costs more than the delivery:
		// decode only when something new has arrived and enough requests
		// have been accepted to hold every wanted id.
		n := srv.Stats().Accepted
		if (n == seen || n < int64(len(want))) && time.Now().Before(deadline) {
			if os.Getenv("E2E_TRACE") != "" && n != seen {
				t.Logf("%s: %d accepted, %d wanted", time.Now().Format("15:04:05.0"), n, len(want))
			}
			seen = n
			time.Sleep(50 * time.Millisecond)
			continue
		}
		seen = n
		got := received(srv)
		missing := 0
		for id := range want {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if os.Getenv("E2E_TRACE") != "" {
			t.Logf("%s: %d missing, %d accepted", time.Now().Format("15:04:05.0"), missing, n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d forwardable messages never reached Castle (accepted %d requests)", missing, len(want), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// accepted is how many requests Castle accepted, without decoding them.
func accepted(srv *castleserver.Server) int { return int(srv.Stats().Accepted) }

func waitCommitted(t *testing.T, env *harness.Env, group string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := env.WaitCommitted(ctx, group); err != nil {
		t.Fatal(err)
	}
}

// finish waits until Castle has received every wanted event (within
// timeout) and the worker's group has committed to the log end, then reads
// the worker's outcomes and stops it. It returns what Castle received.
func finish(t *testing.T, env *harness.Env, w *workerRun, stop func() error, want map[string]bool, timeout time.Duration) (map[string]int, harness.Outcomes) {
	t.Helper()
	got := waitDelivered(t, env.Castle, want, timeout)
	waitCommitted(t, env, w.group, 60*time.Second)
	o, err := harness.Observe(w.reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	return got, o
}

// limits are the per-user rate limits of these tests, for the local Castle
// API and the worker alike: Castle's documented limits ten times faster
// (harness.FastLimits says why).
func limits() harness.Limits { return harness.FastLimits(10) }

// startEnv starts a broker and a Castle API of the test's own. The tests
// that start one run in parallel: most of their time is spent waiting on
// real time (a Castle outage, retry backoffs, a broker down, group
// rebalances, per-user pacing), and those waits overlap.
func startEnv(t *testing.T, partitions int) *harness.Env {
	t.Helper()
	return startEnvWith(t, harness.Options{Partitions: partitions})
}

// startEnvWith starts an environment whose Castle API enforces the tests'
// per-user limits.
func startEnvWith(t *testing.T, opt harness.Options) *harness.Env {
	t.Helper()
	opt.Castle.Limits = limits().Server
	env, err := harness.Start(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	return env
}

func TestEndToEndExactSet(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 4)
	recs, _ := harness.Generate(7, 10_000, time.Now())
	want, tally := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w, stop := run(t, env, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	got, err := harness.WaitSettled(ctx, w.reg, tally.Total())
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	// Exactly the forwardable set, each once, nothing else.
	rec := received(env.Castle)
	var extra, dup []string
	for id, n := range rec {
		if !want[id] {
			extra = append(extra, id)
		} else if n > 1 {
			dup = append(dup, id)
		}
	}
	missing := 0
	for id := range want {
		if rec[id] == 0 {
			missing++
		}
	}
	if missing > 0 || len(extra) > 0 || len(dup) > 0 {
		t.Fatalf("Castle received %d distinct ids: %d missing, %d unexpected (e.g. %v), %d duplicated (e.g. %v)",
			len(rec), missing, len(extra), first(extra), len(dup), first(dup))
	}
	// The counters agree with the expected outcomes by type and reason.
	if !maps.Equal(nonzero(got.Tally.Forward), nonzero(tally.Forward)) ||
		!maps.Equal(nonzero(got.Tally.Drop), nonzero(tally.Drop)) ||
		!maps.Equal(nonzero(got.Tally.DeadLetter), nonzero(tally.DeadLetter)) ||
		got.Tally.Identified != tally.Identified {
		t.Errorf("outcomes:\n got  %+v\n want %+v", got.Tally, tally)
	}
	// Every dead letter is on the DLQ topic, and every offset is committed.
	dlq, err := env.ReadAll(context.Background(), env.DLQTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := sum(tally.DeadLetter); len(dlq) != n {
		t.Errorf("DLQ topic holds %d letters, want %d", len(dlq), n)
	}
	waitCommitted(t, env, w.group, 10*time.Second)
}

// A worker stopped with part of the topic delivered, part in flight and
// part unread: its successor delivers the rest, and nothing is lost.
func TestRestartMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 4)
	recs, _ := harness.Generate(11, 5_000, time.Now())
	want, tally := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w1, stop1 := run(t, env, map[string]string{"BATCH_SIZE": "50", "CASTLE_CONCURRENCY": "8", "SHUTDOWN_TIMEOUT": "1s"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := harness.WaitSettled(ctx, w1.reg, tally.Total()/3); err != nil {
		t.Fatal(err)
	}
	// Castle refuses everything from now until the restart, so the first
	// worker stops mid-stream however fast it delivers: what it has in
	// flight is still being retried when its drain gives up.
	env.Castle.StartOutage(castleserver.Status(503))
	if err := stop1(); err != nil {
		t.Fatalf("first worker: %v", err)
	}
	env.Castle.EndOutage()
	first := accepted(env.Castle)
	if first >= len(want) {
		t.Fatalf("the first worker delivered everything (%d): the test did not stop it mid-stream", first)
	}
	w2, stop2 := run(t, env, nil)
	got := waitDelivered(t, env.Castle, want, 180*time.Second)
	if err := stop2(); err != nil {
		t.Fatalf("second worker: %v", err)
	}
	dups := duplicates(t, got, want)
	t.Logf("first worker delivered %d, second the rest; %d duplicates across the restart", first, dups)
	waitCommitted(t, env, w2.group, 10*time.Second)
}

func TestCastleOutageNeverCommitsPastUndelivered(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 3)
	recs, _ := harness.Generate(13, 2_000, time.Now())
	want, _ := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	// The first offset per partition whose record holds a forwardable
	// message: nothing at or past it may be committed during the outage.
	fwd := map[string]bool{}
	for _, r := range recs {
		for _, e := range r.Expects {
			if e.Outcome == traffic.Forward {
				fwd[string(r.Value)] = true
			}
		}
	}
	bound := map[int]int64{}
	for p := range env.Partitions() {
		msgs, err := env.ReadAll(context.Background(), env.Topic, p)
		if err != nil {
			t.Fatal(err)
		}
		bound[p] = int64(len(msgs))
		for _, m := range msgs {
			if fwd[string(m.Value)] {
				bound[p] = m.Offset
				break
			}
		}
	}

	// A full outage, every request answered 503, for 10 s: longer than the
	// group's 6 s session timeout, a hundred commit intervals, and seven
	// rounds of the default backoff for every event in flight. That the
	// default retry budget rides out 30 s is the Castle client's own test
	// (destination's TestDefaultPolicyRidesOutThirtySecondOutage, on a fake
	// clock); here the point is what the worker commits meanwhile.
	outage := 10 * time.Second
	if testing.Short() {
		outage = 3 * time.Second
	}
	env.Castle.StartOutage(castleserver.Status(503))
	began := time.Now()
	w, stop := run(t, env, map[string]string{"KAFKA_COMMIT_INTERVAL": "100ms"})
	// Let the worker fetch, map, try, fail and (wrongly, if it would)
	// commit, checking the commits all along.
	for time.Since(began) < outage {
		time.Sleep(500 * time.Millisecond) // several commit intervals
		committed, err := env.Committed(context.Background(), w.group)
		if err != nil {
			t.Fatal(err)
		}
		for p, off := range committed {
			if off > bound[p] {
				t.Fatalf("partition %d committed to %d during the outage, past the undelivered record at %d", p, off, bound[p])
			}
		}
	}
	if n := env.Castle.Stats().Requests; n < 200 {
		t.Fatalf("the worker sent only %d requests during the outage", n)
	}
	if n := accepted(env.Castle); n != 0 {
		t.Fatalf("Castle accepted %d events during a full outage", n)
	}
	env.Castle.EndOutage()
	ended := time.Now()
	waitDelivered(t, env.Castle, want, 180*time.Second)
	t.Logf("%s outage, %d requests refused; everything delivered %s after it ended",
		outage, env.Castle.Stats().Requests-env.Castle.Stats().Accepted, time.Since(ended).Round(100*time.Millisecond))
	if o, err := harness.Observe(w.reg); err != nil {
		t.Fatal(err)
	} else if n := o.DeadLettered["retries_exhausted"]; n != 0 {
		t.Errorf("%d events dead-lettered as retries_exhausted: a %s outage is within the default retry budget", n, outage)
	}
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	waitCommitted(t, env, w.group, 10*time.Second)
}

func first(s []string) []string {
	slices.Sort(s)
	return s[:min(len(s), 3)]
}

func nonzero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
