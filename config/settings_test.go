package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/pipeline"
)

func withGood(env map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range goodEnv {
		out[k] = v
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// runErr parses and validates the run settings.
func runErr(t *testing.T, args []string, env map[string]string) error {
	t.Helper()
	c, err := parse(t, args, withGood(env))
	if err != nil {
		return err
	}
	return c.ValidateRun()
}

// Every error of parsing or validating the settings is a SettingError that
// names both the environment variable and the flag, on one line.
func TestEveryErrorNamesEnvAndFlag(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		env       map[string]string
		args      []string
		env0, fl0 string
	}{
		{env: map[string]string{"KAFKA_BROKERS": ""}, env0: "KAFKA_BROKERS", fl0: "kafka-brokers"},
		{env: map[string]string{"KAFKA_BROKERS": "k1"}, env0: "KAFKA_BROKERS", fl0: "kafka-brokers"},
		{env: map[string]string{"KAFKA_TOPIC": ""}, env0: "KAFKA_TOPIC", fl0: "kafka-topic"},
		{args: []string{"--kafka-group-id="}, env0: "KAFKA_GROUP_ID", fl0: "kafka-group-id"},
		{env: map[string]string{"KAFKA_START_OFFSET": "middle"}, env0: "KAFKA_START_OFFSET", fl0: "kafka-start-offset"},
		{env: map[string]string{"DLQ_TOPIC": "segment"}, env0: "DLQ_TOPIC", fl0: "dlq-topic"},
		{env: map[string]string{"KAFKA_FETCH_MIN_BYTES": "0"}, env0: "KAFKA_FETCH_MIN_BYTES", fl0: "kafka-fetch-min-bytes"},
		{env: map[string]string{"KAFKA_FETCH_MAX_BYTES": "0"}, env0: "KAFKA_FETCH_MAX_BYTES", fl0: "kafka-fetch-max-bytes"},
		{env: map[string]string{"KAFKA_FETCH_MAX_BYTES": "5000000000"}, env0: "KAFKA_FETCH_MAX_BYTES", fl0: "kafka-fetch-max-bytes"},
		{env: map[string]string{"KAFKA_MAX_IN_FLIGHT": "100000000000"}, env0: "KAFKA_MAX_IN_FLIGHT", fl0: "kafka-max-in-flight"},
		{env: map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, env0: "SHUTDOWN_TIMEOUT", fl0: "shutdown-timeout"},
		{env: map[string]string{"SHUTDOWN_TIMEOUT": "1000000h"}, env0: "SHUTDOWN_TIMEOUT", fl0: "shutdown-timeout"},
		{env: map[string]string{"CASTLE_TIMEOUT": "1ns"}, env0: "CASTLE_TIMEOUT", fl0: "castle-timeout"},
		{env: map[string]string{"CASTLE_API_URL": "https://h/foo?x=1#f"}, env0: "CASTLE_API_URL", fl0: "castle-api-url"},
		{env: map[string]string{"CASTLE_API_URL": "http://127.0.0.1:18089/v1?"}, env0: "CASTLE_API_URL", fl0: "castle-api-url"},
		{env: map[string]string{"CASTLE_API_URL": "http://127.0.0.1:18089/v1#"}, env0: "CASTLE_API_URL", fl0: "castle-api-url"},
		{env: map[string]string{"KAFKA_FETCH_MAX_WAIT": "0s"}, env0: "KAFKA_FETCH_MAX_WAIT", fl0: "kafka-fetch-max-wait"},
		{args: []string{"--kafka-session-timeout", "1ms"}, env0: "KAFKA_SESSION_TIMEOUT", fl0: "kafka-session-timeout"},
		{env: map[string]string{"KAFKA_SESSION_TIMEOUT": "5s"}, env0: "KAFKA_SESSION_TIMEOUT", fl0: "kafka-session-timeout"},
		{env: map[string]string{"KAFKA_SESSION_TIMEOUT": "9000h"}, env0: "KAFKA_SESSION_TIMEOUT", fl0: "kafka-session-timeout"},
		{env: map[string]string{"KAFKA_REBALANCE_TIMEOUT": "2s"}, env0: "KAFKA_REBALANCE_TIMEOUT", fl0: "kafka-rebalance-timeout"},
		{env: map[string]string{"KAFKA_COMMIT_INTERVAL": "0s"}, env0: "KAFKA_COMMIT_INTERVAL", fl0: "kafka-commit-interval"},
		{env: map[string]string{"KAFKA_MAX_IN_FLIGHT": "0"}, env0: "KAFKA_MAX_IN_FLIGHT", fl0: "kafka-max-in-flight"},
		{env: map[string]string{"KAFKA_JOIN_TIMEOUT": "0s"}, env0: "KAFKA_JOIN_TIMEOUT", fl0: "kafka-join-timeout"},
		{env: map[string]string{"KAFKA_TLS_CA_FILE": filepath.Join(dir, "missing.pem")}, env0: "KAFKA_TLS_CA_FILE", fl0: "kafka-tls-ca-file"},
		{env: map[string]string{"KAFKA_TLS_KEY_FILE": "/k.pem"}, env0: "KAFKA_TLS_CERT_FILE", fl0: "kafka-tls-cert-file"},
		{env: map[string]string{"KAFKA_TLS_CERT_FILE": "/c.pem"}, env0: "KAFKA_TLS_KEY_FILE", fl0: "kafka-tls-key-file"},
		{env: map[string]string{"KAFKA_SASL_MECHANISM": "gssapi"}, env0: "KAFKA_SASL_MECHANISM", fl0: "kafka-sasl-mechanism"},
		{env: map[string]string{"KAFKA_SASL_USERNAME": "u"}, env0: "KAFKA_SASL_MECHANISM", fl0: "kafka-sasl-mechanism"},
		{env: map[string]string{"KAFKA_SASL_MECHANISM": "plain", "KAFKA_SASL_PASSWORD": "p"}, env0: "KAFKA_SASL_USERNAME", fl0: "kafka-sasl-username"},
		{env: map[string]string{"KAFKA_SASL_MECHANISM": "plain", "KAFKA_SASL_USERNAME": "u"}, env0: "KAFKA_SASL_PASSWORD", fl0: "kafka-sasl-password"},
		{env: map[string]string{"CASTLE_API_SECRET": ""}, env0: "CASTLE_API_SECRET", fl0: "castle-api-secret"},
		{env: map[string]string{"CASTLE_API_URL": "ftp://x"}, env0: "CASTLE_API_URL", fl0: "castle-api-url"},
		{env: map[string]string{"CASTLE_CONCURRENCY": "0"}, env0: "CASTLE_CONCURRENCY", fl0: "castle-concurrency"},
		{env: map[string]string{"CASTLE_TIMEOUT": "0s"}, env0: "CASTLE_TIMEOUT", fl0: "castle-timeout"},
		{env: map[string]string{"CASTLE_TIMEOUT": "10m"}, env0: "CASTLE_RETRY_MAX_ELAPSED", fl0: "castle-retry-max-elapsed"},
		{env: map[string]string{"PAGE_TYPE": "screen"}, env0: "PAGE_TYPE", fl0: "page-type"},
		{env: map[string]string{"DEDUPE_SIZE": "0"}, env0: "DEDUPE_SIZE", fl0: "dedupe-size"},
		{env: map[string]string{"USER_CACHE_SIZE": "-1"}, env0: "USER_CACHE_SIZE", fl0: "user-cache-size"},
		{env: map[string]string{"EVENT_MAP": filepath.Join(dir, "none.yaml")}, env0: "EVENT_MAP", fl0: "event-map"},
		{env: map[string]string{"BATCH_SIZE": "0"}, env0: "BATCH_SIZE", fl0: "batch-size"},
		{env: map[string]string{"BATCH_BYTES": "0"}, env0: "BATCH_BYTES", fl0: "batch-bytes"},
		{env: map[string]string{"BATCH_LINGER": "0s"}, env0: "BATCH_LINGER", fl0: "batch-linger"},
		{env: map[string]string{"CASTLE_SCORING": "yes"}, env0: "CASTLE_SCORING", fl0: "castle-scoring"},
		{env: map[string]string{"SCORING_MAX_AGE": "0s"}, env0: "SCORING_MAX_AGE", fl0: "scoring-max-age"},
		{env: map[string]string{"SCORING_MAX_AGE": "121s"}, env0: "SCORING_MAX_AGE", fl0: "scoring-max-age"},
		{env: map[string]string{"VERDICT_TOPIC": "segment"}, env0: "VERDICT_TOPIC", fl0: "verdict-topic"},
		{env: map[string]string{"VERDICT_TOPIC": "dlq", "DLQ_TOPIC": "dlq"}, env0: "VERDICT_TOPIC", fl0: "verdict-topic"},
		{env: map[string]string{"METRICS_ADDR": "9090"}, env0: "METRICS_ADDR", fl0: "metrics-addr"},
		{env: map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, env0: "SHUTDOWN_TIMEOUT", fl0: "shutdown-timeout"},
		{env: map[string]string{"LOG_LEVEL": "loud"}, env0: "LOG_LEVEL", fl0: "log-level"},
		{env: map[string]string{"LOG_FORMAT": "xml"}, env0: "LOG_FORMAT", fl0: "log-format"},
		{args: []string{"--batch-size", "x"}, env0: "BATCH_SIZE", fl0: "batch-size"},
	}
	for _, tt := range tests {
		t.Run(tt.env0+"/"+strings.Join(tt.args, " "), func(t *testing.T) {
			err := runErr(t, tt.args, tt.env)
			var se *SettingError
			if !errors.As(err, &se) {
				t.Fatalf("error = %v (%T), want a *SettingError", err, err)
			}
			if se.Env != tt.env0 || se.Flag != tt.fl0 {
				t.Errorf("error names %s (--%s), want %s (--%s): %v", se.Env, se.Flag, tt.env0, tt.fl0, err)
			}
			if want := tt.env0 + " (--" + tt.fl0 + ")"; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q, want it to start with %q", err, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if regexp.MustCompile(`\b(SessionTimeout|RebalanceTimeout|HeartbeatInterval|RebalanceDrain|MaxWait|MinBytes)\b`).MatchString(err.Error()) {
				t.Errorf("error names an internal field: %q", err)
			}
		})
	}
}

