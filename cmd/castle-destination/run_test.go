package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/consumer/kafkatest"
)

// result is what the command did: its exit code and its output.
type result struct {
	code           int
	stdout, stderr string
}

// command runs the real command in-process, as main does.
func command(ctx context.Context, env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	err := dispatch(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	code := exitCode(err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// runCastle is a Castle-compatible server that takes runEnv's secret: a
// worker that gets past its settings asks Castle at start whether it takes
// them, and these tests see only what their settings make it say.
var runCastle = sync.OnceValue(func() string {
	srv, err := castleserver.New(castleserver.Config{Secret: "not-a-real-secret", MaxRecords: -1})
	if err != nil {
		panic(err)
	}
	return httptest.NewServer(srv).URL // lives as long as the test binary
})

// runEnv is a run configuration pointed at brokers and at runCastle.
func runEnv(brokers []string, extra map[string]string) map[string]string {
	env := map[string]string{
		"KAFKA_BROKERS":     strings.Join(brokers, ","),
		"KAFKA_TOPIC":       "segment",
		"CASTLE_API_SECRET": "not-a-real-secret",
		"CASTLE_API_URL":    runCastle(),
		"METRICS_ADDR":      "127.0.0.1:0",
		"LOG_LEVEL":         "error",
		// Set, so that run leaves this test process's runtime settings alone.
		"GOGC":       "100",
		"GOMEMLIMIT": "set",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// A topic run needs that the cluster lacks fails the start with exit 2 and
// one line naming the setting; the worker creates no topic, even on a
// cluster that would create one for the asking.
func TestRunFailsOnAMissingTopic(t *testing.T) {
	kc, err := kafkatest.Start(kafkatest.Config{
		Topics: map[string]int{"segment": 2, "dlq": 1, "verdicts": 1},
		Opts:   []kfake.Opt{kfake.AllowAutoTopicCreation()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	for _, tc := range []struct {
		env           map[string]string
		setting, name string
	}{
		{map[string]string{"KAFKA_TOPIC": "no-segment"}, "KAFKA_TOPIC (--kafka-topic)", "no-segment"},
		{map[string]string{"DLQ_TOPIC": "no-dlq"}, "DLQ_TOPIC (--dlq-topic)", "no-dlq"},
		{map[string]string{"DLQ_TOPIC": "dlq", "VERDICT_TOPIC": "no-verdicts"}, "VERDICT_TOPIC (--verdict-topic)", "no-verdicts"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		r := command(ctx, runEnv(kc.Addrs(), tc.env), "run")
		cancel()
		want := "castle-destination: " + tc.setting + `: topic "` + tc.name + `" does not exist on the cluster (the worker never creates topics)` + "\n"
		if r.code != 2 || r.stderr != want {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and exactly:\n%s", tc.env, r.code, r.stderr, want)
		}
		if ids, err := kc.Partitions(t.Context(), tc.name); !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Errorf("topic %s exists after the run (partitions %v, %v): the worker created it", tc.name, ids, err)
		}
	}
}

// A topic the Kafka user may not use fails the same way, naming the setting.
func TestRunFailsOnARefusedTopic(t *testing.T) {
	allow := func(topic string) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral,
			Operation: kmsg.ACLOperationDescribe, Allow: true}
	}
	kc, err := kafkatest.Start(kafkatest.Config{
		Topics:     map[string]int{"segment": 1, "dlq": 1},
		ClientSASL: plain.Mechanism{Username: "admin", Password: "admin-pw"},
		Opts: []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin-pw"),
			kfake.User("PLAIN", "app", "app-pw", allow("segment"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r := command(ctx, runEnv(kc.Addrs(), map[string]string{
		"DLQ_TOPIC": "dlq", "KAFKA_SASL_MECHANISM": "plain", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD": "app-pw",
	}), "run")
	if r.code != 2 || len(lines(r.stderr)) != 1 ||
		!strings.HasPrefix(r.stderr, `castle-destination: DLQ_TOPIC (--dlq-topic): topic "dlq": not authorized`) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and one line naming DLQ_TOPIC, not authorized", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "app-pw") {
		t.Error("the SASL password appears in the output")
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Brokers that never answer are retried for KAFKA_JOIN_TIMEOUT, with a few
// log lines, then run exits 1 saying so.
func TestRunGivesUpOnUnreachableBrokers(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	began := time.Now()
	r := command(ctx, runEnv([]string{addr}, map[string]string{"KAFKA_JOIN_TIMEOUT": "3s", "LOG_LEVEL": "WARN", "LOG_FORMAT": "Console"}), "run")
	if took := time.Since(began); took < 3*time.Second {
		t.Errorf("gave up after %s, before KAFKA_JOIN_TIMEOUT", took)
	}
	ls := lines(r.stderr)
	last := ls[len(ls)-1]
	if r.code != 1 || !strings.HasPrefix(last, "castle-destination: start-up check of the Kafka topics: Kafka brokers "+addr+" unavailable: no usable answer within 3s (") {
		t.Errorf("exit %d, last line %q; want exit 1 and a line saying the brokers were unavailable for 3s", r.code, last)
	}
	if warns := strings.Count(r.stderr, "WARN"); warns < 1 || warns > 3 {
		t.Errorf("%d WARN lines in 3s of retrying, want 1 to 3:\n%s", warns, r.stderr)
	}
}

// SIGTERM while the brokers are still awaited is a clean stop.
func TestRunStopsCleanlyWhileWaitingForBrokers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	r := command(ctx, runEnv([]string{closedAddr(t)}, nil), "run")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
}

// A bad flag value is one error line and a pointer to -h, never the usage.
func TestBadFlagValueIsOneLineAndAPointer(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{args: []string{"run", "--kafka-session-timeout", "1x"}, want: []string{
			`castle-destination: KAFKA_SESSION_TIMEOUT (--kafka-session-timeout): "1x" is not a duration (like "500ms", "30s", "5m")`,
			`Run "castle-destination run -h" for its settings.`}},
		{args: []string{"run", "--no-such-flag"}, want: []string{
			`castle-destination: run: no such flag --no-such-flag`,
			`Run "castle-destination run -h" for its settings.`}},
		{args: []string{"run"}, env: map[string]string{"BATCH_SIZE": "lots"}, want: []string{
			`castle-destination: BATCH_SIZE (--batch-size): "lots" is not an integer`,
			`Run "castle-destination run -h" for its settings.`}},
		{args: []string{"demo", "--messages", "many"}, want: []string{
			`castle-destination: DEMO_MESSAGES (--messages): "many" is not an integer`,
			`Run "castle-destination demo -h" for its settings.`}},
		{args: []string{"demo", "--timeout", "0s"}, want: []string{
			`castle-destination: DEMO_TIMEOUT (--timeout): must be positive`}},
		{args: []string{"nonsense"}, want: []string{
			`castle-destination: unknown subcommand "nonsense"; "castle-destination -h" lists them`}},
	} {
		env := runEnv([]string{"127.0.0.1:9"}, tc.env)
		r := command(t.Context(), env, tc.args...)
		if r.code != 2 || r.stdout != "" || r.stderr != strings.Join(tc.want, "\n")+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit 2, nothing on stdout, and:\n%s", tc.args, r.code, r.stdout, r.stderr, strings.Join(tc.want, "\n"))
		}
	}
}

// --kafka-session-timeout 1ms is refused at start, naming the setting (not
// the consumer's internal fields), on one line.
func TestShortSessionTimeoutNamesTheSetting(t *testing.T) {
	r := command(t.Context(), runEnv([]string{"127.0.0.1:9"}, nil), "run", "--kafka-session-timeout", "1ms")
	if r.code != 2 || len(lines(r.stderr)) != 1 ||
		!strings.HasPrefix(r.stderr, "castle-destination: KAFKA_SESSION_TIMEOUT (--kafka-session-timeout): 1ms is too short") ||
		strings.Contains(r.stderr, "SessionTimeout") || strings.Contains(r.stderr, "HeartbeatInterval") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// -h goes to stdout and exits 0, for the command and each subcommand;
// run's does not offer replay's --dry-run, and replay's lists only what
// applies to a replay (no consumer group, metrics, scoring or verdicts).
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"run", "-h"}, {"run", "--help"}, {"demo", "-h"}, {"replay", "-h"}} {
		r := command(t.Context(), nil, args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage") {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q; want exit 0 and the usage on stdout only", args, r.code, len(r.stdout), r.stderr)
		}
	}
	r := command(t.Context(), nil, "run", "-h")
	for _, want := range []string{"--kafka-topic", "KAFKA_TOPIC", "--castle-scoring", "--verdict-topic", "--event-map", "--scoring-max-age"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run -h lacks %s", want)
		}
	}
	if strings.Contains(r.stdout, "dry-run") {
		t.Errorf("run -h mentions --dry-run, which run does not have:\n%s", r.stdout)
	}
	r = command(t.Context(), nil, "replay", "-h")
	for _, want := range []string{"--dry-run", "--shard", "--since", "--castle-api-secret", "--dlq-topic"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("replay -h lacks %s", want)
		}
	}
	if !strings.Contains(r.stdout, "  --resume\n") {
		t.Errorf("replay -h does not show --resume as a flag that may stand alone:\n%s", r.stdout)
	}
	for _, not := range []string{"--kafka-group-id", "--metrics-addr", "--castle-scoring", "--verdict-topic", "--kafka-session-timeout", "--kafka-join-timeout"} {
		if strings.Contains(r.stdout, not) {
			t.Errorf("replay -h offers %s, which does not apply to a replay", not)
		}
	}
}

// Settings errors name the env and the flag, LOG_LEVEL is read in any case,
// and a URL with credentials is never echoed with them.
func TestSettingErrorsThroughTheCommand(t *testing.T) {
	r := command(t.Context(), runEnv([]string{"127.0.0.1:9"}, map[string]string{"CASTLE_API_URL": "ftp://user:hunter2@api.castle.io"}), "run")
	if r.code != 2 || strings.Contains(r.stderr, "hunter2") || !strings.HasPrefix(r.stderr, "castle-destination: CASTLE_API_URL (--castle-api-url): ") {
		t.Errorf("bad URL: exit %d, stderr %q", r.code, r.stderr)
	}
	// LOG_LEVEL in capitals is accepted: the start gets as far as the
	// broker check (nothing listens).
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r = command(ctx, runEnv([]string{closedAddr(t)}, map[string]string{"LOG_LEVEL": "ERROR", "KAFKA_JOIN_TIMEOUT": "100ms"}), "run")
	if r.code != 1 || !strings.Contains(r.stderr, "unavailable") {
		t.Errorf("LOG_LEVEL=ERROR: exit %d, stderr %q; want the start to reach the broker check", r.code, r.stderr)
	}
}

// Group settings the brokers refuse stop the start with exit 2, naming the
// setting: a session timeout outside the brokers' bounds, a group the
// ACLs refuse.
func TestRunNamesGroupSettingsTheBrokersRefuse(t *testing.T) {
	t.Run("session timeout", func(t *testing.T) {
		kc, err := kafkatest.Start(kafkatest.Config{Topics: map[string]int{"segment": 1}, GroupMinSessionTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		r := command(ctx, runEnv(kc.Addrs(), map[string]string{"KAFKA_SESSION_TIMEOUT": "7s"}), "run")
		if r.code != 2 || len(lines(r.stderr)) != 1 ||
			!strings.HasPrefix(r.stderr, "castle-destination: KAFKA_SESSION_TIMEOUT (--kafka-session-timeout): ") {
			t.Errorf("exit %d, stderr %q; want exit 2 and one line naming KAFKA_SESSION_TIMEOUT", r.code, r.stderr)
		}
	})
	t.Run("group ACL", func(t *testing.T) {
		allow := func(op kmsg.ACLOperation) kfake.ACL {
			return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "segment", Pattern: kmsg.ACLResourcePatternTypeLiteral,
				Operation: op, Allow: true}
		}
		kc, err := kafkatest.Start(kafkatest.Config{
			Topics:     map[string]int{"segment": 1},
			ClientSASL: plain.Mechanism{Username: "admin", Password: "admin-pw"},
			Opts: []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin-pw"),
				kfake.User("PLAIN", "app", "app-pw", allow(kmsg.ACLOperationDescribe), allow(kmsg.ACLOperationRead))},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		r := command(ctx, runEnv(kc.Addrs(), map[string]string{
			"KAFKA_SASL_MECHANISM": "plain", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD": "app-pw",
		}), "run")
		if r.code != 2 || len(lines(r.stderr)) != 1 ||
			!strings.HasPrefix(r.stderr, "castle-destination: KAFKA_GROUP_ID (--kafka-group-id): ") {
			t.Errorf("exit %d, stderr %q; want exit 2 and one line naming KAFKA_GROUP_ID", r.code, r.stderr)
		}
	})
}

// A bad EVENT_MAP fails the start with exit 2 and one line naming the
// setting, the file and the line at fault; replay checks it the same way.
func TestBadEventMapFailsTheStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown type", "events:\n  Signed In: {type: $login, status: $succeeded}\n  Logged On: {type: $logon, status: $succeeded}\n", "line 3"},
		{"duplicate name", "events:\n  Signed In: {type: $login, status: $succeeded}\n  Signed In: {type: $login, status: $failed}\n", "line 3"},
		{"not YAML", "events: [unclosed\n", "EVENT_MAP"},
		{"missing file", "", "no such file"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
		if tc.yaml != "" {
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"run"}, {"replay", "--dry-run", "-"}} {
			r := command(t.Context(), runEnv([]string{"127.0.0.1:9"}, map[string]string{"EVENT_MAP": path}), args...)
			if r.code != 2 || len(lines(r.stderr)) != 1 || !strings.Contains(r.stderr, "EVENT_MAP (--event-map)") ||
				!strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s, %v: exit %d, stderr %q; want exit 2, one line naming EVENT_MAP and %q", tc.name, args, r.code, r.stderr, tc.want)
			}
		}
	}
}
