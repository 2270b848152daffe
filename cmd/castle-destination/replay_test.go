package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
)

// TestReplayInterruptedTwiceByASignalSendsEachEventOnce runs the real
// replay command as a child process against the Castle-compatible server,
// stops it with SIGINT and then SIGTERM while requests are in flight,
// resuming each time, and lets the third run finish. Castle must get every
// event exactly once, and each run's printed total must be what Castle
// accepted during it.
func TestReplayInterruptedTwiceByASignalSendsEachEventOnce(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	srv, err := castleserver.New(castleserver.Config{Secret: harness.Secret, MaxRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(10 * time.Millisecond)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })

	dir := t.TempDir()
	const n = 3000
	writeTracks(t, filepath.Join(dir, "events.ndjson"), "p-", n)
	vars := map[string]string{
		"CASTLE_API_URL": hs.URL, "CASTLE_API_SECRET": harness.Secret,
		"REPLAY_CHECKPOINT": filepath.Join(t.TempDir(), "cp.json"), "REPLAY_RATE": "600", "REPLAY_PROGRESS": "off",
	}
	before := int64(0)
	for run, stop := range []struct {
		at  int
		sig os.Signal
	}{{700, syscall.SIGINT}, {1600, syscall.SIGTERM}, {0, nil}} {
		args := []string{"replay", dir}
		if run > 0 {
			args = []string{"replay", "--resume", dir}
		}
		c, stdout := startReplayChild(t, vars, args...)
		if stop.sig != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			if err := srv.WaitFor(ctx, stop.at); err != nil {
				t.Fatalf("run %d: Castle did not get %d events: %v", run, stop.at, err)
			}
			cancel()
			if err := c.cmd.Process.Signal(stop.sig); err != nil {
				t.Fatal(err)
			}
		}
		err := c.wait(t, 60*time.Second)
		accepted := srv.Stats().Accepted - before
		before += accepted
		var exit *exec.ExitError
		switch {
		case stop.sig != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1):
			t.Fatalf("run %d: interrupted replay exited with %v, want exit code 1", run, err)
		case stop.sig == nil && err != nil:
			t.Fatalf("run %d: %v", run, err)
		}
		if want := fmt.Sprintf("%d events sent", accepted); !strings.Contains(stdout.String(), want) {
			t.Errorf("run %d: Castle accepted %d, the command printed:\n%s", run, accepted, stdout.String())
		}
		if stop.sig != nil && !strings.Contains(stdout.String(), "plus --resume") {
			t.Errorf("run %d: no hint to resume in:\n%s", run, stdout.String())
		}
		t.Logf("run %d: %d events accepted", run, accepted)
	}
	seen := map[string]int{}
	for _, r := range srv.Accepted() {
		id, _ := r.Properties["trace_id"].(string)
		seen[id]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("p-%d", i)]; c != 1 {
			t.Errorf("event p-%d reached Castle %d times", i, c)
		}
	}
}