// The smallest group timeouts config accepts are ones the consumer accepts
// too, so no consumer error naming its internal fields reaches the user.
func TestAcceptedGroupTimeoutsSuitTheConsumer(t *testing.T) {
	c, err := parse(t, nil, goodEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Millisecond, time.Second, 5 * time.Second, 6 * time.Second, 7 * time.Second} {
		c.Kafka.SessionTimeout, c.Kafka.RebalanceTimeout = d, d
		verr := c.Kafka.ValidateGroup()
		cerr := consumer.Config{Brokers: []string{"k:9092"}, Topic: "t", GroupID: "g", SessionTimeout: d, RebalanceTimeout: d}.Validate()
		if verr == nil && cerr != nil {
			t.Errorf("timeouts of %s: config accepts them, the consumer refuses them: %v", d, cerr)
		}
	}
}

// Each default has one home: what config registers is the owning package's
// constant.
func TestDefaultsComeFromTheirPackages(t *testing.T) {
	c, err := parse(t, nil, goodEnv)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kafka
	for _, d := range []struct {
		name      string
		got, want any
	}{
		{"client id", k.ClientID, kafkaio.DefaultClientID},
		{"fetch min bytes", k.FetchMinBytes, consumer.DefaultMinBytes},
		{"fetch max bytes", k.FetchMaxBytes, consumer.DefaultMaxBytes},
		{"fetch max wait", k.FetchMaxWait, consumer.DefaultMaxWait},
		{"session timeout", k.SessionTimeout, consumer.DefaultSessionTimeout},
		{"rebalance timeout", k.RebalanceTimeout, consumer.DefaultRebalanceTimeout},
		{"commit interval", k.CommitInterval, consumer.DefaultCommitInterval},
		{"max in flight", k.MaxInFlight, consumer.DefaultMaxInFlight},
		{"join timeout", k.JoinTimeout, consumer.DefaultJoinTimeout},
		{"shutdown timeout", c.Ops.ShutdownTimeout, consumer.DefaultDrainTimeout},
		{"castle url", c.Castle.APIURL, destination.DefaultURL},
		{"castle concurrency", c.Castle.Concurrency, destination.DefaultConcurrency},
		{"castle timeout", c.Castle.Timeout, destination.DefaultTimeout},
		{"castle retry", c.Castle.RetryMaxElapsed, destination.DefaultRetryPolicy().MaxElapsed},
		{"batch size", c.Batch.Size, pipeline.DefaultBatchCount},
		{"batch bytes", c.Batch.Bytes, pipeline.DefaultBatchBytes},
		{"batch linger", c.Batch.Linger, pipeline.DefaultBatchLinger},
		{"scoring", c.Scoring.On, false},
		{"scoring max age", c.Scoring.MaxAge, 100 * time.Second},
		{"verdict topic", c.Scoring.VerdictTopic, ""},
		{"event map", c.Mapping.EventMap, ""},
	} {
		if d.got != d.want {
			t.Errorf("%s: config registers %v, its package's default is %v", d.name, d.got, d.want)
		}
	}
	// The values users had before the defaults moved: config's.
	if k.FetchMaxBytes != 10<<20 || k.FetchMaxWait != 500*time.Millisecond || c.Ops.ShutdownTimeout != 25*time.Second {
		t.Errorf("fetch %d bytes / %s, shutdown %s: want 10 MiB, 500ms, 25s", k.FetchMaxBytes, k.FetchMaxWait, c.Ops.ShutdownTimeout)
	}
}

