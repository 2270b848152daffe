package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/castle-destination/castle-destination/replay"
)

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want replay.Shard
		ok   bool
	}{
		{"", replay.Shard{}, true},
		{"0/1", replay.Shard{Index: 0, Count: 1}, true},
		{"3/8", replay.Shard{Index: 3, Count: 8}, true},
		{"8/8", replay.Shard{}, false},
		{"-1/8", replay.Shard{}, false},
		{"1/0", replay.Shard{}, false},
		{"1", replay.Shard{}, false},
		{"a/b", replay.Shard{}, false},
	} {
		got, err := replay.ParseShard(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestShardSelectSplitsEnvelopes checks that every message of a record
// goes to exactly one shard, one user's messages to the same one, and
// that a split envelope keeps its other members.
func TestShardSelectSplitsEnvelopes(t *testing.T) {
	const n = 4
	var items []string
	for i := range 40 {
		items = append(items, `{"type":"track","event":"E","userId":"user-`+itoa(i%10)+`","messageId":"m`+itoa(i)+`"}`)
	}
	envelope := `{"context":{"ip":"8.8.8.8"},"batch":[` + join(items) + `],"integrations":{"Castle":true},"sentAt":"2026-01-01T00:00:00Z"}`
	records := []string{
		envelope,
		`{"type":"page","userId":"A\u0062c","messageId":"x1"}`, // the same user as the next
		`{"type":"page","userId":"Abc","messageId":"x2"}`,
		`{"type":"page","anonymousId":"anon-1","messageId":"x3"}`,
		`{"type":"page","userId":12345,"messageId":"x4"}`,
		`{"type":"page","messageId":"x5"}`,
		`not json at all`,
		`[1,2,3]`,
		`{"BATCH":"not an array","type":"page","userId":"u9","messageId":"x6"}`,
	}
	count := map[string]int{}   // messages (by messageId or raw record) over all shards
	shardOf := map[string]int{} // user -> shard
	for s := range n {
		shard := replay.Shard{Index: s, Count: n}
		for _, rec := range records {
			part, mine, others := shard.Select([]byte(rec))
			if !mine {
				if part != nil || others == 0 {
					t.Errorf("shard %d: a record not its own gave %q, others %d", s, part, others)
				}
				continue
			}
			if !json.Valid(part) || part[0] != '{' {
				count[string(part)]++
				continue
			}
			var v struct {
				Batch        []map[string]any `json:"batch"`
				Context      map[string]any   `json:"context"`
				Integrations map[string]any   `json:"integrations"`
				SentAt       string           `json:"sentAt"`
				MessageID    string           `json:"messageId"`
			}
			if err := json.Unmarshal(part, &v); err != nil {
				var m struct{ MessageID string }
				if json.Unmarshal(part, &m) != nil || m.MessageID == "" {
					t.Fatalf("unexpected part %s", part)
				}
				count[m.MessageID]++ // "BATCH" that is no array: one message
				continue
			}
			if v.Batch == nil {
				if v.MessageID == "" {
					count[string(part)]++
				} else {
					count[v.MessageID]++
				}
				continue
			}
			if v.Context["ip"] != "8.8.8.8" || v.Integrations["Castle"] != true || v.SentAt == "" {
				t.Errorf("shard %d: the split envelope lost its members: %s", s, part)
			}
			for _, it := range v.Batch {
				count[it["messageId"].(string)]++
				user := it["userId"].(string)
				if prev, ok := shardOf[user]; ok && prev != s {
					t.Errorf("user %s in shards %d and %d", user, prev, s)
				}
				shardOf[user] = s
			}
		}
	}
	for i := range 40 {
		if c := count["m"+itoa(i)]; c != 1 {
			t.Errorf("envelope item m%d went to %d shards, want 1", i, c)
		}
	}
	for _, id := range []string{"x1", "x2", "x3", "x4", "x5", "x6", "not json at all", "[1,2,3]"} {
		if c := count[id]; c != 1 {
			t.Errorf("%s went to %d shards, want 1", id, c)
		}
	}
	one := replay.Shard{Index: 0, Count: n}
	a := one.Of([]byte("u:Abc"))
	_, mineEsc, _ := one.Select([]byte(records[1]))
	_, minePlain, _ := one.Select([]byte(records[2]))
	if mineEsc != minePlain {
		t.Errorf("an escaped userId and the same plain one went to different shards (shard of Abc %d)", a)
	}
	if len(shardOf) != 10 {
		t.Errorf("saw %d users, want 10", len(shardOf))
	}
}

// TestShardsOfAReplayAreDisjointAndComplete replays the same files as
// four shards: each event is sent by exactly one shard, the union is the
// unsharded replay, and each user's events come from one shard (users of
// messages that name their userId: a Secure Mode message may name none).
func TestShardsOfAReplayAreDisjointAndComplete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recs, want := stream(t, 7, 3000)
	write(t, filepath.Join(dir, "a.ndjson.gz"), gz(t, ndjson(recs)))
	inputs, err := replay.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	// Events whose message names the user Castle gets as its userId.
	namedUser := map[string]bool{}
	for _, r := range recs {
		for _, e := range r.Expects {
			if e.Outcome == "forward" && e.UserID != "" && bytes.Contains(r.Value, []byte(`"userId":"`+e.UserID+`"`)) {
				namedUser[e.TraceID] = true
			}
		}
	}
	const n = 4
	got := map[string]int{}
	userShard := map[string]int{}
	others := int64(0)
	for s := range n {
		r := dryRun(t, context.Background(), &replay.Files{Inputs: inputs}, func(c *replay.Config) {
			c.Shard = replay.Shard{Index: s, Count: n}
		})
		if r.err != nil {
			t.Fatal(r.err)
		}
		part := ids(t, r.out.Bytes())
		if len(part) == 0 {
			t.Errorf("shard %d sent nothing", s)
		}
		for id, c := range part {
			got[id] += c
		}
		sc := bufio.NewScanner(bytes.NewReader(r.out.Bytes()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct {
				User struct {
					ID string `json:"id"`
				} `json:"user"`
				Properties struct {
					TraceID string `json:"trace_id"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.User.ID == "" || !namedUser[ev.Properties.TraceID] {
				continue
			}
			if prev, ok := userShard[ev.User.ID]; ok && prev != s {
				t.Errorf("user %s sent by shards %d and %d", ev.User.ID, prev, s)
			}
			userShard[ev.User.ID] = s
		}
		others += r.sum.OtherShards
		t.Logf("shard %d: %d events, %d messages left to others", s, len(part), r.sum.OtherShards)
	}
	sameSet(t, got, want)
	if others == 0 {
		t.Error("no shard left anything to the others")
	}
}

func join(items []string) string {
	var b bytes.Buffer
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(it)
	}
	return b.String()
}
