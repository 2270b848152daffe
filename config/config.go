// Package config holds every setting of castle-destination: a plain struct,
// flags with environment fallbacks, and validation whose errors name the
// setting at fault (the command exits 2 on them).
//
// The names fixed by the product contract (SPEC §1) are KAFKA_BROKERS,
// KAFKA_TOPIC, KAFKA_GROUP_ID, DLQ_TOPIC, CASTLE_API_SECRET, CASTLE_API_URL,
// METRICS_ADDR, LOG_LEVEL and PAGE_TYPE; the rest extend them in the same
// style. Secrets are of type Secret and never print. This package reads no
// files except the TLS material named by the Kafka settings, and only in
// Kafka.TLSConfig.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config is every setting of the worker. Zero values are not meaningful:
// register the sections on a Flags and parse.
type Config struct {
	Kafka   Kafka
	Castle  Castle
	Mapping Mapping
	Batch   Batch
	Ops     Ops
}

// Kafka is where messages come from and where dead letters go.
type Kafka struct {
	Brokers  []string
	Topic    string
	GroupID  string
	ClientID string
	DLQTopic string
	// StartOffset is where a group without committed offsets starts:
	// "earliest" or "latest".
	StartOffset string

	TLS         bool
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	SASLMechanism string // "", "plain", "scram-sha-256", "scram-sha-512"
	SASLUsername  string
	SASLPassword  Secret

	FetchMinBytes    int
	FetchMaxBytes    int
	FetchMaxWait     time.Duration
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	CommitInterval   time.Duration
	// MaxInFlight bounds the records of one partition fetched but not yet
	// done (delivered, dropped or dead-lettered).
	MaxInFlight int
}

// Castle is where events go.
type Castle struct {
	APISecret       Secret
	APIURL          string
	Concurrency     int
	Timeout         time.Duration
	RetryMaxElapsed time.Duration
}

// Mapping holds the filtering and mapping choices of SPEC §3 and §4.
type Mapping struct {
	PageType       string // "page" or "custom"
	AcceptMobile   bool
	RequireUserJWT bool
	DedupeSize     int
	UserCacheSize  int
}

// Batch bounds a delivery batch: the unit whose offsets commit together.
type Batch struct {
	Size   int
	Bytes  int
	Linger time.Duration
}

// Ops holds the operational settings: logs, metrics, shutdown.
type Ops struct {
	MetricsAddr     string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
}

