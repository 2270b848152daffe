package worker_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/worker"
)

// Castle misbehaves in every documented way at once: 500/503 bursts, 429s
// with Retry-After, requests that hang past the timeout, and connection
// resets. Every forwardable message still arrives, duplicates stay few and
// are retries, and every offset is committed in the end.
func TestCastleFaultsLoseNothing(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 3)
	recs, _ := harness.Generate(21, 3_000, time.Now())
	want, _ := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	env.Castle.FailRate(0.10, castleserver.Status(503))
	env.Castle.FailRate(0.05, castleserver.Status(500))
	env.Castle.FailRate(0.05, castleserver.TooManyRequests("1"))
	env.Castle.FailRate(0.03, castleserver.Reset())
	env.Castle.FailRate(0.01, castleserver.Hang())
	w, stop := run(t, env, map[string]string{"CASTLE_TIMEOUT": "500ms"})
	got := waitDelivered(t, env.Castle, want, 180*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	dups := duplicates(t, got, want)
	st := env.Castle.Stats()
	// A duplicate needs a request Castle accepted but the client did not
	// see answered: only hangs can do that here (resets happen before the
	// request is read). Bound duplicates by them.
	if int64(dups) > st.Faults["hang"] {
		t.Errorf("%d duplicates, more than the %d hung requests that could cause them", dups, st.Faults["hang"])
	}
	t.Logf("faults injected %v; %d duplicates", st.Faults, dups)
	waitCommitted(t, env, w.group, 10*time.Second)
}

// The API secret never appears in logs (at debug level), errors, metrics,
// or dead letters, even when Castle rejects events and tokens are bad.
func TestSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 2)
	recs, _ := harness.Generate(23, 1_000, time.Now())
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	env.Castle.FailRate(0.05, castleserver.Status(400))
	env.Castle.FailRate(0.05, castleserver.Status(401))
	cfg, err := env.Config(map[string]string{"LOG_LEVEL": "debug", "CASTLE_RETRY_MAX_ELAPSED": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	var logs harness.SyncBuffer
	logger, err := ops.NewLogger("debug", "json", &logs)
	if err != nil {
		t.Fatal(err)
	}
	reg := worker.NewRegistry()
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		pace := limits().Client
		done <- worker.Run(ctx, cfg, worker.Options{Logger: logger, Registry: reg, UserRate: &pace, Listening: func(a string) { addr <- a }})
	}()
	metricsAddr := <-addr
	_, tally := forwards(recs)
	wctx, wcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer wcancel()
	if _, err := harness.WaitSettled(wctx, reg, tally.Total()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil && strings.Contains(err.Error(), harness.Secret) {
		t.Fatalf("the worker's error holds the secret: %v", err)
	}
	dlq, err := env.ReadAll(context.Background(), env.DLQTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dlq) == 0 {
		t.Fatal("no dead letters: the test exercises nothing")
	}
	var dlqBytes bytes.Buffer
	for _, m := range dlq {
		dlqBytes.Write(m.Value)
		for _, h := range m.Headers {
			dlqBytes.WriteString(h.Key + "=" + string(h.Value) + "\n")
		}
	}
	if !bytes.Contains(dlqBytes.Bytes(), []byte("castle-destination-reason=rejected")) {
		t.Errorf("no rejected dead letter among %d: Castle's 4xx path was not exercised", len(dlq))
	}
	basic := "OmxvY2FsLWRlbW8tc2VjcmV0" // base64(":" + Secret)
	for name, b := range map[string][]byte{"logs": logs.Bytes(), "metrics": metrics, "dead letters": dlqBytes.Bytes()} {
		for _, s := range []string{harness.Secret, basic} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("the %s contain the secret (%q)", name, s)
			}
		}
	}
	if logs.Len() == 0 {
		t.Error("no logs were written: the test checks nothing")
	}
}
