package replay_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/replay"
)

const secret = "replay-secret"

// stream generates records and the forwardable ids among them.
func stream(t testing.TB, seed int64, n int) ([]traffic.Record, map[string]bool) {
	return streamMix(t, seed, n, traffic.DefaultMix())
}

// uniqueStream is a stream without duplicate records: the dedupe window
// is a process's memory, so a copy read after a restart is forwarded
// again, which would hide what a test of resuming looks for.
func uniqueStream(t testing.TB, seed int64, n int) ([]traffic.Record, map[string]bool) {
	mix := traffic.DefaultMix()
	mix.Duplicate = 0
	return streamMix(t, seed, n, mix)
}

func streamMix(t testing.TB, seed int64, n int, mix traffic.Mix) ([]traffic.Record, map[string]bool) {
	t.Helper()
	recs := traffic.Generate(traffic.Config{Seed: seed, Secret: secret, Now: time.Now(), EnvelopeFraction: 0.05, Mix: mix}, n)
	want := map[string]bool{}
	for _, r := range recs {
		for _, e := range r.Expects {
			if e.Outcome == traffic.Forward {
				want[e.TraceID] = true
			}
		}
	}
	return recs, want
}

func ndjson(recs []traffic.Record) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		// Records holding newlines (a few malformed ones) cannot be NDJSON
		// lines; escape them as the line-oriented archives do not carry them.
		b.Write(bytes.ReplaceAll(r.Value, []byte("\n"), []byte(" ")))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type run struct {
	mu      sync.Mutex
	out     bytes.Buffer
	sum     replay.Summary
	err     error
	files   *replay.Files
	letters []deadletter.Letter
}

// dryRun replays src with the dry-run deliverer and returns what it
// printed.
func dryRun(t testing.TB, ctx context.Context, src replay.Source, tweak func(*replay.Config)) *run {
	t.Helper()
	r := &run{}
	if f, ok := src.(*replay.Files); ok {
		r.files = f
	}
	dry := replay.NewDryRun(&r.out)
	m := mapping.New(mapping.Config{Secret: []byte(secret), Version: "test"})
	cfg := replay.Config{
		Pipeline: pipeline.Config{Batch: destinationBatch(), DedupeSize: 1 << 20, UserCacheSize: 1 << 16},
		Mapper:   m, Deliverer: dry, Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		DeadLetters: deadletter.SinkFunc(func(_ context.Context, l ...deadletter.Letter) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.letters = append(r.letters, l...)
			return nil
		}),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	r.sum, r.err = replay.Run(ctx, src, cfg)
	if err := dry.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

// ids parses the dry-run output: properties.trace_id per line.
func ids(t testing.TB, out []byte) map[string]int {
	t.Helper()
	got := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Type       string
			CreatedAt  string `json:"created_at"`
			Properties map[string]any
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("dry run printed invalid JSON %v: %s", err, sc.Bytes())
		}
		id, _ := ev.Properties["trace_id"].(string)
		got[id]++
	}
	return got
}

func sameSet(t *testing.T, got map[string]int, want map[string]bool) {
	t.Helper()
	missing, extra, dup := 0, 0, 0
	for id := range want {
		if got[id] == 0 {
			missing++
		}
	}
	for id, n := range got {
		if !want[id] {
			extra++
		}
		if n > 1 {
			dup++
		}
	}
	if missing+extra+dup > 0 {
		t.Fatalf("replayed %d distinct events: %d missing, %d unexpected, %d duplicated (want %d)", len(got), missing, extra, dup, len(want))
	}
}

