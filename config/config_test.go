package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/internal/selfcert"
)

func parse(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	var c Config
	f := NewFlags("run", io.Discard)
	c.RegisterRun(f)
	err := f.Parse(args, func(k string) string { return env[k] })
	return c, err
}

func validateRun(c Config) error { return c.ValidateRun() }

var goodEnv = map[string]string{
	"KAFKA_BROKERS":     "k1:9092, k2:9092",
	"KAFKA_TOPIC":       "segment",
	"CASTLE_API_SECRET": "sek-123",
}

func TestDefaults(t *testing.T) {
	c, err := parse(t, nil, goodEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateRun(c); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"brokers":   "[k1:9092 k2:9092]",
		"group":     "castle-destination",
		"url":       "https://api.castle.io",
		"metrics":   ":9090",
		"log level": "info",
		"page type": "page",
		"dedupe":    1_000_000,
		"start":     "earliest",
		"dlq":       "",
	}
	got := map[string]any{
		"brokers":   fmt.Sprint(c.Kafka.Brokers),
		"group":     c.Kafka.GroupID,
		"url":       c.Castle.APIURL,
		"metrics":   c.Ops.MetricsAddr,
		"log level": c.Ops.LogLevel,
		"page type": c.Mapping.PageType,
		"dedupe":    c.Mapping.DedupeSize,
		"start":     c.Kafka.StartOffset,
		"dlq":       c.Kafka.DLQTopic,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if c.Castle.APISecret.Reveal() != "sek-123" {
		t.Errorf("secret not loaded")
	}
}

func TestFlagBeatsEnv(t *testing.T) {
	env := map[string]string{"KAFKA_TOPIC": "from-env", "PAGE_TYPE": "custom"}
	for k, v := range goodEnv {
		if _, ok := env[k]; !ok {
			env[k] = v
		}
	}
	c, err := parse(t, []string{"--kafka-topic", "from-flag"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Topic != "from-flag" {
		t.Errorf("topic = %q, want the flag's value", c.Kafka.Topic)
	}
	if c.Mapping.PageType != "custom" {
		t.Errorf("page type = %q, want the env value", c.Mapping.PageType)
	}
}

// Every bad setting fails with one line naming it.
func TestValidationNamesTheSetting(t *testing.T) {
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env: map[string]string{"KAFKA_BROKERS": ""}, want: "KAFKA_BROKERS (--kafka-brokers) is required"},
		{env: map[string]string{"KAFKA_BROKERS": "nohostport"}, want: "KAFKA_BROKERS"},
		{env: map[string]string{"KAFKA_TOPIC": ""}, want: "KAFKA_TOPIC (--kafka-topic) is required"},
		{env: map[string]string{"CASTLE_API_SECRET": ""}, want: "CASTLE_API_SECRET (--castle-api-secret) is required"},
		{env: map[string]string{"CASTLE_API_URL": "ftp://x"}, want: "CASTLE_API_URL"},
		{env: map[string]string{"CASTLE_API_URL": "https://user:pw@api.castle.io"}, want: "must not carry credentials"},
		{env: map[string]string{"PAGE_TYPE": "screen"}, want: "PAGE_TYPE"},
		{env: map[string]string{"LOG_LEVEL": "loud"}, want: "LOG_LEVEL"},
		{env: map[string]string{"METRICS_ADDR": "9090"}, want: "METRICS_ADDR"},
		{env: map[string]string{"KAFKA_START_OFFSET": "middle"}, want: "KAFKA_START_OFFSET"},
		{env: map[string]string{"DLQ_TOPIC": "segment"}, want: "DLQ_TOPIC"},
		{env: map[string]string{"KAFKA_SASL_MECHANISM": "gssapi", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, want: "KAFKA_SASL_MECHANISM"},
		{env: map[string]string{"KAFKA_SASL_MECHANISM": "plain", "KAFKA_SASL_USERNAME": "u"}, want: "KAFKA_SASL_PASSWORD (--kafka-sasl-password) is required"},
		{env: map[string]string{"KAFKA_SASL_USERNAME": "u"}, want: "KAFKA_SASL_MECHANISM"},
		{env: map[string]string{"KAFKA_TLS_CA_FILE": "/does/not/exist.pem"}, want: "KAFKA_TLS_CA_FILE"},
		{env: map[string]string{"KAFKA_TLS_KEY_FILE": "/k.pem"}, want: "set both or neither"},
		{env: map[string]string{"BATCH_SIZE": "0"}, want: "BATCH_SIZE (--batch-size): must be positive"},
		{env: map[string]string{"CASTLE_TIMEOUT": "10m"}, want: "CASTLE_RETRY_MAX_ELAPSED"},
		{args: []string{"--castle-concurrency", "-1"}, want: "CASTLE_CONCURRENCY"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range goodEnv {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := parse(t, tt.args, env)
			if err == nil {
				err = validateRun(c)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// A malformed value, from the environment or a flag, is reported with the
// variable's and the flag's names, as a ParseError.
func TestBadValueNamesTheSetting(t *testing.T) {
	for _, tc := range []struct{ env, flag, val string }{
		{"KAFKA_FETCH_MAX_WAIT", "kafka-fetch-max-wait", "soon"},
		{"BATCH_SIZE", "batch-size", "many"},
		{"ACCEPT_MOBILE", "accept-mobile", "perhaps"},
		{"CASTLE_SCORING", "castle-scoring", "maybe"},
		{"LOG_LEVEL", "log-level", "loud"},
	} {
		for _, how := range []string{"env", "flag"} {
			var err error
			if how == "env" {
				_, err = parse(t, nil, map[string]string{tc.env: tc.val})
			} else {
				_, err = parse(t, []string{"--" + tc.flag + "=" + tc.val}, nil)
			}
			var pe *ParseError
			var se *SettingError
			if !errors.As(err, &pe) || !errors.As(err, &se) || se.Env != tc.env || se.Flag != tc.flag {
				t.Errorf("%s %s=%s: error = %#v, want a ParseError holding a SettingError for %s", how, tc.env, tc.val, err, tc.env)
				continue
			}
			want := fmt.Sprintf("%s (--%s): %q ", tc.env, tc.flag, tc.val)
			if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s %s=%s: error = %q, want one line starting %q", how, tc.env, tc.val, err, want)
			}
			if pe.Cmd != "run" {
				t.Errorf("ParseError.Cmd = %q, want run", pe.Cmd)
			}
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "super-secret-value"
	c, err := parse(t, nil, map[string]string{
		"KAFKA_BROKERS": "k:9092", "KAFKA_TOPIC": "t",
		"CASTLE_API_SECRET": value, "KAFKA_SASL_PASSWORD": value,
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s"} {
		fmt.Fprintf(&buf, verb+"\n", c)
		fmt.Fprintf(&buf, verb+"\n", c.Castle.APISecret)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(j)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "secret", c.Castle.APISecret, "cfg", c)
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info("cfg", zap.Any("cfg", c), zap.Stringer("secret", c.Castle.APISecret), zap.Any("s", c.Castle.APISecret))
	for _, e := range logs.All() {
		fmt.Fprintf(&buf, "%v\n", e.ContextMap())
	}
	out := buf.String()
	if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
		t.Fatalf("secret leaked:\n%s", out)
	}
	if !strings.Contains(out, redacted) {
		t.Fatalf("expected the redaction marker in:\n%s", out)
	}
	// A bad secret from the environment is reported without its value.
	var s Secret
	f := NewFlags("x", io.Discard)
	f.Var(failingSecret{&s}, "castle-api-secret", "CASTLE_API_SECRET", "")
	err = f.Parse(nil, func(string) string { return value })
	if err == nil || strings.Contains(err.Error(), value) {
		t.Fatalf("error = %v; want an error without the value", err)
	}
}

// failingSecret is a Secret flag whose Set fails, to exercise the redacted
// error path.
type failingSecret struct{ *Secret }

func (failingSecret) Set(string) error { return fmt.Errorf("bad") }

func TestKafkaTLSAndSASL(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writeCA(t, caFile)

	c, err := parse(t, nil, map[string]string{
		"KAFKA_BROKERS": "k:9093", "KAFKA_TOPIC": "t", "CASTLE_API_SECRET": "s",
		"KAFKA_TLS_CA_FILE":    caFile,
		"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kafka.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := c.Kafka.TLSConfig()
	if err != nil || tc == nil || tc.RootCAs == nil {
		t.Fatalf("TLSConfig = %v, %v; want a config trusting the CA", tc, err)
	}
	m, err := c.Kafka.SASL()
	if err != nil || m == nil || m.Name() != "SCRAM-SHA-512" {
		t.Fatalf("SASL = %v, %v; want SCRAM-SHA-512", m, err)
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Kafka.TLSCAFile = bad
	if err := c.Kafka.Validate(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("error = %v, want a PEM complaint", err)
	}
}

func writeCA(t *testing.T, path string) {
	t.Helper()
	ca, err := selfcert.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A Castle secret with white space around it (the trailing newline of a
// file a Kubernetes Secret was made from) or quotes (an env file's) would
// be refused by Castle and fail every userJwt's signature: they are
// removed, and noted.
func TestCastleSecretTrimmed(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
		trimmed   bool
	}{
		{name: "clean", env: "sek-123", want: "sek-123"},
		{name: "trailing newline", env: "sek-123\n", want: "sek-123", trimmed: true},
		{name: "CRLF and spaces", env: "  sek-123 \r\n", want: "sek-123", trimmed: true},
		{name: "flag", args: []string{"--castle-api-secret", "sek-123\t"}, want: "sek-123", trimmed: true},
		{name: "inner space kept", env: "sek 123", want: "sek 123"},
		{name: "env file quotes", env: `"sek-123"`, want: "sek-123", trimmed: true},
		{name: "single quotes and newline", env: "'sek-123'\n", want: "sek-123", trimmed: true},
		{name: "unmatched quote kept", env: `"sek-123`, want: `"sek-123`},
		{name: "inner quotes kept", env: `sek"123"`, want: `sek"123"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"KAFKA_BROKERS": "k:9092", "KAFKA_TOPIC": "t", "CASTLE_API_SECRET": tc.env}
			c, err := parse(t, tc.args, env)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateRun(c); err != nil {
				t.Fatal(err)
			}
			if got := c.Castle.APISecret.Reveal(); got != tc.want || c.Castle.SecretTrimmed != tc.trimmed {
				t.Errorf("secret %q, trimmed %v; want %q, %v", got, c.Castle.SecretTrimmed, tc.want, tc.trimmed)
			}
		})
	}
	// Nothing but white space is no secret.
	c, err := parse(t, nil, map[string]string{"KAFKA_BROKERS": "k:9092", "KAFKA_TOPIC": "t", "CASTLE_API_SECRET": "\n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := validateRun(c); err == nil || !strings.Contains(err.Error(), "CASTLE_API_SECRET (--castle-api-secret) is required") {
		t.Errorf("a secret of white space only: %v, want it required", err)
	}
}