// RegisterKafka defines the Kafka settings on f.
func (c *Config) RegisterKafka(f *Flags) {
	k := &c.Kafka
	f.List(&k.Brokers, "kafka-brokers", "KAFKA_BROKERS", "Kafka bootstrap brokers, comma separated (required)")
	f.String(&k.Topic, "kafka-topic", "KAFKA_TOPIC", "", "topic of Segment messages (required)")
	f.String(&k.GroupID, "kafka-group-id", "KAFKA_GROUP_ID", "castle-destination", "consumer group id")
	f.String(&k.ClientID, "kafka-client-id", "KAFKA_CLIENT_ID", "castle-destination", "Kafka client id")
	f.String(&k.DLQTopic, "dlq-topic", "DLQ_TOPIC", "", "dead-letter topic; empty: dead letters go to the log only")
	f.String(&k.StartOffset, "kafka-start-offset", "KAFKA_START_OFFSET", "earliest", "where a new group starts: earliest or latest")
	f.Bool(&k.TLS, "kafka-tls", "KAFKA_TLS", false, "connect to Kafka with TLS")
	f.String(&k.TLSCAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "", "PEM file of CA certificates to trust (implies TLS)")
	f.String(&k.TLSCertFile, "kafka-tls-cert-file", "KAFKA_TLS_CERT_FILE", "", "PEM client certificate for mutual TLS (implies TLS)")
	f.String(&k.TLSKeyFile, "kafka-tls-key-file", "KAFKA_TLS_KEY_FILE", "", "PEM client key for mutual TLS")
	f.String(&k.SASLMechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512")
	f.String(&k.SASLUsername, "kafka-sasl-username", "KAFKA_SASL_USERNAME", "", "SASL user name")
	f.SecretVar(&k.SASLPassword, "kafka-sasl-password", "KAFKA_SASL_PASSWORD", "SASL password")
	f.Int(&k.FetchMinBytes, "kafka-fetch-min-bytes", "KAFKA_FETCH_MIN_BYTES", 1, "minimum bytes a fetch waits for")
	f.Int(&k.FetchMaxBytes, "kafka-fetch-max-bytes", "KAFKA_FETCH_MAX_BYTES", 10<<20, "maximum bytes of one fetch")
	f.Duration(&k.FetchMaxWait, "kafka-fetch-max-wait", "KAFKA_FETCH_MAX_WAIT", 500*time.Millisecond, "longest a fetch waits for min bytes")
	f.Duration(&k.SessionTimeout, "kafka-session-timeout", "KAFKA_SESSION_TIMEOUT", 30*time.Second, "group session timeout")
	f.Duration(&k.RebalanceTimeout, "kafka-rebalance-timeout", "KAFKA_REBALANCE_TIMEOUT", 30*time.Second, "group rebalance timeout")
	f.Duration(&k.CommitInterval, "kafka-commit-interval", "KAFKA_COMMIT_INTERVAL", time.Second, "how often completed offsets are committed")
	f.Int(&k.MaxInFlight, "kafka-max-in-flight", "KAFKA_MAX_IN_FLIGHT", 1000, "records of one partition in flight at most")
}

// RegisterCastle defines the Castle API settings on f.
func (c *Config) RegisterCastle(f *Flags) {
	a := &c.Castle
	f.SecretVar(&a.APISecret, "castle-api-secret", "CASTLE_API_SECRET", "Castle API secret (required unless --dry-run)")
	f.String(&a.APIURL, "castle-api-url", "CASTLE_API_URL", "https://api.castle.io", "Castle API base URL")
	f.Int(&a.Concurrency, "castle-concurrency", "CASTLE_CONCURRENCY", 64, "Castle requests in flight at most")
	f.Duration(&a.Timeout, "castle-timeout", "CASTLE_TIMEOUT", 5*time.Second, "timeout of one Castle request")
	f.Duration(&a.RetryMaxElapsed, "castle-retry-max-elapsed", "CASTLE_RETRY_MAX_ELAPSED", 5*time.Minute,
		"how long an event is retried before it is dead-lettered as retries_exhausted")
}

// RegisterMapping defines the filtering and mapping settings on f.
func (c *Config) RegisterMapping(f *Flags) {
	m := &c.Mapping
	f.String(&m.PageType, "page-type", "PAGE_TYPE", "page", `page events as "page" ($page) or "custom" ($custom "Page Viewed")`)
	f.Bool(&m.AcceptMobile, "accept-mobile", "ACCEPT_MOBILE", false, "forward channel=mobile messages instead of dropping them")
	f.Bool(&m.RequireUserJWT, "require-user-jwt", "REQUIRE_USER_JWT", false, "drop messages that name a user without a Secure Mode userJwt")
	f.Int(&m.DedupeSize, "dedupe-size", "DEDUPE_SIZE", 1_000_000, "messageIds remembered to drop duplicates")
	f.Int(&m.UserCacheSize, "user-cache-size", "USER_CACHE_SIZE", 100_000, "users whose identify traits and userJwt are remembered")
}

// RegisterBatch defines the batching settings on f.
func (c *Config) RegisterBatch(f *Flags) {
	b := &c.Batch
	f.Int(&b.Size, "batch-size", "BATCH_SIZE", 500, "events in one delivery batch at most")
	f.Int(&b.Bytes, "batch-bytes", "BATCH_BYTES", 1<<20, "bytes of Castle request bodies in one batch at most")
	f.Duration(&b.Linger, "batch-linger", "BATCH_LINGER", 200*time.Millisecond, "longest a batch waits to fill")
}

// RegisterOps defines the logging, metrics and shutdown settings on f.
func (c *Config) RegisterOps(f *Flags, withMetrics bool) {
	o := &c.Ops
	if withMetrics {
		f.String(&o.MetricsAddr, "metrics-addr", "METRICS_ADDR", ":9090", "address serving /metrics, /healthz and /readyz")
		f.Duration(&o.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 25*time.Second,
			"longest a shutdown waits for in-flight events before it commits and exits")
	}
	f.String(&o.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	f.String(&o.LogFormat, "log-format", "LOG_FORMAT", "json", "json or console")
}

// Validate checks the Kafka settings, including that TLS files load.
func (k Kafka) Validate() error {
	if len(k.Brokers) == 0 {
		return required("KAFKA_BROKERS", "kafka-brokers")
	}
	for _, b := range k.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("KAFKA_BROKERS (--kafka-brokers): %q is not host:port", b)
		}
	}
	if k.Topic == "" {
		return required("KAFKA_TOPIC", "kafka-topic")
	}
	if k.GroupID == "" {
		return required("KAFKA_GROUP_ID", "kafka-group-id")
	}
	if k.DLQTopic != "" && k.DLQTopic == k.Topic {
		return errors.New("DLQ_TOPIC (--dlq-topic): must differ from KAFKA_TOPIC, or dead letters would be consumed again")
	}
	if k.StartOffset != "earliest" && k.StartOffset != "latest" {
		return fmt.Errorf("KAFKA_START_OFFSET (--kafka-start-offset): %q is not earliest or latest", k.StartOffset)
	}
	if err := positive("KAFKA_FETCH_MIN_BYTES", "kafka-fetch-min-bytes", k.FetchMinBytes); err != nil {
		return err
	}
	if k.FetchMaxBytes < k.FetchMinBytes {
		return errors.New("KAFKA_FETCH_MAX_BYTES (--kafka-fetch-max-bytes): must be at least KAFKA_FETCH_MIN_BYTES")
	}
	for _, d := range []struct {
		env, flag string
		v         time.Duration
	}{
		{"KAFKA_FETCH_MAX_WAIT", "kafka-fetch-max-wait", k.FetchMaxWait},
		{"KAFKA_SESSION_TIMEOUT", "kafka-session-timeout", k.SessionTimeout},
		{"KAFKA_REBALANCE_TIMEOUT", "kafka-rebalance-timeout", k.RebalanceTimeout},
		{"KAFKA_COMMIT_INTERVAL", "kafka-commit-interval", k.CommitInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s (--%s): must be positive", d.env, d.flag)
		}
	}
	if err := positive("KAFKA_MAX_IN_FLIGHT", "kafka-max-in-flight", k.MaxInFlight); err != nil {
		return err
	}
	if _, err := k.TLSConfig(); err != nil {
		return err
	}
	_, err := k.SASL()
	return err
}