func TestFilesPlainGzipNestedEnvelopes(t *testing.T) {
	dir := t.TempDir()
	recs, want := stream(t, 1, 3000)
	// Segment's archive layout: dated folders of gzip files, plus a plain
	// NDJSON file and a pretty-printed whole-file document.
	write(t, filepath.Join(dir, "2026-01-01", "1700000000.a.gz"), gz(t, ndjson(recs[:1000])))
	write(t, filepath.Join(dir, "2026-01-02", "deeper", "1700000100.b.gz"), gz(t, ndjson(recs[1000:2000])))
	write(t, filepath.Join(dir, "2026-01-03", "c.ndjson"), ndjson(recs[2000:2999]))
	pretty, err := json.MarshalIndent(json.RawMessage(recs[2999].Value), "", "  ")
	if err != nil {
		// A malformed record cannot be pretty-printed; write it as a line.
		pretty = append(recs[2999].Value, '\n')
	}
	write(t, filepath.Join(dir, "2026-01-04", "d.json"), pretty)
	write(t, filepath.Join(dir, "README.txt"), []byte("not an archive file"))

	inputs, err := replay.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) != 4 {
		t.Fatalf("expanded to %d files, want 4: %v", len(inputs), inputs)
	}
	r := dryRun(t, context.Background(), &replay.Files{Inputs: inputs}, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	sameSet(t, ids(t, r.out.Bytes()), want)
	if r.sum.Consumed != 3000 {
		t.Errorf("consumed %d records, want 3000", r.sum.Consumed)
	}
	if ps, n := r.files.Problems(); n != 0 {
		t.Errorf("problems on clean input: %v", ps)
	}
}

func TestCorruptGzipMemberAndBadLinesAreSkipped(t *testing.T) {
	dir := t.TempDir()
	recs, _ := stream(t, 2, 600)
	var clean []traffic.Record
	for _, r := range recs {
		if bytes.IndexByte(r.Value, '\n') < 0 {
			clean = append(clean, r)
		}
	}
	good1 := gz(t, ndjson(clean[:200]))
	bad := gz(t, ndjson(clean[200:400]))
	bad[len(bad)/2] ^= 0xff // corrupt the middle of the second member
	bad[len(bad)/2+1] ^= 0xff
	good2 := gz(t, append([]byte("{\"type\":\"page\",\n"+strings.Repeat("x", 10)+"\n"), ndjson(clean[400:])...))
	write(t, filepath.Join(dir, "multi.gz"), append(append(append([]byte{}, good1...), bad...), good2...))

	want := map[string]bool{}
	for _, set := range [][]traffic.Record{clean[:200], clean[400:]} {
		for _, r := range set {
			for _, e := range r.Expects {
				if e.Outcome == traffic.Forward {
					want[e.TraceID] = true
				}
			}
		}
	}
	inputs, err := replay.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	r := dryRun(t, context.Background(), &replay.Files{Inputs: inputs}, nil)
	if r.err != nil {
		t.Fatalf("a corrupt member must not be fatal: %v", r.err)
	}
	got := ids(t, r.out.Bytes())
	for id := range want {
		if got[id] == 0 {
			t.Fatalf("event %s of an intact member was not replayed (problems %v)", id, r.sum)
		}
	}
	// None of the corrupt member's records is sent (its checksum fails),
	// except as a copy in an intact member.
	intact := map[string]bool{}
	for _, set := range [][]traffic.Record{clean[:200], clean[400:]} {
		for _, r := range set {
			for _, e := range r.Expects {
				intact[e.MessageID] = true // a duplicate's Expect has no trace id
			}
		}
	}
	for _, r := range clean[200:400] {
		for _, e := range r.Expects {
			if got[e.TraceID] > 0 && !intact[e.MessageID] {
				t.Fatalf("event %s of the corrupt member was replayed", e.TraceID)
			}
		}
	}
	if _, n := r.files.Problems(); n == 0 {
		t.Error("the corrupt member was not reported")
	}
	if r.sum.DeadLettered["malformed"] < 2 {
		t.Errorf("the two bad lines were not dead-lettered as malformed: %v", r.sum.DeadLettered)
	}
	ps, _ := r.files.Problems()
	t.Logf("problems: %v", ps)
}

