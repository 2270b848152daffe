package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/traffic"
)

// childEnv marks a re-executed test binary that runs the real command
// instead of the tests: the process tests below kill and restart it.
const childEnv = "CASTLE_DESTINATION_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main() // os.Args are [binary, subcommand, flags...]; main exits
	}
	os.Exit(m.Run())
}

// child is the worker running as a separate process.
type child struct {
	cmd    *exec.Cmd
	stderr *harness.SyncBuffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

func startChild(t *testing.T, vars map[string]string, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(exe, args...), stderr: &harness.SyncBuffer{}, done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	for k, v := range vars {
		c.cmd.Env = append(c.cmd.Env, k+"="+v) // the last of a name wins
	}
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("child %d stderr (tail):\n%s", c.cmd.Process.Pid, tail(c.stderr.String(), 4000))
		}
	})
	return c
}

// wait waits for the child to exit, failing the test after timeout.
func (c *child) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		t.Fatalf("child %d did not exit within %s", c.cmd.Process.Pid, timeout)
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// occurrence is where a forwardable message sits in the topic.
type occurrence struct {
	partition int
	offset    int64
}

// TestSIGKILLMidBatchLosesNothing runs the worker as a real child process,
// kills it with SIGKILL while Castle requests are in flight, and starts a
// new one. What the killed process committed must all have reached Castle
// (nothing committed past an undelivered event), the new process must
// deliver the rest, and every duplicate must come from a record at or past
// the committed offset: the uncommitted tail, re-read.
func TestSIGKILLMidBatchLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	env, err := harness.Start(harness.Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	ctx := context.Background()

	recs, _ := harness.Generate(23, 4_000, time.Now())
	if err := env.Produce(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Forwardable trace ids by record value; a duplicate record is an exact
	// copy of an earlier one in the same partition.
	byValue := map[string][]string{}
	for _, r := range recs {
		for _, e := range r.Expects {
			if e.Outcome == traffic.Forward {
				byValue[string(r.Value)] = append(byValue[string(r.Value)], e.TraceID)
			}
		}
	}
	where := map[string][]occurrence{} // trace id -> every record carrying it, in offset order
	for p := range env.Partitions() {
		msgs, err := env.ReadAll(ctx, env.Topic, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			for _, id := range byValue[string(m.Value)] {
				where[id] = append(where[id], occurrence{p, m.Offset})
			}
		}
	}
	if len(where) < 1000 {
		t.Fatalf("only %d forwardable messages generated", len(where))
	}

	// Slow answers keep requests in flight when the kill comes.
	env.Castle.SetLatency(15 * time.Millisecond)
	vars := env.Vars(map[string]string{
		"KAFKA_GROUP_ID":     "sigkill",
		"BATCH_SIZE":         "20",
		"CASTLE_CONCURRENCY": "8",
		"LOG_LEVEL":          "warn",
	})
	first := startChild(t, vars, "run")
	deadline := time.Now().Add(90 * time.Second)
	for n := 0; n < len(where)/3; n = int(env.Castle.Stats().Accepted) {
		select {
		case <-first.done:
			t.Fatalf("worker exited early: %v", first.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d delivered after 90s", n, len(where))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = first.wait(t, 10*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first worker ended with %v, want killed by SIGKILL", err)
	}

	// The dead process commits nothing more: what is committed now is what
	// survived the kill.
	committed, err := env.Committed(ctx, "sigkill")
	if err != nil {
		t.Fatal(err)
	}
	before := received(env)
	end, err := env.LogEnd(ctx, env.Topic)
	if err != nil {
		t.Fatal(err)
	}
	done := true
	for p, off := range end {
		if committed[p] < off {
			done = false
		}
	}
	if done {
		t.Fatal("everything was committed before the kill: the test did not kill mid-stream")
	}
	reread := 0 // forwardable messages at or past the committed offsets
	for id, occ := range where {
		below := false
		for _, o := range occ {
			if o.offset < committed[o.partition] {
				below = true
			} else {
				reread++
			}
		}
		if below && before[id] == 0 {
			t.Errorf("message %s was committed past (offsets %v, committed %v) but never reached Castle", id, occ, committed)
		}
	}
	t.Logf("killed after %d deliveries; committed %v of %v; %d forwardable messages to re-read", env.Castle.Stats().Accepted, committed, end, reread)

	env.Castle.SetLatency(0)
	second := startChild(t, vars, "run")
	missing := func() int {
		got := received(env)
		n := 0
		for id := range where {
			if got[id] == 0 {
				n++
			}
		}
		return n
	}
	// Decoding every accepted request at every poll costs more than the
	// delivery under -race: decode only when something new has arrived and
	// enough requests have been accepted to hold every forwardable message.
	for seen := int64(-1); ; time.Sleep(50 * time.Millisecond) {
		if n := env.Castle.Stats().Accepted; n != seen && n >= int64(len(where)) {
			seen = n
			if missing() == 0 {
				break
			}
		}
		select {
		case <-second.done:
			t.Fatalf("second worker exited early (%v) with %d messages missing", second.err, missing())
		default:
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("%d of %d forwardable messages never reached Castle", missing(), len(where))
		}
	}
	waitCommitted(t, env, "sigkill", end, 30*time.Second)

	// SIGTERM drains and exits 0 (a race report would exit 66).
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.wait(t, 30*time.Second); err != nil {
		t.Fatalf("second worker after SIGTERM: %v", err)
	}

	dups := 0
	for id, n := range received(env) {
		occ, ok := where[id]
		if !ok {
			t.Errorf("Castle received %q, which is not forwardable", id)
			continue
		}
		if n < 2 {
			continue
		}
		dups += n - 1
		tailHit := false
		for _, o := range occ {
			tailHit = tailHit || o.offset >= committed[o.partition]
		}
		if !tailHit {
			t.Errorf("message %s arrived %d times but every record of it (%v) was committed before the kill", id, n, occ)
		}
	}
	if dups > reread {
		t.Errorf("%d duplicates, more than the %d forwardable messages re-read after the kill", dups, reread)
	}
	t.Logf("%d duplicates, all from the %d re-read messages of the uncommitted tail", dups, reread)
	for _, s := range []string{first.stderr.String(), second.stderr.String()} {
		if strings.Contains(s, harness.Secret) {
			t.Error("the API secret appears in the worker's log")
		}
	}
}

// received counts what the Castle API accepted, by properties.trace_id.
func received(env *harness.Env) map[string]int {
	got := map[string]int{}
	for _, r := range env.Castle.Accepted() {
		id, _ := r.Properties["trace_id"].(string)
		got[id]++
	}
	return got
}

func waitCommitted(t *testing.T, env *harness.Env, group string, end map[int]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := env.Committed(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		equal := len(got) == len(end)
		for p, off := range end {
			equal = equal && got[p] == off
		}
		if equal {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets %v, want the log end %v", got, end)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