// writeTracks writes n client-side track messages to path, one user each,
// whose messageId and properties.trace_id are prefix and their index.
func writeTracks(t *testing.T, path, prefix string, n int) {
	t.Helper()
	var lines bytes.Buffer
	for i := range n {
		fmt.Fprintf(&lines, `{"type":"track","event":"E","channel":"client","messageId":"%s%d","userId":"u%d","timestamp":"2026-01-01T00:00:00Z","properties":{"trace_id":"%s%d"},"context":{"library":{"name":"analytics.js"}}}`+"\n", prefix, i, i, prefix, i)
	}
	if err := os.WriteFile(path, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startReplayChild starts the command as a child process with its stdout
// captured.
func startReplayChild(t *testing.T, vars map[string]string, args ...string) (*child, *harness.SyncBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(exe, args...), stderr: &harness.SyncBuffer{}, done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	for k, v := range vars {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	stdout := &harness.SyncBuffer{}
	c.cmd.Stdout, c.cmd.Stderr = stdout, c.stderr
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
	return c, stdout
}

func TestParseReplayShardResumeAndSources(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	base := map[string]string{"CASTLE_API_SECRET": "s"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" for success
	}{
		{"shard flag", []string{"--shard", "2/4", "x.ndjson"}, nil, ""},
		{"shard env", []string{"x.ndjson"}, map[string]string{"REPLAY_SHARD": "3/4"}, ""},
		{"shard out of range", []string{"--shard", "4/4", "x.ndjson"}, nil, `REPLAY_SHARD (--shard): "4/4" is not I/N with 0 <= I < N`},
		{"shard not I/N", []string{"x.ndjson"}, map[string]string{"REPLAY_SHARD": "9"}, `REPLAY_SHARD (--shard): "9" is not I/N (the I-th of N parts, from 0)`},
		{"since not a time", []string{"--since", "yesterday", "x.ndjson"}, nil, `REPLAY_SINCE (--since): "yesterday" is not an RFC 3339 time or a YYYY-MM-DD date`},
		{"resume auto", []string{"--resume=auto", "x.ndjson"}, nil, ""},
		{"resume env auto", []string{"x.ndjson"}, map[string]string{"REPLAY_RESUME": "auto"}, ""},
		{"resume bad", []string{"--resume=maybe", "x.ndjson"}, nil, `REPLAY_RESUME (--resume): "maybe" is not true, false or auto`},
		{"s3 source", []string{"s3://bucket/segment-logs/"}, nil, ""},
		{"s3 without bucket", []string{"s3:///x"}, nil, "names no bucket"},
		{"s3 with files", []string{"s3://bucket/x", "x.ndjson"}, nil, "cannot be combined"},
		{"negative drain", []string{"--shutdown-timeout", "-1s", "x.ndjson"}, nil, "SHUTDOWN_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range tc.env {
				m[k] = v
			}
			s, err := parseReplay(tc.args, env(m), &bytes.Buffer{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("parse %v: %v", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("parse %v: %v, want an error naming %q", tc.args, err, tc.want)
			}
			if tc.name == "shard env" && s.shard.s.String() != "3/4" {
				t.Errorf("REPLAY_SHARD=3/4 parsed as %q", s.shard.s.String())
			}
			// Shards beside each other get a default checkpoint each.
			if cp := s.settings().Checkpoint; tc.name == "shard flag" && cp != "castle-replay.shard-2-of-4.checkpoint.json" {
				t.Errorf("--shard 2/4: default checkpoint %q", cp)
			}
			if cp := s.settings().Checkpoint; tc.name == "s3 source" && cp != "castle-replay.checkpoint.json" {
				t.Errorf("no shard: default checkpoint %q", cp)
			}
		})
	}
}

// A Castle secret read with a trailing newline (as a Kubernetes Secret made
// from a file often is) is used without it, and the log says so: Castle
// accepts every event instead of refusing them all.
func TestSecretWithTrailingNewlineIsTrimmed(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: harness.Secret, MaxRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	dir := t.TempDir()
	in := filepath.Join(dir, "events.ndjson")
	writeTracks(t, in, "nl-", 20)

	env := map[string]string{"CASTLE_API_SECRET": harness.Secret + "\n", "CASTLE_API_URL": hs.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err = replayCommand(ctx, []string{"--progress", "off", "--checkpoint", filepath.Join(dir, "ck.json"), in},
		func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, tail(stderr.String(), 2000))
	}
	if got := srv.Stats().Accepted; got != 20 {
		t.Errorf("Castle accepted %d events, want 20", got)
	}
	log := stderr.String()
	if !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, "CASTLE_API_SECRET had white space or quote marks") {
		t.Errorf("no warning about the trimmed secret in:\n%s", tail(log, 2000))
	}
	if strings.Contains(log, harness.Secret) {
		t.Error("the log shows the secret")
	}
}

// The replay Job that deploy/ ships (components/replay/job.yaml; the Helm
// chart renders the same arguments, deploy.TestChartMatchesKustomize)
// starts on a fresh volume, where it has no checkpoint yet, and its
// restarted container continues from the checkpoint without sending
// anything twice.
func TestShippedReplayJobStartsAndResumes(t *testing.T) {
	b, err := os.ReadFile("../../deploy/components/replay/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string
						Env  []struct{ Name, Value string }
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &job); err != nil || len(job.Spec.Template.Spec.Containers) == 0 {
		t.Fatalf("job.yaml: %v", err)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "replay" {
		t.Fatalf("the Job runs %v, not replay", c.Args)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "events.ndjson")
	writeTracks(t, in, "job-", 200)
	vars := map[string]string{"JOB_COMPLETION_INDEX": "0"}
	for _, e := range c.Env {
		if e.Value != "" {
			vars[e.Name] = e.Value
		}
	}
	var args []string
	for _, a := range c.Args[1:] {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		a = strings.ReplaceAll(a, "/var/lib/castle-replay", dir) // the Job's volume
		a = strings.TrimPrefix(a, "--rate=100")                  // no need to wait here
		if strings.HasPrefix(a, "s3://") || strings.HasPrefix(a, "kafka:") {
			a = in
		}
		if a != "" {
			args = append(args, a)
		}
	}

	srv, err := castleserver.New(castleserver.Config{Secret: harness.Secret, MaxRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	env := map[string]string{"CASTLE_API_SECRET": harness.Secret, "CASTLE_API_URL": hs.URL}
	replay := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stdout, stderr bytes.Buffer
		err := replayCommand(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
		if err != nil {
			return fmt.Errorf("replay %v: %w\n%s", args, err, tail(stderr.String(), 2000))
		}
		return nil
	}
	if err := replay(); err != nil {
		t.Fatalf("first start, no checkpoint yet: %v", err)
	}
	first := srv.Stats().Accepted
	if first == 0 || first >= 200 {
		t.Fatalf("shard 0 of the Job sent %d of 200 events, want its part", first)
	}
	if err := replay(); err != nil {
		t.Fatalf("restarted container: %v", err)
	}
	if again := srv.Stats().Accepted; again != first {
		t.Errorf("the restarted container sent %d events again", again-first)
	}
}