func TestLogLevelAndWordsAreCaseInsensitive(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env: map[string]string{"LOG_LEVEL": "DEBUG"}, want: "debug"},
		{env: map[string]string{"LOG_LEVEL": "Info"}, want: "info"},
		{args: []string{"--log-level", "WARN"}, want: "warn"},
		{env: map[string]string{"LOG_LEVEL": "error"}, want: "error"},
	} {
		c, err := parse(t, tc.args, withGood(tc.env))
		if err == nil {
			err = c.ValidateRun()
		}
		if err != nil || c.Ops.LogLevel != tc.want {
			t.Errorf("%v %v: level %q, %v; want %q", tc.env, tc.args, c.Ops.LogLevel, err, tc.want)
		}
	}
	c, err := parse(t, nil, withGood(map[string]string{
		"LOG_FORMAT": "Console", "PAGE_TYPE": "CUSTOM", "KAFKA_START_OFFSET": "Latest",
		"CASTLE_SCORING": "ON", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
	}))
	if err == nil {
		err = c.ValidateRun()
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.Ops.LogFormat != "console" || c.Mapping.PageType != "custom" || c.Kafka.StartOffset != "latest" || !c.Scoring.On {
		t.Errorf("format %q, page type %q, start %q, scoring %v: want lower-cased words and scoring on",
			c.Ops.LogFormat, c.Mapping.PageType, c.Kafka.StartOffset, c.Scoring.On)
	}
	if m, err := c.Kafka.SASL(); err != nil || m.Name() != "SCRAM-SHA-512" {
		t.Errorf("SASL = %v, %v", m, err)
	}
}