// TLSConfig returns the TLS configuration for Kafka connections, or nil for
// plaintext. It reads the CA, certificate and key files.
func (k Kafka) TLSConfig() (*tls.Config, error) {
	if !k.TLS && k.TLSCAFile == "" && k.TLSCertFile == "" && k.TLSKeyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if k.TLSCAFile != "" {
		pem, err := os.ReadFile(k.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE (--kafka-tls-ca-file): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE (--kafka-tls-ca-file): no PEM certificate in %s", k.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	if (k.TLSCertFile == "") != (k.TLSKeyFile == "") {
		return nil, errors.New("KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE (--kafka-tls-cert-file, --kafka-tls-key-file): set both or neither")
	}
	if k.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCertFile, k.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE (--kafka-tls-cert-file): %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// SASL returns the SASL mechanism for Kafka connections, or nil for none.
func (k Kafka) SASL() (sasl.Mechanism, error) {
	mech := strings.ToLower(k.SASLMechanism)
	if mech == "" {
		if k.SASLUsername != "" || k.SASLPassword.IsSet() {
			return nil, errors.New("KAFKA_SASL_MECHANISM (--kafka-sasl-mechanism): required when a SASL user name or password is set")
		}
		return nil, nil
	}
	if k.SASLUsername == "" {
		return nil, required("KAFKA_SASL_USERNAME", "kafka-sasl-username")
	}
	if !k.SASLPassword.IsSet() {
		return nil, required("KAFKA_SASL_PASSWORD", "kafka-sasl-password")
	}
	switch mech {
	case "plain":
		return plain.Mechanism{Username: k.SASLUsername, Password: k.SASLPassword.Reveal()}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if mech == "scram-sha-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, k.SASLUsername, k.SASLPassword.Reveal())
		if err != nil {
			// The scram package's errors concern the user name's encoding,
			// never the password; still, say only what is wrong.
			return nil, errors.New("KAFKA_SASL_USERNAME (--kafka-sasl-username): not usable for SCRAM")
		}
		return m, nil
	default:
		return nil, fmt.Errorf("KAFKA_SASL_MECHANISM (--kafka-sasl-mechanism): %q is not plain, scram-sha-256 or scram-sha-512", k.SASLMechanism)
	}
}

// Validate checks the Castle settings. The secret is required unless the
// caller only prints requests (replay --dry-run).
func (a Castle) Validate(needSecret bool) error {
	if needSecret && !a.APISecret.IsSet() {
		return required("CASTLE_API_SECRET", "castle-api-secret")
	}
	u, err := url.Parse(a.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("CASTLE_API_URL (--castle-api-url): %q is not an http(s) URL", a.APIURL)
	}
	if u.User != nil {
		return errors.New("CASTLE_API_URL (--castle-api-url): must not carry credentials; set CASTLE_API_SECRET")
	}
	if err := positive("CASTLE_CONCURRENCY", "castle-concurrency", a.Concurrency); err != nil {
		return err
	}
	if a.Timeout <= 0 {
		return errors.New("CASTLE_TIMEOUT (--castle-timeout): must be positive")
	}
	if a.RetryMaxElapsed < a.Timeout {
		return errors.New("CASTLE_RETRY_MAX_ELAPSED (--castle-retry-max-elapsed): must be at least CASTLE_TIMEOUT")
	}
	return nil
}

// Validate checks the mapping settings.
func (m Mapping) Validate() error {
	if m.PageType != "page" && m.PageType != "custom" {
		return fmt.Errorf("PAGE_TYPE (--page-type): %q is not page or custom", m.PageType)
	}
	if err := positive("DEDUPE_SIZE", "dedupe-size", m.DedupeSize); err != nil {
		return err
	}
	return positive("USER_CACHE_SIZE", "user-cache-size", m.UserCacheSize)
}

// Validate checks the batching settings.
func (b Batch) Validate() error {
	if err := positive("BATCH_SIZE", "batch-size", b.Size); err != nil {
		return err
	}
	if err := positive("BATCH_BYTES", "batch-bytes", b.Bytes); err != nil {
		return err
	}
	if b.Linger <= 0 {
		return errors.New("BATCH_LINGER (--batch-linger): must be positive")
	}
	return nil
}

// Validate checks the operational settings.
func (o Ops) Validate() error {
	switch o.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LOG_LEVEL (--log-level): %q is not debug, info, warn or error", o.LogLevel)
	}
	if o.LogFormat != "json" && o.LogFormat != "console" {
		return fmt.Errorf("LOG_FORMAT (--log-format): %q is not json or console", o.LogFormat)
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return fmt.Errorf("METRICS_ADDR (--metrics-addr): %q is not host:port or :port", o.MetricsAddr)
		}
	}
	if o.ShutdownTimeout < 0 {
		return errors.New("SHUTDOWN_TIMEOUT (--shutdown-timeout): must not be negative")
	}
	return nil
}

func required(env, flag string) error {
	return fmt.Errorf("%s (--%s) is required", env, flag)
}

func positive(env, flag string, v int) error {
	if v <= 0 {
		return fmt.Errorf("%s (--%s): must be positive", env, flag)
	}
	return nil
}