func TestResumeAfterInterruptionSendsNothingTwice(t *testing.T) {
	dir := t.TempDir()
	recs, want := uniqueStream(t, 3, 4000)
	write(t, filepath.Join(dir, "a.ndjson.gz"), gz(t, ndjson(recs[:2000])))
	write(t, filepath.Join(dir, "b.ndjson.gz"), gz(t, ndjson(recs[2000:])))
	inputs, err := replay.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp.json")

	// Two interrupted runs, each stopped once about 1,000 more messages
	// settled, then a resumed run to the end.
	got := map[string]int{}
	sent := 0
	for i, resume := range []replay.Resume{replay.ResumeOff, replay.ResumeOn, replay.ResumeOn} {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		dry := replay.NewDryRun(&out)
		m := mapping.New(mapping.Config{Secret: []byte(secret)})
		reg := prometheus.NewRegistry()
		counted := deliverFunc(func(ctx context.Context, evs []destinationEvent, settled func(int, destinationResult)) {
			dry.Submit(ctx, evs, settled)
			if o, _ := pipeline.Observe(reg); o.Settled() > 1000 && i < 2 {
				cancel()
			}
		})
		sum, err := replay.Run(ctx, &replay.Files{Inputs: inputs}, replay.Config{
			Pipeline: pipeline.Config{Batch: destinationBatch(), DedupeSize: 1 << 20, UserCacheSize: 1 << 16}, Mapper: m, Deliverer: counted,
			DeadLetters: deadletter.SinkFunc(func(context.Context, ...deadletter.Letter) error { return nil }),
			Registry:    reg, Checkpoint: cp, Resume: resume, SaveEvery: 10 * time.Millisecond,
		})
		cancel()
		if err := dry.Flush(); err != nil {
			t.Fatal(err)
		}
		ids := ids(t, out.Bytes())
		n := 0
		for id, c := range ids {
			got[id] += c
			n += c
		}
		if n != sum.Sent() {
			t.Errorf("run %d: the summary says %d events sent, the sink got %d", i, sum.Sent(), n)
		}
		sent += n
		if i < 2 {
			if !errors.Is(err, replay.ErrInterrupted) || !sum.Interrupted {
				t.Fatalf("run %d: interrupted run returned %v (interrupted %v)", i, err, sum.Interrupted)
			}
			if len(ids) == 0 || sum.Finished {
				t.Fatalf("run %d sent %d events, finished %v: not an interruption mid-way", i, len(ids), sum.Finished)
			}
			if sum.Canceled != 0 {
				t.Errorf("run %d: %d events canceled; the drain should have settled them all", i, sum.Canceled)
			}
		} else {
			if err != nil {
				t.Fatal(err)
			}
			if !sum.Finished || sum.Skipped == 0 {
				t.Errorf("resumed run: finished %v, skipped %d records", sum.Finished, sum.Skipped)
			}
		}
		t.Logf("run %d: %d events, %d records skipped", i, n, sum.Skipped)
	}
	sameSet(t, got, want)
	c, err := replay.LoadCheckpoint(cp)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Finished || c.Done != 2 || len(c.Open) != 0 {
		t.Errorf("final checkpoint %+v, want finished with both files done", c)
	}
}

func TestRateCap(t *testing.T) {
	dir := t.TempDir()
	var lines []byte
	for i := range 300 {
		lines = append(lines, []byte(`{"type":"track","event":"E","channel":"client","messageId":"r-`+itoa(i)+`","userId":"u`+itoa(i)+`","properties":{"trace_id":"r-`+itoa(i)+`"},"context":{"library":{"name":"analytics.js"}}}`+"\n")...)
	}
	write(t, filepath.Join(dir, "r.ndjson"), lines)
	inputs, err := replay.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := dryRun(t, context.Background(), &replay.Files{Inputs: inputs}, func(c *replay.Config) { c.Rate = 200 })
	if r.err != nil {
		t.Fatal(r.err)
	}
	elapsed := time.Since(start)
	// 300 events at 200/s: the first batch goes at once, so at least
	// (300-20)/200 = 1.4 s; a cap that does nothing takes milliseconds.
	if elapsed < 1300*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("300 events at --rate 200 took %v, want about 1.5 s", elapsed)
	}
	if n := len(ids(t, r.out.Bytes())); n != 300 {
		t.Errorf("sent %d, want 300", n)
	}
}