// An invalid URL (or broker address) is never echoed with its user
// information, parsable or not.
func TestURLNeverEchoedWithCredentials(t *testing.T) {
	const secret = "hunter2"
	for _, tc := range []struct{ env, value string }{
		{"CASTLE_API_URL", "https://user:hunter2@api.castle.io"},
		{"CASTLE_API_URL", "https://hunter2@api.castle.io"},
		{"CASTLE_API_URL", "ftp://user:hunter2@api.castle.io/x"},
		{"CASTLE_API_URL", "https://us er:hunter2@api castle io/x"},
		{"CASTLE_API_URL", "https://user:hunter2@[::1/x"},
		{"CASTLE_API_URL", "api.castle.io:hunter2@x"},
		{"CASTLE_API_URL", "https://api.castle.io/v1?api_key=hunter2"},
		{"CASTLE_API_URL", "https://api.castle.io/v1#token=hunter2"},
		{"CASTLE_API_URL", "ftp://api.castle.io/x?token=hunter2"},
		// An '@' in the query or fragment is not the end of user
		// information.
		{"CASTLE_API_URL", "https://api.castle.io/v1?email=a@b.c&api_key=hunter2"},
		{"CASTLE_API_URL", "https://api.castle.io/v1#a@b&token=hunter2"},
		{"CASTLE_API_URL", "https://user:hunter2?x@api.castle.io"},
		{"CASTLE_API_URL", "https://user:pw?x@api.castle.io/v1?t=hunter2"},
		{"KAFKA_BROKERS", "k1:9092?user=a@b&password=hunter2"},
		{"KAFKA_BROKERS", "user:hunter2@k1"},
		{"KAFKA_BROKERS", "k1:9092?password=hunter2"},
		{"KAFKA_BROKERS", "sasl://user:hunter2@k1:9092/"},
	} {
		err := runErr(t, nil, map[string]string{tc.env: tc.value})
		if err == nil {
			t.Errorf("%s=%s accepted", tc.env, tc.value)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s=%s: error shows the credentials: %v", tc.env, tc.value, err)
		}
		if !strings.HasPrefix(err.Error(), tc.env+" (--") {
			t.Errorf("%s=%s: error %q does not name the setting", tc.env, tc.value, err)
		}
	}
}

