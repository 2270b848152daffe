package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/traffic"
)

// logins are n fresh $login.succeeded tracks of users prefix0..prefixN-1,
// each with a request token minted now: each is scored on /v1/risk.
func logins(prefix string, n int) []traffic.Record {
	now := time.Now()
	var recs []traffic.Record
	for i := range n {
		id := fmt.Sprint(prefix, i)
		v := securityTrack(id, id, "", "$login.succeeded", "", now, castleserver.NewRequestToken(now, "dev-"+id))
		recs = append(recs, traffic.Record{Key: []byte(id), Value: []byte(v)})
	}
	return recs
}

// The verdict topic disappears while the worker scores: delivery holds
// (SPEC §5, §8.4). Nothing is committed past the event whose verdict is
// not written, what is read while held is not scored (it could not
// commit, and would be scored again after a restart, firing Castle's
// policies twice), and /readyz names VERDICT_TOPIC. Once the topic is
// back, every event is scored once, its verdict written once, and every
// offset commits.
func TestUnwritableVerdictTopicHolds(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 1)
	w, stop := run(t, env, map[string]string{"CASTLE_SCORING": "on", "VERDICT_TOPIC": env.VerdictTopic})
	w.waitReady(t, 30*time.Second)
	admin := &kafka.Client{Addr: kafka.TCP(env.Brokers...), Timeout: 10 * time.Second}
	if _, err := admin.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{env.VerdictTopic}}); err != nil {
		t.Fatal(err)
	}
	first := logins("a", 10)
	if err := env.Produce(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	w.waitHeld(t, "VERDICT_TOPIC", 30*time.Second)
	later := logins("b", 10)
	if err := env.Produce(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	w.waitConsumed(t, 20, "the records produced during the hold")
	time.Sleep(time.Second) // time to score them, were delivery not held
	for _, r := range env.Castle.AcceptedOn(castleserver.RiskPath) {
		if id := riskUser(t, r.Body); id[0] == 'b' {
			t.Errorf("%s, read while verdicts could not be written, was scored", id)
		}
	}
	if n := committedTotal(t, env, w.group); n > 0 {
		t.Errorf("%d offsets committed past the event whose verdict is not written (offset 0)", n)
	}
	if _, err := admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: env.VerdictTopic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.Castle.WaitFor(ctx, 20); err != nil {
		t.Fatalf("Castle accepted %d of 20: %v", env.Castle.Stats().Accepted, err)
	}
	waitCommitted(t, env, w.group, 60*time.Second)
	if code, body := w.readyz(t); code != http.StatusOK {
		t.Errorf("/readyz after recovery: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	scored := map[string]int{}
	for _, r := range env.Castle.AcceptedOn(castleserver.RiskPath) {
		scored[riskUser(t, r.Body)]++
	}
	records, err := env.VerdictRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]int{}
	for _, rec := range records {
		var v struct {
			MessageID string `json:"message_id"`
		}
		if err := json.Unmarshal(rec, &v); err != nil {
			t.Fatalf("verdict %s: %v", rec, err)
		}
		written[v.MessageID]++
	}
	for _, r := range append(first, later...) {
		id := string(r.Key)
		if scored[id] != 1 || written[id] != 1 {
			t.Errorf("%s: scored %d times, %d verdicts written; want 1 and 1", id, scored[id], written[id])
		}
	}
	if len(env.Castle.AcceptedOn(castleserver.LogPath)) != 0 {
		t.Errorf("%d events went to /v1/log", len(env.Castle.AcceptedOn(castleserver.LogPath)))
	}
}

// riskUser is the user id of a /v1/risk body.
func riskUser(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.User.ID == "" {
		t.Fatalf("risk body without a user id: %s", body)
	}
	return b.User.ID
}