func TestWindowOnEventTime(t *testing.T) {
	dir := t.TempDir()
	var lines []byte
	for i, ts := range []string{"2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"} {
		lines = append(lines, []byte(`{"type":"track","event":"E","channel":"client","messageId":"w-`+itoa(i)+`","timestamp":"`+ts+`","properties":{"trace_id":"w-`+itoa(i)+`"},"context":{"library":{"name":"analytics.js"}}}`+"\n")...)
	}
	write(t, filepath.Join(dir, "w.ndjson"), lines)
	inputs, _ := replay.Expand([]string{dir})
	since := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	r := dryRun(t, context.Background(), &replay.Files{Inputs: inputs}, func(c *replay.Config) {
		c.Pipeline.Keep = replay.Window(since, until)
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := ids(t, r.out.Bytes())
	if len(got) != 2 || got["w-1"] != 1 || got["w-2"] != 1 {
		t.Fatalf("window [Feb, Apr) replayed %v, want w-1 and w-2", got)
	}
	if r.sum.Dropped[pipeline.DropOutsideWindow] != 2 {
		t.Errorf("dropped %v, want 2 outside the window", r.sum.Dropped)
	}
	// Original times are kept.
	if !bytes.Contains(r.out.Bytes(), []byte(`"created_at":"2026-02-01T00:00:00.000Z"`)) {
		t.Errorf("created_at not preserved: %s", r.out.Bytes())
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// A resumed replay keeps what the identify messages of the interrupted run
// said of their users, though it does not read them again (their file is
// done): every event after them carries the user's traits, as in a replay
// never interrupted.
func TestResumeKeepsWhatIdentifiesSaid(t *testing.T) {
	dir := t.TempDir()
	var a, b bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&a, `{"type":"identify","messageId":"id-%d","userId":"u%d","traits":{"email":"u%d@example.com"},"channel":"client","context":{"library":{"name":"analytics.js"}}}`+"\n", i, i, i)
	}
	for i := range 3000 {
		fmt.Fprintf(&b, `{"type":"track","event":"E","messageId":"t-%d","userId":"u%d","channel":"client","properties":{"trace_id":"t-%d"},"context":{"library":{"name":"analytics.js"}}}`+"\n", i, i%200, i)
	}
	write(t, filepath.Join(dir, "a.ndjson"), a.Bytes())
	write(t, filepath.Join(dir, "b.ndjson"), b.Bytes())
	inputs, err := replay.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "cp.json")
	sent := 0
	for i, resume := range []replay.Resume{replay.ResumeOff, replay.ResumeOn} {
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		dry := replay.NewDryRun(&out)
		reg := prometheus.NewRegistry()
		counted := deliverFunc(func(ctx context.Context, evs []destinationEvent, settled func(int, destinationResult)) {
			dry.Submit(ctx, evs, settled)
			if o, _ := pipeline.Observe(reg); o.Settled() > 1000 && i == 0 {
				cancel()
			}
		})
		sum, err := replay.Run(ctx, &replay.Files{Inputs: inputs}, replay.Config{
			Pipeline: pipeline.Config{Batch: destinationBatch(), DedupeSize: 1 << 20, UserCacheSize: 1 << 16},
			Mapper:   mapping.New(mapping.Config{Secret: []byte(secret)}), Deliverer: counted,
			DeadLetters: deadletter.SinkFunc(func(context.Context, ...deadletter.Letter) error { return nil }),
			Registry:    reg, Checkpoint: cp, Resume: resume, SaveEvery: 10 * time.Millisecond,
		})
		cancel()
		if err := dry.Flush(); err != nil {
			t.Fatal(err)
		}
		if i == 0 && (!errors.Is(err, replay.ErrInterrupted) || sum.Finished) {
			t.Fatalf("first run: %v, finished %v; want an interruption mid-way", err, sum.Finished)
		}
		if i == 0 {
			// The user cache holds what identifies said, Secure Mode
			// tokens included: the files are their owner's alone.
			for _, f := range []string{cp, cp + ".users"} {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if m := st.Mode().Perm(); m != 0o600 {
					t.Errorf("%s after the interruption has mode %v, want 0600", filepath.Base(f), m)
				}
			}
		}
		if i == 1 && (err != nil || sum.UnitsSkipped == 0) {
			t.Fatalf("resumed run: %v, %d files skipped whole; want the identifies' file skipped", err, sum.UnitsSkipped)
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var ev struct {
				User struct{ ID, Email string }
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			sent++
			if ev.User.Email != ev.User.ID+"@example.com" {
				t.Errorf("run %d: an event of %s with email %q", i, ev.User.ID, ev.User.Email)
			}
		}
	}
	if sent != 3000 {
		t.Errorf("%d events sent over both runs, want 3000", sent)
	}
}
