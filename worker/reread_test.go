package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/internal/harness"
)

// A replica joining while delivery holds (Castle refuses the secret) hands
// the first worker back partitions whose records it still holds in
// flight; it reads them again from the last commit. Those copies must not
// be done as duplicates of events not yet delivered: that committed every
// held offset, and the restart that rolled out the right secret lost them.
func TestRebalanceDuringAHoldCommitsNothingUndelivered(t *testing.T) {
	env := startEnv(t, 4)
	recs := forwardable(400)
	want, _ := forwards(recs)
	env.Castle.SetSecret("rotated-at-castle")
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	opts := map[string]string{"KAFKA_COMMIT_INTERVAL": "100ms"}
	w1, stop1 := run(t, env, opts)
	w1.waitHeld(t, "CASTLE_API_SECRET", 60*time.Second)
	_, stop2 := run(t, env, opts) // a scale-up, or a rollout's new pod
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := env.WaitMembers(ctx, w1.group, 2); err != nil {
		t.Fatal(err)
	}
	// Let both replicas take their partitions and read them.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := committedTotal(t, env, w1.group); n > 0 {
			t.Fatalf("%d offsets committed while Castle accepted nothing", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The fix rolls out as a restart.
	if err := stop2(); err != nil {
		t.Logf("stop the second replica: %v", err)
	}
	if err := stop1(); err != nil {
		t.Logf("stop the first replica: %v", err)
	}
	if n := committedTotal(t, env, w1.group); n > 0 {
		t.Fatalf("%d offsets committed at shutdown while Castle accepted nothing", n)
	}
	env.Castle.SetSecret(harness.Secret)
	w3, stop3 := run(t, env, opts)
	defer stop3()
	waitDelivered(t, env.Castle, want, 60*time.Second)
	waitCommitted(t, env, w3.group, 60*time.Second)
}