func TestEventMapMustBeReadable(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "events.yaml")
	if err := os.WriteFile(ok, []byte("events:\n  Signed In: {type: $login, status: $succeeded}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runErr(t, nil, map[string]string{"EVENT_MAP": ok}); err != nil {
		t.Errorf("readable EVENT_MAP: %v", err)
	}
	for name, path := range map[string]string{"missing": filepath.Join(dir, "nope.yaml"), "directory": dir} {
		err := runErr(t, []string{"--event-map", path}, nil)
		var se *SettingError
		if !errors.As(err, &se) || se.Env != "EVENT_MAP" || !strings.Contains(err.Error(), path) {
			t.Errorf("%s EVENT_MAP: error = %v, want one naming EVENT_MAP and the path", name, err)
		}
	}
	data, err := Mapping{EventMap: ok}.ReadEventMap()
	if err != nil || !bytes.Contains(data, []byte("Signed In")) {
		t.Errorf("ReadEventMap = %q, %v", data, err)
	}
	if data, err := (Mapping{}).ReadEventMap(); data != nil || err != nil {
		t.Errorf("ReadEventMap without EVENT_MAP = %q, %v; want nothing", data, err)
	}
}

func TestScoringSettings(t *testing.T) {
	for _, tc := range []struct {
		env    map[string]string
		on     bool
		maxAge time.Duration
		ok     bool
	}{
		{env: nil, on: false, maxAge: 100 * time.Second, ok: true},
		{env: map[string]string{"CASTLE_SCORING": "on"}, on: true, maxAge: 100 * time.Second, ok: true},
		{env: map[string]string{"CASTLE_SCORING": "off", "SCORING_MAX_AGE": "120s"}, maxAge: 120 * time.Second, ok: true},
		{env: map[string]string{"SCORING_MAX_AGE": "1ms"}, maxAge: time.Millisecond, ok: true},
		{env: map[string]string{"SCORING_MAX_AGE": "120001ms"}},
		{env: map[string]string{"SCORING_MAX_AGE": "-5s"}},
		{env: map[string]string{"CASTLE_SCORING": "true"}},
		{env: map[string]string{"VERDICT_TOPIC": "verdicts", "DLQ_TOPIC": "dlq"}, maxAge: 100 * time.Second, ok: true},
	} {
		c, err := parse(t, nil, withGood(tc.env))
		if err == nil {
			err = c.ValidateRun()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%v: error = %v, want ok=%v", tc.env, err, tc.ok)
			continue
		}
		if tc.ok && (c.Scoring.On != tc.on || c.Scoring.MaxAge != tc.maxAge) {
			t.Errorf("%v: scoring %v max age %s, want %v %s", tc.env, c.Scoring.On, c.Scoring.MaxAge, tc.on, tc.maxAge)
		}
	}
}

// Registration is granular: replay gets the settings that apply to it and
// none of the consumer group's, the metrics server's or scoring's.
func TestReplayRegistersOnlyWhatAppliesToIt(t *testing.T) {
	names := func(register func(*Config, *Flags)) map[string]bool {
		var c Config
		f := NewFlags("x", io.Discard)
		register(&c, f)
		out := map[string]bool{}
		f.FlagSet().VisitAll(func(fl *flag.Flag) { out[fl.Name] = true })
		return out
	}
	run := names((*Config).RegisterRun)
	replay := names((*Config).RegisterReplay)
	for _, n := range []string{"kafka-brokers", "kafka-topic", "kafka-tls-ca-file", "kafka-sasl-password", "kafka-fetch-max-bytes",
		"dlq-topic", "castle-api-secret", "castle-api-url", "page-type", "event-map", "batch-size", "log-level"} {
		if !replay[n] {
			t.Errorf("replay lacks --%s", n)
		}
	}
	for _, n := range []string{"kafka-group-id", "kafka-start-offset", "kafka-session-timeout", "kafka-rebalance-timeout",
		"kafka-commit-interval", "kafka-max-in-flight", "kafka-fetch-min-bytes", "kafka-fetch-max-wait",
		"castle-scoring", "scoring-max-age", "verdict-topic", "metrics-addr", "shutdown-timeout"} {
		if replay[n] {
			t.Errorf("replay offers --%s, which does not apply to it", n)
		}
		if !run[n] {
			t.Errorf("run lacks --%s", n)
		}
	}
	for n := range replay {
		if !run[n] {
			t.Errorf("replay offers --%s, which run does not", n)
		}
	}
}

