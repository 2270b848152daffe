package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/internal/harness"
)

// The broker goes away mid-stream for a few seconds (every connection cut,
// new ones refused) and comes back on the same address with its logs and
// committed offsets. The worker keeps running through it: deliveries in
// flight finish, commits and dead letters wait for the broker, and once it
// is back everything forwardable reaches Castle and every offset commits.
func TestBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	env := startEnvWith(t, harness.Options{Partitions: 4, DataDir: t.TempDir()})
	recs, _ := harness.Generate(17, 4_000, time.Now())
	want, tally := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	// Slow Castle down so that the restart lands mid-stream.
	env.Castle.SetLatency(5 * time.Millisecond)
	w, stop := run(t, env, map[string]string{"KAFKA_COMMIT_INTERVAL": "100ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := harness.WaitSettled(ctx, w.reg, tally.Total()/3); err != nil {
		t.Fatal(err)
	}
	before := accepted(env.Castle)
	if err := env.RestartBroker(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if before >= len(want) {
		t.Fatalf("everything was delivered (%d) before the broker went down: the test restarted it too late", before)
	}
	env.Castle.SetLatency(0)
	got, o := finish(t, env, w, stop, want, 180*time.Second)
	dups := duplicates(t, got, want)
	// Every dead letter the traffic calls for is on the topic, written
	// before or after the restart, none lost while the broker was away.
	letters := 0
	for _, m := range readDLQ(t, env) {
		if headers(m)[deadletter.HeaderReason] != "" {
			letters++
		}
	}
	if wantLetters := sum(tally.DeadLetter); letters < wantLetters {
		t.Errorf("%d dead letters on the topic, want at least %d", letters, wantLetters)
	}
	t.Logf("%d delivered before the broker went down for 3s, the rest after; %d duplicates; outcomes %v",
		before, dups, nonzero(o.DeadLettered))
}

// A second worker joins the group mid-stream and leaves again before the
// backlog is done: partitions move to it and back, and nothing is lost,
// nothing is committed twice for a partition the first no longer owns, and
// every offset ends committed.
//
// The test waits for the broker to report each assignment rather than for
// a fixed time, and bounds the records each partition has in flight (four,
// each a 50 ms round trip to Castle: at most 480 events/s over the six
// partitions), so that the second worker always finds a backlog when it
// joins and leaves one behind when it goes, however long the rebalance.
func TestSecondWorkerJoinsAndLeaves(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 6)
	recs, _ := harness.Generate(19, 6_000, time.Now())
	want, tally := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	env.Castle.SetLatency(50 * time.Millisecond)
	opts := map[string]string{"KAFKA_COMMIT_INTERVAL": "100ms", "KAFKA_MAX_IN_FLIGHT": "4"}
	w1, stop1 := run(t, env, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := harness.WaitSettled(ctx, w1.reg, tally.Total()/6); err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	atJoin := accepted(env.Castle)
	w2, stop2 := run(t, env, opts)
	if w2.group != w1.group {
		t.Fatalf("groups %q and %q: the workers must share one", w1.group, w2.group)
	}
	members, err := env.WaitMembers(ctx, w1.group, 2)
	if err != nil {
		t.Fatalf("second worker: %v (Castle accepted %d of %d)", err, accepted(env.Castle), len(want))
	}
	// The second worker takes part of the backlog, then leaves.
	o2, err := harness.WaitSettled(ctx, w2.reg, 200)
	if err != nil {
		t.Fatalf("second worker: %v (Castle accepted %d of %d)", err, accepted(env.Castle), len(want))
	}
	t.Logf("second worker joined at %d of %d delivered, got partitions %v and settled %d in %s",
		atJoin, len(want), members, o2.Settled(), time.Since(joined).Round(100*time.Millisecond))
	if err := stop2(); err != nil {
		t.Fatalf("second worker: %v", err)
	}
	// It kept settling until it left.
	if o2, err = harness.Observe(w2.reg); err != nil {
		t.Fatal(err)
	}
	if n := len(received(env.Castle)); n >= len(want) {
		t.Fatalf("all %d were delivered before the second worker left: the test did not move partitions mid-stream", n)
	}
	if _, err := env.WaitMembers(ctx, w1.group, 1); err != nil {
		t.Fatal(err)
	}
	env.Castle.SetLatency(0)
	got, o1 := finish(t, env, w1, stop1, want, 180*time.Second)
	dups := duplicates(t, got, want)
	if o1.Settled()+o2.Settled() < tally.Total() {
		t.Errorf("the workers settled %d+%d messages, want at least %d", o1.Settled(), o2.Settled(), tally.Total())
	}
	t.Logf("first worker settled %d, second %d before leaving; %d duplicates from the two moves",
		o1.Settled(), o2.Settled(), dups)
}
