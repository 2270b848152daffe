package worker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/promtest"
	"github.com/castle-destination/castle-destination/internal/traffic"
)

// readyz returns /readyz's status and body.
func (w *workerRun) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + w.opsAddr(t) + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitConsumed waits up to 30 s until the worker has read n messages;
// what names them in the failure.
func (w *workerRun) waitConsumed(t *testing.T, n float64, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for promtest.Value(t, w.reg, "castle_destination_messages_consumed_total") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s were not read", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHeld waits until /readyz reports a hold naming want.
func (w *workerRun) waitHeld(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := w.readyz(t)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "delivery held") && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hold naming %q on /readyz within %s: %d %s", want, timeout, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReady waits until /readyz answers 200: the worker is a group member
// and nothing is held.
func (w *workerRun) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := w.readyz(t)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s: %d %s", timeout, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forwardable generates n records whose every message is forwarded, so
// that any dead letter comes from delivery.
func forwardable(n int) []traffic.Record {
	all, _ := harness.Generate(41, 3*n, time.Now())
	var out []traffic.Record
	for _, r := range all {
		ok := len(r.Expects) > 0
		for _, e := range r.Expects {
			ok = ok && e.Outcome == traffic.Forward
		}
		if ok {
			out = append(out, r)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// committedTotal is the sum of the group's committed offsets.
func committedTotal(t *testing.T, env *harness.Env, group string) int64 {
	t.Helper()
	c, err := env.Committed(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, o := range c {
		n += max(o, 0)
	}
	return n
}

// assertNoDeliveryLetters fails if a dead letter came from delivery.
func assertNoDeliveryLetters(t *testing.T, env *harness.Env) {
	t.Helper()
	for p := range 1 {
		msgs, err := env.ReadAll(context.Background(), env.DLQTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if h := headers(m)["castle-destination-reason"]; h == "rejected" || h == "retries_exhausted" {
				t.Fatalf("a held event was dead-lettered (%s): %s", h, m.Value)
			}
		}
	}
}

// Castle refuses the worker's secret from the start (a typo, or a rotation
// that reached Castle before the pods): nothing is dead-lettered, nothing
// is committed, /readyz names CASTLE_API_SECRET; once Castle accepts the
// secret again, delivery resumes by itself and nothing is lost.
func TestWrongSecretHoldsAndRecovers(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 2)
	recs := forwardable(200)
	want, _ := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	env.Castle.SetSecret("a-secret-the-worker-does-not-have")
	w, stop := run(t, env, map[string]string{"CASTLE_RETRY_MAX_ELAPSED": "5s"})
	body := w.waitHeld(t, "CASTLE_API_SECRET", 30*time.Second)
	if strings.Contains(body, harness.Secret) {
		t.Fatalf("/readyz shows the secret: %s", body)
	}
	time.Sleep(8 * time.Second) // past the retry budget of 5 s
	if n := committedTotal(t, env, w.group); n != 0 {
		t.Errorf("%d offsets committed while every event was refused", n)
	}
	if n := env.Castle.Stats().Accepted; n != 0 {
		t.Errorf("Castle accepted %d events with a refused secret", n)
	}
	assertNoDeliveryLetters(t, env)
	env.Castle.SetSecret(harness.Secret)
	got, o := finish(t, env, w, stop, want, 120*time.Second)
	if d := duplicates(t, got, want); d != 0 {
		t.Errorf("%d duplicates", d)
	}
	if n := o.DeadLettered["rejected"] + o.DeadLettered["retries_exhausted"]; n != 0 {
		t.Errorf("%d events dead-lettered by delivery", n)
	}
	assertNoDeliveryLetters(t, env)
}

// A CASTLE_API_URL with a path Castle does not serve gets 404 on
// /api/v1/log: held, named
// on /readyz; a worker restarted with the right URL re-reads the held
// records and delivers them all. The held worker stops at once, not after
// its (here ten-minute) shutdown timeout: what it has in flight cannot
// reach Castle.
func TestWrongURLHoldsUntilFixed(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 2)
	recs := forwardable(150)
	want, _ := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w, stop := run(t, env, map[string]string{"CASTLE_API_URL": env.CastleURL + "/api", "SHUTDOWN_TIMEOUT": "10m"})
	body := w.waitHeld(t, "CASTLE_API_URL", 30*time.Second)
	if !strings.Contains(body, "/api/v1/log") {
		t.Errorf("/readyz does not show the path that was refused: %s", body)
	}
	time.Sleep(3 * time.Second)
	if n := committedTotal(t, env, w.group); n != 0 {
		t.Errorf("%d offsets committed while every request got 404", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	assertNoDeliveryLetters(t, env)
	w2, stop2 := run(t, env, nil)
	got, _ := finish(t, env, w2, stop2, want, 120*time.Second)
	if d := duplicates(t, got, want); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

// Castle starts refusing the secret after 100 events (a rotation that
// reached Castle mid-stream): the events before are delivered and
// committed, the rest hold without a dead letter, and all arrive once
// Castle accepts again.
func TestSecretRotatedMidStreamHolds(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 3)
	recs := forwardable(400)
	want, _ := forwards(recs)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	env.Castle.FailAfter(100, castleserver.Status(401))
	w, stop := run(t, env, map[string]string{"CASTLE_RETRY_MAX_ELAPSED": "5s"})
	w.waitHeld(t, "CASTLE_API_SECRET", 60*time.Second)
	time.Sleep(8 * time.Second)
	before := committedTotal(t, env, w.group)
	// Requests already on their way when the rotation took effect may be
	// accepted too.
	acc := env.Castle.Stats().Accepted
	if acc < 100 || acc > 100+64 {
		t.Errorf("Castle accepted %d, want the 100 before the rotation", acc)
	}
	if before > acc {
		t.Errorf("%d offsets committed, more than the %d records delivered before the rotation", before, acc)
	}
	assertNoDeliveryLetters(t, env)
	env.Castle.ClearFaults()
	got, _ := finish(t, env, w, stop, want, 120*time.Second)
	if d := duplicates(t, got, want); d != 0 {
		t.Errorf("%d duplicates", d)
	}
}

// The dead-letter topic disappears while the worker runs: delivery holds
// (SPEC §5). The records behind the unwritten dead letter are not
// committed, what is read while held is not sent to Castle (it could not
// commit, and would be sent again after a restart), and /readyz names
// DLQ_TOPIC. Once the topic is back, the letter is written and everything
// is delivered, once, and commits. (pipeline's
// TestUnwritableDeadLetterTopicHoldsDelivery checks the hold exactly, in
// a synctest bubble.)
func TestUnwritableDeadLetterTopicHolds(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	w, stop := run(t, env, nil)
	w.waitReady(t, 30*time.Second)
	admin := &kafka.Client{Addr: kafka.TCP(env.Brokers...), Timeout: 10 * time.Second}
	if _, err := admin.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{env.DLQTopic}}); err != nil {
		t.Fatal(err)
	}
	good := forwardable(70)
	bad := traffic.Record{Value: []byte(`{"not json`)}
	recs := append(append(append([]traffic.Record{}, good[:25]...), bad), good[25:50]...)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w.waitHeld(t, "DLQ_TOPIC", 30*time.Second)
	later := good[50:]
	if err := env.Produce(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	w.waitConsumed(t, 71, "the records produced during the hold")
	time.Sleep(time.Second) // time to send them, were delivery not held
	laterIDs, _ := forwards(later)
	got := received(env.Castle)
	for id := range laterIDs {
		if got[id] > 0 {
			t.Errorf("%s, read while dead letters could not be written, reached Castle", id)
		}
	}
	if n := committedTotal(t, env, w.group); n > 25 {
		t.Errorf("%d offsets committed past the record whose dead letter is not written (offset 25)", n)
	}
	if _, err := admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: env.DLQTopic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	want, _ := forwards(good)
	waitDelivered(t, env.Castle, want, 60*time.Second)
	waitCommitted(t, env, w.group, 60*time.Second)
	if code, body := w.readyz(t); code != http.StatusOK {
		t.Errorf("/readyz after recovery: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := duplicates(t, received(env.Castle), want); d != 0 {
		t.Errorf("%d duplicates", d)
	}
	letters := readDLQ(t, env)
	if len(letters) != 1 || headers(letters[0])["castle-destination-reason"] != "malformed" {
		t.Errorf("dead letters %d, want the one malformed record", len(letters))
	}
}

// Every message is in Secure Mode and the worker has the wrong secret: no
// event reaches Castle to be refused, but every userJwt fails its
// signature check. That holds too, naming CASTLE_API_SECRET: nothing is
// dead-lettered or committed (dead-lettering them would drain the topic).
// The worker restarted with the right secret delivers every message.
func TestWrongSecretWithOnlySecureModeTrafficHolds(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	var recs []traffic.Record
	want := map[string]bool{}
	for i := range 30 {
		id := fmt.Sprintf("secure-%d", i)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": "u-" + id, "exp": time.Now().Add(time.Hour).Unix()}).
			SignedString([]byte(harness.Secret))
		if err != nil {
			t.Fatal(err)
		}
		v := `{"type":"track","messageId":"` + id + `","userId":"u-` + id + `","event":"Clicked","channel":"client",` +
			`"integrations":{"Castle":{"userJwt":"` + tok + `"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}},` +
			`"properties":{"trace_id":"` + id + `"}}`
		recs = append(recs, traffic.Record{Value: []byte(v)})
		want[id] = true
	}
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w, stop := run(t, env, map[string]string{"CASTLE_API_SECRET": "a-secret-the-sources-do-not-sign-with"})
	w.waitHeld(t, "CASTLE_API_SECRET", 30*time.Second)
	w.waitConsumed(t, 30, "the records")
	time.Sleep(time.Second) // time to dead-letter them, were they not held
	if n := committedTotal(t, env, w.group); n != 0 {
		t.Errorf("%d offsets committed while every userJwt failed under an unconfirmed secret", n)
	}
	if l := readDLQ(t, env); len(l) != 0 {
		t.Errorf("%d dead letters (first: %s)", len(l), headers(l[0])["castle-destination-reason"])
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	w, stop = run(t, env, nil)
	got, _ := finish(t, env, w, stop, want, 60*time.Second)
	if d := duplicates(t, got, want); d != 0 {
		t.Errorf("%d duplicates", d)
	}
	if l := readDLQ(t, env); len(l) != 0 {
		t.Errorf("%d dead letters after the restart with the right secret", len(l))
	}
}

// A worker started with a secret Castle refuses, on a topic with nothing
// to send yet, is not ready: /readyz names CASTLE_API_SECRET before any
// event would have found out, so a rollout with a wrong secret stops at its
// first pod. Nothing it could send was recorded by Castle.
func TestWrongSecretNotReadyBeforeTraffic(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	env.Castle.SetSecret("a-secret-the-worker-does-not-have")
	w, stop := run(t, env, nil)
	w.waitHeld(t, "CASTLE_API_SECRET", 30*time.Second)
	env.Castle.SetSecret(harness.Secret)
	w.waitReady(t, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := env.Castle.Stats().Accepted; n != 0 {
		t.Errorf("Castle recorded %d events from the check", n)
	}
}

// A CASTLE_API_URL whose port nothing listens on, from the start: held
// under route naming CASTLE_API_URL, and nothing dead-lettered or
// committed however long past CASTLE_RETRY_MAX_ELAPSED it stays so.
func TestRefusedCastleURLFromTheStartHolds(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	_ = l.Close()
	recs := forwardable(20)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w, stop := run(t, env, map[string]string{"CASTLE_API_URL": url, "CASTLE_RETRY_MAX_ELAPSED": "2s"})
	body := w.waitHeld(t, "CASTLE_API_URL", 30*time.Second)
	if !strings.Contains(body, "has not answered since the start") {
		t.Errorf("/readyz: %s", body)
	}
	time.Sleep(4 * time.Second) // twice the retry budget
	if n := committedTotal(t, env, w.group); n != 0 {
		t.Errorf("%d offsets committed while Castle never answered", n)
	}
	if l := readDLQ(t, env); len(l) != 0 {
		t.Errorf("%d dead letters (first: %s)", len(l), headers(l[0])["castle-destination-reason"])
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Stopped while the dead-letter topic cannot be written, the worker does
// not wait out its (here ten-minute) shutdown timeout: delivery is paused
// and the letters cannot be written, so nothing in flight would settle.
// Nothing past the unwritten letter is committed; a worker started once
// the topic is back writes it and delivers the rest.
func TestStoppedDuringADeadLetterTopicHoldExitsAtOnce(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	w, stop := run(t, env, map[string]string{"SHUTDOWN_TIMEOUT": "10m"})
	w.waitReady(t, 30*time.Second)
	admin := &kafka.Client{Addr: kafka.TCP(env.Brokers...), Timeout: 10 * time.Second}
	if _, err := admin.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{env.DLQTopic}}); err != nil {
		t.Fatal(err)
	}
	recs := append([]traffic.Record{{Value: []byte(`{"not json`)}}, forwardable(20)...)
	if err := env.Produce(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	w.waitHeld(t, "DLQ_TOPIC", 60*time.Second)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("stopping took %v while held", d)
	}
	if n := committedTotal(t, env, w.group); n != 0 {
		t.Errorf("%d offsets committed past the unwritten dead letter", n)
	}
}