func TestTopics(t *testing.T) {
	c, err := parse(t, nil, withGood(map[string]string{"DLQ_TOPIC": "dlq", "VERDICT_TOPIC": "verdicts"}))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Topics(true)
	want := []TopicSetting{{"KAFKA_TOPIC", "kafka-topic", "segment"}, {"DLQ_TOPIC", "dlq-topic", "dlq"}, {"VERDICT_TOPIC", "verdict-topic", "verdicts"}}
	if len(got) != len(want) {
		t.Fatalf("Topics = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Topics[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	c.Kafka.DLQTopic, c.Scoring.VerdictTopic = "", ""
	if got := c.Topics(false); len(got) != 0 {
		t.Errorf("Topics(false) without DLQ and verdict topics = %v", got)
	}
}

// SASL errors never carry the password, even when the SCRAM library's
// would.
func TestSASLErrorsHideThePassword(t *testing.T) {
	const password = "hunter2-very-secret\u0007" // not valid SASLprep text
	k := Kafka{SASLMechanism: "scram-sha-256", SASLUsername: "u", SASLPassword: Secret(password)}
	_, err := k.SASL()
	var se *SettingError
	if !errors.As(err, &se) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("SASL = %v, want a SettingError without the password", err)
	}
	if se.Env != "KAFKA_SASL_PASSWORD" {
		t.Errorf("SASL = %v, naming %s; want it to name the password's setting", err, se.Env)
	}
	k.SASLPassword = Secret("hunter2\n")
	if _, err := k.SASL(); !errors.As(err, &se) || se.Env != "KAFKA_SASL_PASSWORD" || !strings.Contains(err.Error(), "line break") {
		t.Errorf("a password ending in a newline: %v, want its setting named and the line break said", err)
	}
	k.SASLUsername, k.SASLPassword = "u\u0007", Secret("p")
	if _, err := k.SASL(); !errors.As(err, &se) || se.Env != "KAFKA_SASL_USERNAME" {
		t.Errorf("a user name that is not SASLprep text: %v, want KAFKA_SASL_USERNAME named", err)
	}
	for _, mech := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		k := Kafka{SASLMechanism: mech, SASLUsername: "u", SASLPassword: "p"}
		if m, err := k.SASL(); err != nil || m == nil {
			t.Errorf("%s: SASL = %v, %v", mech, m, err)
		}
	}
}

// A TLS file setting that holds the PEM text itself, or a key's base64,
// rather than a file's path (a Secret's key put in the variable instead of
// mounted as a file) fails naming that setting, and never quotes it: the
// text may be the private key.
func TestTLSFileErrorsHideTheKey(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.pem")
	if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const pemKey = "-----BEGIN PRIVATE KEY-----\nMIIEkeyMaterial0123456789\n-----END PRIVATE KEY-----\n"
	for _, tc := range []struct {
		k   Kafka
		env string
	}{
		{Kafka{TLSCertFile: cert, TLSKeyFile: pemKey}, "KAFKA_TLS_KEY_FILE"},
		{Kafka{TLSCertFile: cert, TLSKeyFile: "MIIEkeyMaterial0123456789/abc+def=="}, "KAFKA_TLS_KEY_FILE"},
		{Kafka{TLSCertFile: pemKey, TLSKeyFile: cert}, "KAFKA_TLS_CERT_FILE"},
		{Kafka{TLSCAFile: pemKey}, "KAFKA_TLS_CA_FILE"},
	} {
		_, err := tc.k.TLSConfig()
		var se *SettingError
		if !errors.As(err, &se) || se.Env != tc.env || strings.Contains(err.Error(), "MIIEkeyMaterial") {
			t.Errorf("TLSConfig = %v; want a SettingError naming %s, without the key", err, tc.env)
		}
	}
}

// A key file setting that reads like a path (a file name with a dot, which
// a key's base64 never has) is quoted when the file cannot be read: the
// path is what an operator needs to fix a typo or a missing mount.
func TestTLSKeyFileErrorNamesAPath(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "c.pem")
	if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "secrets", "tls.key")
	_, err := Kafka{TLSCertFile: cert, TLSKeyFile: missing}.TLSConfig()
	var se *SettingError
	if !errors.As(err, &se) || se.Env != "KAFKA_TLS_KEY_FILE" || !strings.Contains(err.Error(), missing) {
		t.Errorf("TLSConfig = %v; want a SettingError naming KAFKA_TLS_KEY_FILE and %s", err, missing)
	}
}
