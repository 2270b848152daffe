package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/replay"
)

// castleServer starts the Castle-compatible API on loopback with a
// latency, so that requests are in flight when a replay is interrupted.
func castleServer(t *testing.T, latency time.Duration) (*castleserver.Server, string) {
	t.Helper()
	srv, err := castleserver.New(castleserver.Config{Secret: harness.Secret, MaxRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(latency)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	return srv, hs.URL
}

// settings are a replay's settings pointed at a Castle API, every other
// default as the command applies them.
func settings(t *testing.T, castleURL string, sources ...string) replay.Settings {
	t.Helper()
	env := map[string]string{"CASTLE_API_URL": castleURL, "CASTLE_API_SECRET": harness.Secret, "BATCH_LINGER": "20ms"}
	cfg, err := harness.ParseConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return replay.Settings{Config: cfg, Sources: sources, Progress: "off"}
}

// trackLines are n track messages of n/users users each, with trace ids.
func trackLines(prefix string, n, users int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"type":"track","event":"E","channel":"client","messageId":"%s-%d","userId":"u%d","timestamp":"2026-01-01T00:00:00Z","properties":{"trace_id":"%s-%d"},"context":{"library":{"name":"analytics.js"}}}`+"\n",
			prefix, i, i%users, prefix, i)
	}
	return b.Bytes()
}

// TestInterruptTwiceThenResumeAgainstCastle replays through the real
// Castle client to the Castle-compatible server, interrupts it while
// requests are in flight, resumes and interrupts again, then resumes to
// the end: the server must have every event exactly once, and each run's
// printed total must be what the server accepted during it.
func TestInterruptTwiceThenResumeAgainstCastle(t *testing.T) {
	t.Parallel()
	srv, url := castleServer(t, 20*time.Millisecond)
	dir := t.TempDir()
	const n = 3000
	write(t, filepath.Join(dir, "a.ndjson.gz"), gz(t, trackLines("a", n/2, 1500)))
	write(t, filepath.Join(dir, "b.ndjson"), trackLines("b", n/2, 1500))
	s := settings(t, url, dir)
	s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
	// The rate keeps the pipeline from reading everything at once (it reads
	// a second of sending ahead), so the interrupts land mid-input.
	s.Rate = 1000

	before := int64(0)
	for run, stopAt := range []int64{600, 1500, 0} {
		if run > 0 {
			s.Resume = replay.ResumeOn
		}
		ctx, cancel := context.WithCancel(context.Background())
		if stopAt > 0 {
			go func() {
				if srv.WaitFor(ctx, int(stopAt)) == nil {
					cancel()
				}
			}()
		}
		var out bytes.Buffer
		sum, err := replay.Execute(ctx, s, replay.Options{Stdout: &out})
		cancel()
		accepted := srv.Stats().Accepted - before
		before += accepted
		if stopAt > 0 && !errors.Is(err, replay.ErrInterrupted) {
			t.Fatalf("run %d: %v, want interrupted", run, err)
		}
		if stopAt == 0 && err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if int64(sum.Sent()) != accepted {
			t.Errorf("run %d: the summary says %d sent, the server accepted %d", run, sum.Sent(), accepted)
		}
		if want := fmt.Sprintf("%d events sent", accepted); !strings.Contains(out.String(), want) {
			t.Errorf("run %d printed no %q:\n%s", run, want, out.String())
		}
		if stopAt > 0 && !strings.Contains(out.String(), "--resume") {
			t.Errorf("run %d: the interrupted run does not say how to continue:\n%s", run, out.String())
		}
		t.Logf("run %d: %d accepted, %d canceled, %d records skipped", run, accepted, sum.Canceled, sum.Skipped)
	}
	seen := map[string]int{}
	for _, r := range srv.Accepted() {
		seen[r.Properties["trace_id"].(string)]++
	}
	for _, p := range []string{"a", "b"} {
		for i := range n / 2 {
			if c := seen[fmt.Sprintf("%s-%d", p, i)]; c != 1 {
				t.Errorf("event %s-%d reached Castle %d times", p, i, c)
			}
		}
	}
	if len(seen) != n {
		t.Errorf("Castle got %d distinct events, want %d", len(seen), n)
	}
}

// TestCheckpointCheckedBeforeAnythingIsSent covers the checkpoint's
// settings: a location that cannot be written, a resume without a
// checkpoint, a checkpoint that would be overwritten. Each fails before
// Castle gets a request; --resume=auto starts when there is none.
func TestCheckpointCheckedBeforeAnythingIsSent(t *testing.T) {
	srv, url := castleServer(t, 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.ndjson"), trackLines("c", 50, 50))
	notADir := filepath.Join(t.TempDir(), "file")
	write(t, notADir, []byte("x"))
	existing := filepath.Join(t.TempDir(), "cp.json")
	write(t, existing, []byte(`{"version":2,"replay":"sources=elsewhere","done":0}`))
	same := filepath.Join(t.TempDir(), "cp.json")
	desc, _ := json.Marshal(settings(t, url, dir).Describe())
	write(t, same, []byte(`{"version":2,"replay":`+string(desc)+`,"done":0}`))

	for _, tc := range []struct {
		name       string
		checkpoint string
		resume     replay.Resume
		want       string
	}{
		{"unwritable location", filepath.Join(notADir, "cp.json"), replay.ResumeOff, "REPLAY_CHECKPOINT (--checkpoint): cannot be written"},
		{"resume without a checkpoint", filepath.Join(t.TempDir(), "none.json"), replay.ResumeOn, "there is no checkpoint at"},
		{"an unfinished checkpoint", same, replay.ResumeOff, "holds the progress of an unfinished replay: add --resume"},
		{"another replay's unfinished checkpoint", existing, replay.ResumeOff, "holds the progress of another, unfinished replay (sources=elsewhere): give this one its own --checkpoint"},
		{"the checkpoint of another replay", existing, replay.ResumeOn, "the checkpoint of another replay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := settings(t, url, dir)
			s.Checkpoint, s.Resume = tc.checkpoint, tc.resume
			_, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &bytes.Buffer{}})
			var se *replay.SettingError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a setting error saying %q", err, tc.want)
			}
			if got := srv.Stats().Requests; got != 0 {
				t.Fatalf("Castle got %d requests before the error", got)
			}
		})
	}
	s := settings(t, url, dir)
	s.Checkpoint, s.Resume = filepath.Join(t.TempDir(), "new.json"), replay.ResumeAuto
	if _, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &bytes.Buffer{}}); err != nil {
		t.Fatalf("--resume=auto without a checkpoint: %v", err)
	}
	if got := srv.Stats().Accepted; got != 50 {
		t.Errorf("--resume=auto sent %d of 50", got)
	}
	// Resumed again, the finished replay sends nothing.
	var out bytes.Buffer
	sum, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &out})
	if err != nil || !sum.AlreadyFinished || srv.Stats().Accepted != 50 {
		t.Errorf("resuming a finished replay: %v, already finished %v, accepted %d", err, sum.AlreadyFinished, srv.Stats().Accepted)
	}
	if !strings.Contains(out.String(), "finished: nothing was sent") {
		t.Errorf("resuming a finished replay printed:\n%s", out.String())
	}
	// Without --resume, a finished replay's checkpoint is replaced: the
	// replay runs again.
	s.Resume = replay.ResumeOff
	if _, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &bytes.Buffer{}}); err != nil {
		t.Fatalf("a new replay over a finished checkpoint: %v", err)
	}
	if got := srv.Stats().Accepted; got != 100 {
		t.Errorf("the new replay over a finished checkpoint: Castle has %d, want 100", got)
	}
}

// Settings without a source (the command line refuses them; a caller of
// Execute may not) are a setting error, not a panic, and Describe names
// them as it did before it read the first source.
func TestExecuteWithoutSources(t *testing.T) {
	srv, url := castleServer(t, 0)
	s := settings(t, url)
	if got := s.Describe(); got != "sources=" {
		t.Errorf("Describe of no sources: %q, want %q", got, "sources=")
	}
	_, err := replay.Execute(context.Background(), s, replay.Options{Stdout: &bytes.Buffer{}})
	var se *replay.SettingError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "no source") {
		t.Fatalf("got %v, want a setting error saying there is no source", err)
	}
	if got := srv.Stats().Requests; got != 0 {
		t.Fatalf("Castle got %d requests", got)
	}
}

// An interrupted replay stops in a round trip, not after its drain
// timeout, though one user's events still wait for Castle's per-user
// pacing: the events not yet sent are canceled, and the resumed replay
// sends them, each once.
func TestInterruptDoesNotWaitForPacedUsers(t *testing.T) {
	dir := t.TempDir()
	var lines bytes.Buffer
	for i := range 60 {
		user := "heavy" // 30 events: 10 per 5 s at most
		if i%2 == 1 {
			user = fmt.Sprintf("u%d", i)
		}
		fmt.Fprintf(&lines, `{"type":"track","event":"E","channel":"client","messageId":"p-%d","userId":"%s","properties":{"trace_id":"p-%d"},"context":{"library":{"name":"analytics.js"}}}`+"\n", i, user, i)
	}
	write(t, filepath.Join(dir, "p.ndjson"), lines.Bytes())
	synctest.Test(t, func(t *testing.T) {
		srv, hc, stop := memCastle(t, nil)
		defer stop()
		srv.SetLatency(10 * time.Millisecond)
		s := settings(t, "http://castle.test", dir)
		s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
		opts := replay.Options{Stdout: io.Discard, HTTPClient: hc}

		ctx, interruptedAt := interruptAfter(2 * time.Second) // the heavy user has sent 10 and waits until 5 s
		sum, err := replay.Execute(ctx, s, opts)
		if !errors.Is(err, replay.ErrInterrupted) {
			t.Fatalf("replay: %v, want interrupted", err)
		}
		if took := time.Since(*interruptedAt); took > time.Second {
			t.Errorf("stopped %v after the interrupt, want at once (the drain timeout is %v)", took, s.Config.Ops.ShutdownTimeout)
		}
		if sum.Canceled < 20 || sum.Sent() != int(srv.Stats().Accepted) {
			t.Errorf("canceled %d, sent %d, Castle accepted %d; want the heavy user's last 20 canceled", sum.Canceled, sum.Sent(), srv.Stats().Accepted)
		}

		s.Resume = replay.ResumeOn
		if _, err := replay.Execute(context.Background(), s, opts); err != nil {
			t.Fatalf("resume: %v", err)
		}
		assertEachOnce(t, srv, "p", 60)
	})
}

// With --rate, an interrupt does not wait for the batches already read to
// get their pacing slots: they are canceled at once and --resume sends
// them, each once.
func TestInterruptDoesNotWaitForRatePacing(t *testing.T) {
	dir := t.TempDir()
	var lines bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&lines, `{"type":"track","event":"E","channel":"client","messageId":"r-%d","userId":"u%d","properties":{"trace_id":"r-%d"},"context":{"library":{"name":"analytics.js"}}}`+"\n", i, i, i)
	}
	write(t, filepath.Join(dir, "r.ndjson"), lines.Bytes())
	synctest.Test(t, func(t *testing.T) {
		srv, hc, stop := memCastle(t, nil)
		defer stop()
		s := settings(t, "http://castle.test", dir)
		s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
		s.Rate = 5 // 40 events: 8 s
		opts := replay.Options{Stdout: io.Discard, HTTPClient: hc}

		ctx, interruptedAt := interruptAfter(2 * time.Second)
		sum, err := replay.Execute(ctx, s, opts)
		if !errors.Is(err, replay.ErrInterrupted) {
			t.Fatalf("replay: %v, want interrupted", err)
		}
		if took := time.Since(*interruptedAt); took > time.Second {
			t.Errorf("stopped %v after the interrupt, want at once", took)
		}
		if sent := sum.Sent(); sent == 0 || sent >= 40 || sent != int(srv.Stats().Accepted) {
			t.Errorf("sent %d, Castle accepted %d; want part of the 40", sent, srv.Stats().Accepted)
		}
		s.Resume = replay.ResumeOn
		if _, err := replay.Execute(context.Background(), s, opts); err != nil {
			t.Fatalf("resume: %v", err)
		}
		assertEachOnce(t, srv, "r", 40)
	})
}

// A replay asks Castle before it reads anything: with a secret Castle
// refuses, or a URL that does not answer, it fails at once naming the
// setting (exit 2), sends nothing, and leaves no checkpoint in the way of
// the same command once the setting is fixed.
func TestReplayChecksCastleFirst(t *testing.T) {
	dir := t.TempDir()
	writeTracks := func() {
		var lines bytes.Buffer
		for i := range 20 {
			fmt.Fprintf(&lines, `{"type":"track","event":"E","channel":"client","messageId":"c-%d","userId":"u%d","properties":{"trace_id":"c-%d"},"context":{"library":{"name":"analytics.js"}}}`+"\n", i, i, i)
		}
		write(t, filepath.Join(dir, "c.ndjson"), lines.Bytes())
	}
	writeTracks()
	for _, tc := range []struct {
		name, setting string
		refuse        bool
	}{{"secret refused", "CASTLE_API_SECRET", false}, {"nothing listening", "CASTLE_API_URL", true}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var dial func(context.Context, string, string) (net.Conn, error)
				if tc.refuse {
					dial = func(context.Context, string, string) (net.Conn, error) {
						return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
					}
				}
				srv, hc, stop := memCastle(t, dial)
				defer stop()
				if !tc.refuse {
					srv.SetSecret("the-secret-castle-has-now")
				}
				s := settings(t, "http://castle.test", dir)
				s.Checkpoint = filepath.Join(t.TempDir(), "cp.json")
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err := replay.Execute(ctx, s, replay.Options{Stdout: io.Discard, HTTPClient: hc})
				var se *replay.SettingError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.setting) {
					t.Fatalf("replay: %v, want a setting error naming %s", err, tc.setting)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("failed after %v", took)
				}
				if n := srv.Stats().Accepted; n != 0 {
					t.Errorf("Castle accepted %d events", n)
				}
				if _, err := os.Stat(s.Checkpoint); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a checkpoint was left: %v", err)
				}
			})
		})
	}
}

// memCastle is the Castle-compatible server on an in-memory listener, for
// replays inside a synctest bubble: the server, an HTTP client that
// reaches it (through dial, if set, instead), and a stop to defer.
func memCastle(t *testing.T, dial func(context.Context, string, string) (net.Conn, error)) (*castleserver.Server, *http.Client, func()) {
	t.Helper()
	srv, err := castleserver.New(castleserver.Config{Secret: harness.Secret, MaxRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := castleserver.NewMemListener()
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(l) }()
	if dial == nil {
		dial = l.DialContext
	}
	tr := &http.Transport{DialContext: dial}
	return srv, &http.Client{Transport: tr}, func() { tr.CloseIdleConnections(); _ = hs.Close(); srv.Close() }
}

// interruptAfter returns a context canceled after d, and where the time of
// the cancel is written.
func interruptAfter(d time.Duration) (context.Context, *time.Time) {
	ctx, interrupt := context.WithCancel(context.Background())
	at := new(time.Time)
	go func() {
		time.Sleep(d)
		*at = time.Now()
		interrupt()
	}()
	return ctx, at
}

// assertEachOnce checks that Castle accepted the events prefix-0 ..
// prefix-(n-1) (by trace_id) once each.
func assertEachOnce(t *testing.T, srv *castleserver.Server, prefix string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range srv.Accepted() {
		seen[r.Properties["trace_id"].(string)]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("%s-%d", prefix, i)]; c != 1 {
			t.Errorf("event %s-%d reached Castle %d times, want once", prefix, i, c)
		}
	}
}
