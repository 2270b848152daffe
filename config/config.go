// Package config holds every setting of castle-destination: a plain struct,
// flags with environment fallbacks, and validation whose errors name the
// setting at fault by its environment variable and its flag (SettingError;
// the command exits 2 on it).
//
// The product fixes the names KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_GROUP_ID,
// DLQ_TOPIC, CASTLE_API_SECRET, CASTLE_API_URL, METRICS_ADDR, LOG_LEVEL,
// PAGE_TYPE, EVENT_MAP, CASTLE_SCORING, SCORING_MAX_AGE and VERDICT_TOPIC;
// the rest extend them in the same style. Words chosen from a list (log
// level, page type, on/off, ...) match case-insensitively. Secrets are of
// type Secret and never print; a URL in an error never shows its user
// information.
//
// Each default has one home. The Kafka consumer's are consumer's Default*
// constants, the Castle client's and the batch bounds are destination's,
// the client id is kafkaio's; the rest are the constants below. This
// package registers them; it keeps no second copy.
//
// Registration is granular, so that each subcommand offers exactly the
// settings that apply to it: RegisterRun for run; RegisterReplay for
// replay, which joins no consumer group, serves no metrics and never
// scores.
//
// This package makes no network calls. It reads two kinds of files: the
// TLS material named by the Kafka settings (Kafka.Cluster) and the EVENT_MAP
// file (Mapping.Validate checks that it is readable).
package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/castle-destination/castle-destination/consumer"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/kafkaio"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
)

// Defaults owned by this package: no other package applies them.
const (
	DefaultGroupID       = "castle-destination"
	DefaultStartOffset   = "earliest"
	DefaultPageType      = "page"
	DefaultDedupeSize    = 1_000_000
	DefaultUserCacheSize = 100_000
	DefaultMetricsAddr   = ":9090"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "json"
	// DefaultScoringMaxAge leaves 20 s of a request token's life for the
	// Risk or Filter call and its retries.
	DefaultScoringMaxAge = 100 * time.Second
)

// RequestTokenLifetime is how long Castle accepts a request token after
// its creation: an event older than that cannot be scored.
const RequestTokenLifetime = 120 * time.Second

// Config is every setting of the worker. Zero values are not meaningful:
// register the sections on a Flags and parse.
type Config struct {
	Kafka   Kafka
	Castle  Castle
	Mapping Mapping
	Batch   Batch
	Scoring Scoring
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
	// JoinTimeout is how long brokers that do not answer are retried (at
	// start, and to rejoin the consumer group) before the command gives up.
	JoinTimeout time.Duration
}

// Castle is where events go.
type Castle struct {
	APISecret Secret
	// SecretTrimmed is set when CASTLE_API_SECRET came with white space
	// or a pair of quote marks around it, which were removed: most often
	// the trailing newline of the file a Kubernetes Secret was made from,
	// or the quotes an env file keeps (docker run --env-file). Castle's
	// secrets have neither, and with them every request would be refused
	// (401) and every userJwt would fail its signature check.
	SecretTrimmed   bool
	APIURL          string
	Concurrency     int
	Timeout         time.Duration
	RetryMaxElapsed time.Duration
}

// Mapping holds the filtering and mapping choices: which messages are
// dropped, and how Segment messages become Castle events.
type Mapping struct {
	PageType       string // "page" or "custom"
	AcceptMobile   bool
	RequireUserJWT bool
	DedupeSize     int
	UserCacheSize  int
	// EventMap is the path of a YAML file mapping Segment event names to
	// Castle security events; empty for none.
	EventMap string
}

// Batch bounds a delivery batch.
type Batch struct {
	Size   int
	Bytes  int
	Linger time.Duration
}

// Scoring holds the run-only settings of risk scoring: replay never scores,
// because scoring old events would fire policies now.
type Scoring struct {
	// On sends fresh security events to Castle's Risk and Filter APIs.
	On bool
	// MaxAge is the oldest an event (by its time) may be and still be sent
	// for scoring; at most RequestTokenLifetime.
	MaxAge time.Duration
	// VerdictTopic is the Kafka topic verdicts are written to; empty:
	// verdicts go to metrics only.
	VerdictTopic string
}

// Ops holds the operational settings: logs, metrics, shutdown.
type Ops struct {
	MetricsAddr     string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
}

// RegisterRun defines every setting of the run subcommand on f.
func (c *Config) RegisterRun(f *Flags) {
	c.RegisterKafka(f)
	c.RegisterCastle(f)
	c.RegisterMapping(f)
	c.RegisterBatch(f)
	c.RegisterScoring(f)
	c.RegisterOps(f, true)
}

// RegisterReplay defines the settings that apply to replay on f: the Kafka
// connection, the topic and fetch size of a kafka: source, the dead-letter
// topic, Castle, mapping, batching and logs. No consumer group, no metrics
// server, no scoring. Replay's own flags (--since, --dry-run, ...) are the
// caller's.
func (c *Config) RegisterReplay(f *Flags) {
	c.RegisterKafkaConnection(f)
	c.RegisterKafkaTopic(f)
	c.registerFetchMaxBytes(f)
	c.RegisterDLQ(f)
	c.RegisterCastle(f)
	c.RegisterMapping(f)
	c.RegisterBatch(f)
	c.RegisterOps(f, false)
}

// RegisterKafka defines every Kafka setting on f: the connection, the
// topic, the consumer group, the fetch shape and the dead-letter topic.
func (c *Config) RegisterKafka(f *Flags) {
	c.RegisterKafkaConnection(f)
	c.RegisterKafkaTopic(f)
	c.RegisterKafkaGroup(f)
	c.RegisterKafkaFetch(f)
	c.RegisterDLQ(f)
}

// RegisterKafkaConnection defines how to reach the cluster on f: brokers,
// client id, TLS and SASL.
func (c *Config) RegisterKafkaConnection(f *Flags) {
	k := &c.Kafka
	f.List(&k.Brokers, "kafka-brokers", "KAFKA_BROKERS", "Kafka bootstrap brokers, comma separated host:port (required by run, and by replay from kafka: or with a dead-letter topic)")
	f.String(&k.ClientID, "kafka-client-id", "KAFKA_CLIENT_ID", kafkaio.DefaultClientID, "Kafka client id")
	f.Bool(&k.TLS, "kafka-tls", "KAFKA_TLS", false, "connect to Kafka with TLS")
	f.String(&k.TLSCAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "", "PEM file of CA certificates to trust (implies TLS)")
	f.String(&k.TLSCertFile, "kafka-tls-cert-file", "KAFKA_TLS_CERT_FILE", "", "PEM client certificate for mutual TLS (implies TLS)")
	f.String(&k.TLSKeyFile, "kafka-tls-key-file", "KAFKA_TLS_KEY_FILE", "", "PEM client key for mutual TLS")
	f.Enum(&k.SASLMechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "",
		[]string{"", "plain", "scram-sha-256", "scram-sha-512"}, "SASL mechanism: plain, scram-sha-256 or scram-sha-512")
	f.String(&k.SASLUsername, "kafka-sasl-username", "KAFKA_SASL_USERNAME", "", "SASL user name")
	f.SecretVar(&k.SASLPassword, "kafka-sasl-password", "KAFKA_SASL_PASSWORD", "SASL password")
}

// RegisterKafkaTopic defines the source topic on f.
func (c *Config) RegisterKafkaTopic(f *Flags) {
	f.String(&c.Kafka.Topic, "kafka-topic", "KAFKA_TOPIC", "", "topic of Segment messages (required by run; replay from kafka:TOPIC takes it from there)")
}

// RegisterKafkaGroup defines the consumer group settings on f, and how
// long unreachable brokers are retried (a replay, which joins no group,
// fails at once: a Job's pod is restarted).
func (c *Config) RegisterKafkaGroup(f *Flags) {
	k := &c.Kafka
	f.String(&k.GroupID, "kafka-group-id", "KAFKA_GROUP_ID", DefaultGroupID, "consumer group id")
	f.Duration(&k.JoinTimeout, "kafka-join-timeout", "KAFKA_JOIN_TIMEOUT", consumer.DefaultJoinTimeout,
		"how long brokers that do not answer are retried, at start and to rejoin the group, before the command exits 1")
	f.Enum(&k.StartOffset, "kafka-start-offset", "KAFKA_START_OFFSET", DefaultStartOffset,
		[]string{"earliest", "latest"}, "where a partition without a committed offset starts: earliest or latest")
	f.Duration(&k.SessionTimeout, "kafka-session-timeout", "KAFKA_SESSION_TIMEOUT", consumer.DefaultSessionTimeout, "group session timeout")
	f.Duration(&k.RebalanceTimeout, "kafka-rebalance-timeout", "KAFKA_REBALANCE_TIMEOUT", consumer.DefaultRebalanceTimeout, "group rebalance timeout")
	f.Duration(&k.CommitInterval, "kafka-commit-interval", "KAFKA_COMMIT_INTERVAL", consumer.DefaultCommitInterval, "how often completed offsets are committed")
	f.Int(&k.MaxInFlight, "kafka-max-in-flight", "KAFKA_MAX_IN_FLIGHT", consumer.DefaultMaxInFlight, "records of one partition in flight at most")
}

// RegisterKafkaFetch defines the shape of the consumer's fetches on f.
func (c *Config) RegisterKafkaFetch(f *Flags) {
	k := &c.Kafka
	f.Int(&k.FetchMinBytes, "kafka-fetch-min-bytes", "KAFKA_FETCH_MIN_BYTES", consumer.DefaultMinBytes, "minimum bytes a fetch waits for")
	c.registerFetchMaxBytes(f)
	f.Duration(&k.FetchMaxWait, "kafka-fetch-max-wait", "KAFKA_FETCH_MAX_WAIT", consumer.DefaultMaxWait, "longest a fetch waits for min bytes")
}

func (c *Config) registerFetchMaxBytes(f *Flags) {
	f.Int(&c.Kafka.FetchMaxBytes, "kafka-fetch-max-bytes", "KAFKA_FETCH_MAX_BYTES", consumer.DefaultMaxBytes, "maximum bytes of one fetch")
}

// RegisterDLQ defines the dead-letter topic on f.
func (c *Config) RegisterDLQ(f *Flags) {
	f.String(&c.Kafka.DLQTopic, "dlq-topic", "DLQ_TOPIC", "", "dead-letter topic; empty: dead letters go to the log only")
}

// RegisterCastle defines the Castle API settings on f.
func (c *Config) RegisterCastle(f *Flags) {
	a := &c.Castle
	f.Var(&trimmedSecret{s: &a.APISecret, trimmed: &a.SecretTrimmed}, "castle-api-secret", "CASTLE_API_SECRET",
		"Castle API secret (required to send to Castle; white space and quote marks around it are removed)")
	f.String(&a.APIURL, "castle-api-url", "CASTLE_API_URL", destination.DefaultURL, "Castle API base URL")
	f.Int(&a.Concurrency, "castle-concurrency", "CASTLE_CONCURRENCY", destination.DefaultConcurrency, "ceiling on Castle requests in flight; below it the client adapts its own limit")
	f.Duration(&a.Timeout, "castle-timeout", "CASTLE_TIMEOUT", destination.DefaultTimeout, "timeout of one Castle request")
	f.Duration(&a.RetryMaxElapsed, "castle-retry-max-elapsed", "CASTLE_RETRY_MAX_ELAPSED", destination.DefaultRetryPolicy().MaxElapsed,
		"how long an event is retried before it is dead-lettered as retries_exhausted")
}

// RegisterMapping defines the filtering and mapping settings on f.
func (c *Config) RegisterMapping(f *Flags) {
	m := &c.Mapping
	f.Enum(&m.PageType, "page-type", "PAGE_TYPE", DefaultPageType, []string{"page", "custom"},
		`page events as "page" ($page) or "custom" ($custom "Page Viewed")`)
	f.Bool(&m.AcceptMobile, "accept-mobile", "ACCEPT_MOBILE", false, "forward mobile messages (channel=mobile, or no channel and a mobile library) instead of dropping them")
	f.Bool(&m.RequireUserJWT, "require-user-jwt", "REQUIRE_USER_JWT", false, "drop messages that name a user without a Secure Mode userJwt")
	f.Int(&m.DedupeSize, "dedupe-size", "DEDUPE_SIZE", DefaultDedupeSize, "messageIds remembered to drop duplicates")
	f.Int(&m.UserCacheSize, "user-cache-size", "USER_CACHE_SIZE", DefaultUserCacheSize, "users whose identify traits and userJwt are remembered")
	f.String(&m.EventMap, "event-map", "EVENT_MAP", "", "YAML file mapping Segment event names to Castle security events; empty: none")
}

// RegisterBatch defines the batching settings on f.
func (c *Config) RegisterBatch(f *Flags) {
	b := &c.Batch
	f.Int(&b.Size, "batch-size", "BATCH_SIZE", pipeline.DefaultBatchCount, "events in one delivery batch at most")
	f.Int(&b.Bytes, "batch-bytes", "BATCH_BYTES", pipeline.DefaultBatchBytes, "bytes of Castle request bodies in one batch at most")
	f.Duration(&b.Linger, "batch-linger", "BATCH_LINGER", pipeline.DefaultBatchLinger, "longest a batch waits to fill")
}

// RegisterScoring defines the risk scoring settings on f. They apply to run
// only.
func (c *Config) RegisterScoring(f *Flags) {
	s := &c.Scoring
	f.OnOff(&s.On, "castle-scoring", "CASTLE_SCORING", false, "on: send fresh security events to Castle's Risk and Filter APIs")
	f.Duration(&s.MaxAge, "scoring-max-age", "SCORING_MAX_AGE", DefaultScoringMaxAge,
		"oldest event (by its time) still sent for scoring; Castle's request tokens live 120s")
	f.String(&s.VerdictTopic, "verdict-topic", "VERDICT_TOPIC", "", "Kafka topic verdicts are written to; empty: verdicts go to metrics only")
}

// RegisterOps defines the logging settings on f, and with withMetrics the
// metrics server and the shutdown timeout of a long-running command.
func (c *Config) RegisterOps(f *Flags, withMetrics bool) {
	o := &c.Ops
	if withMetrics {
		f.String(&o.MetricsAddr, "metrics-addr", "METRICS_ADDR", DefaultMetricsAddr, "address serving /metrics, /healthz and /readyz")
		f.Duration(&o.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", consumer.DefaultDrainTimeout,
			"longest a shutdown waits for in-flight events before it commits and exits")
	}
	f.Enum(&o.LogLevel, "log-level", "LOG_LEVEL", DefaultLogLevel, []string{"debug", "info", "warn", "error"}, "debug, info, warn or error")
	f.Enum(&o.LogFormat, "log-format", "LOG_FORMAT", DefaultLogFormat, []string{"json", "console"}, "json or console")
}

// ValidateRun checks every setting of the run subcommand, and that the
// topics it writes to differ from the one it reads.
func (c Config) ValidateRun() error {
	for _, v := range []func() error{
		c.Kafka.Validate,
		func() error { return c.Castle.Validate(true) },
		c.Mapping.Validate,
		c.Batch.Validate,
		c.Scoring.Validate,
		c.Ops.Validate,
	} {
		if err := v(); err != nil {
			return err
		}
	}
	if t := c.Scoring.VerdictTopic; t != "" && (t == c.Kafka.Topic || t == c.Kafka.DLQTopic) {
		return settingErr("VERDICT_TOPIC", "verdict-topic", "must differ from KAFKA_TOPIC and DLQ_TOPIC")
	}
	return nil
}

// ValidateReplay checks the settings RegisterReplay defines. The secret is
// required unless dryRun; the Kafka connection when kafkaSource or a
// dead-letter topic is set; the topic and fetch size when kafkaSource.
func (c Config) ValidateReplay(dryRun, kafkaSource bool) error {
	k := c.Kafka
	checks := []func() error{
		func() error { return c.Castle.Validate(!dryRun) },
		c.Mapping.Validate,
		c.Batch.Validate,
		c.Ops.Validate,
	}
	if kafkaSource || k.DLQTopic != "" {
		checks = append(checks, k.ValidateConnection)
	}
	if kafkaSource {
		checks = append(checks, k.ValidateTopic, k.ValidateDLQ,
			func() error { return fetchMaxBytes(k.FetchMaxBytes) })
	}
	for _, v := range checks {
		if err := v(); err != nil {
			return err
		}
	}
	return nil
}

// TopicSetting is a topic a command needs on the cluster and the setting
// that names it.
type TopicSetting struct {
	Env, Flag string
	Topic     string
}

// Topics returns the topics that must exist at start, each with its
// setting: KAFKA_TOPIC when source is true, then DLQ_TOPIC and
// VERDICT_TOPIC when set.
func (c Config) Topics(source bool) []TopicSetting {
	var ts []TopicSetting
	if source {
		ts = append(ts, TopicSetting{"KAFKA_TOPIC", "kafka-topic", c.Kafka.Topic})
	}
	if c.Kafka.DLQTopic != "" {
		ts = append(ts, TopicSetting{"DLQ_TOPIC", "dlq-topic", c.Kafka.DLQTopic})
	}
	if c.Scoring.VerdictTopic != "" {
		ts = append(ts, TopicSetting{"VERDICT_TOPIC", "verdict-topic", c.Scoring.VerdictTopic})
	}
	return ts
}

// Validate checks every Kafka setting, including that the TLS files load.
func (k Kafka) Validate() error {
	for _, v := range []func() error{k.ValidateConnection, k.ValidateTopic, k.ValidateGroup, k.ValidateFetch, k.ValidateDLQ} {
		if err := v(); err != nil {
			return err
		}
	}
	return nil
}

// ValidateConnection checks how to reach the cluster, including that the
// TLS files load and the SASL settings are complete.
func (k Kafka) ValidateConnection() error {
	if len(k.Brokers) == 0 {
		return required("KAFKA_BROKERS", "kafka-brokers")
	}
	for _, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || strings.ContainsAny(host, "@/") || perr != nil || n < 1 || n > 65535 {
			return settingErr("KAFKA_BROKERS", "kafka-brokers", "%q is not host:port", redactURL(b))
		}
	}
	_, err := k.Cluster()
	return err
}

// ValidateTopic checks the source topic.
func (k Kafka) ValidateTopic() error {
	if strings.TrimSpace(k.Topic) == "" {
		return required("KAFKA_TOPIC", "kafka-topic")
	}
	return nil
}

// ValidateDLQ checks that the dead-letter topic is not the source topic.
func (k Kafka) ValidateDLQ() error {
	if k.DLQTopic != "" && k.DLQTopic == k.Topic {
		return settingErr("DLQ_TOPIC", "dlq-topic", "must differ from KAFKA_TOPIC, or dead letters would be consumed again")
	}
	return nil
}

// ValidateGroup checks the consumer group settings against what the
// consumer needs: it heartbeats every consumer.DefaultHeartbeatInterval and
// drains a partition it loses in a rebalance for up to
// consumer.DefaultRebalanceDrain, so both group timeouts must be longer.
func (k Kafka) ValidateGroup() error {
	if strings.TrimSpace(k.GroupID) == "" {
		return required("KAFKA_GROUP_ID", "kafka-group-id")
	}
	if err := inRange("KAFKA_JOIN_TIMEOUT", "kafka-join-timeout", k.JoinTimeout, time.Millisecond); err != nil {
		return err
	}
	switch strings.ToLower(k.StartOffset) {
	case "earliest", "latest":
	default:
		return settingErr("KAFKA_START_OFFSET", "kafka-start-offset", "%q is not earliest or latest", k.StartOffset)
	}
	floor := max(consumer.DefaultHeartbeatInterval, consumer.DefaultRebalanceDrain) + time.Second
	for _, d := range []struct {
		env, flag string
		v         time.Duration
	}{
		{"KAFKA_SESSION_TIMEOUT", "kafka-session-timeout", k.SessionTimeout},
		{"KAFKA_REBALANCE_TIMEOUT", "kafka-rebalance-timeout", k.RebalanceTimeout},
	} {
		if d.v < floor {
			return settingErr(d.env, d.flag, "%s is too short: at least %s (the consumer heartbeats every %s and drains a partition it loses for up to %s)",
				d.v, floor, consumer.DefaultHeartbeatInterval, consumer.DefaultRebalanceDrain)
		}
		if err := inRange(d.env, d.flag, d.v, floor); err != nil {
			return err
		}
	}
	if err := inRange("KAFKA_COMMIT_INTERVAL", "kafka-commit-interval", k.CommitInterval, time.Millisecond); err != nil {
		return err
	}
	if err := positive("KAFKA_MAX_IN_FLIGHT", "kafka-max-in-flight", k.MaxInFlight); err != nil {
		return err
	}
	if k.MaxInFlight > MaxInFlightLimit {
		// The commit tracker keeps room for 16 times this per partition.
		return settingErr("KAFKA_MAX_IN_FLIGHT", "kafka-max-in-flight", "%d is too large: at most %d", k.MaxInFlight, MaxInFlightLimit)
	}
	return nil
}

// MaxInFlightLimit bounds KAFKA_MAX_IN_FLIGHT: the commit tracker keeps
// room for 16 times it per owned partition, 9 bytes each (14 MB here).
const MaxInFlightLimit = 100_000

// MaxFetchBytes bounds KAFKA_FETCH_MAX_BYTES: Kafka carries it as a 32-bit
// count, and brokers cap a fetch far below (fetch.max.bytes, 50 MiB).
const MaxFetchBytes = 1 << 30

// fetchMaxBytes checks KAFKA_FETCH_MAX_BYTES's range.
func fetchMaxBytes(v int) error {
	if err := positive("KAFKA_FETCH_MAX_BYTES", "kafka-fetch-max-bytes", v); err != nil {
		return err
	}
	if v > MaxFetchBytes {
		return settingErr("KAFKA_FETCH_MAX_BYTES", "kafka-fetch-max-bytes", "%d is too large: at most %d (1 GiB)", v, MaxFetchBytes)
	}
	return nil
}

// ValidateFetch checks the shape of the consumer's fetches.
func (k Kafka) ValidateFetch() error {
	if err := positive("KAFKA_FETCH_MIN_BYTES", "kafka-fetch-min-bytes", k.FetchMinBytes); err != nil {
		return err
	}
	if k.FetchMaxBytes < k.FetchMinBytes {
		return settingErr("KAFKA_FETCH_MAX_BYTES", "kafka-fetch-max-bytes", "must be at least KAFKA_FETCH_MIN_BYTES")
	}
	if err := fetchMaxBytes(k.FetchMaxBytes); err != nil {
		return err
	}
	return inRange("KAFKA_FETCH_MAX_WAIT", "kafka-fetch-max-wait", k.FetchMaxWait, time.Millisecond)
}

// minCastleTimeout is the shortest CASTLE_TIMEOUT: below it every request
// times out, and the hold blames CASTLE_API_URL.
const minCastleTimeout = 100 * time.Millisecond

// maxKafkaDuration is the longest duration Kafka's protocol carries (a
// 32-bit count of milliseconds).
const maxKafkaDuration = time.Duration(math.MaxInt32-1) * time.Millisecond

// inRange checks that a Kafka duration setting is at least least and fits
// Kafka's protocol.
func inRange(env, flag string, v, least time.Duration) error {
	switch {
	case v < least && least <= time.Millisecond:
		return settingErr(env, flag, "must be positive")
	case v < least:
		return settingErr(env, flag, "%s is too short: at least %s", v, least)
	case v > maxKafkaDuration:
		return settingErr(env, flag, "%s is too long: at most %s", v, maxKafkaDuration.Truncate(time.Hour))
	}
	return nil
}

// Validate checks the Castle settings. The secret is required unless the
// caller only prints requests (replay --dry-run).
func (a Castle) Validate(needSecret bool) error {
	if needSecret && !a.APISecret.IsSet() {
		return required("CASTLE_API_SECRET", "castle-api-secret")
	}
	u, err := url.Parse(a.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return settingErr("CASTLE_API_URL", "castle-api-url", "%q is not an http(s) URL", redactURL(a.APIURL))
	}
	if u.User != nil {
		return settingErr("CASTLE_API_URL", "castle-api-url", "must not carry credentials (%s); set CASTLE_API_SECRET", redactURL(a.APIURL))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(a.APIURL, "#") {
		return settingErr("CASTLE_API_URL", "castle-api-url", "%q must not have a query or fragment: the paths /v1/log, /v1/risk and /v1/filter are added to it", redactURL(a.APIURL))
	}
	if err := positive("CASTLE_CONCURRENCY", "castle-concurrency", a.Concurrency); err != nil {
		return err
	}
	if a.Timeout < minCastleTimeout {
		return settingErr("CASTLE_TIMEOUT", "castle-timeout", "%s is too short: at least %s (one request's round trip to Castle)", a.Timeout, minCastleTimeout)
	}
	if a.RetryMaxElapsed < a.Timeout {
		return settingErr("CASTLE_RETRY_MAX_ELAPSED", "castle-retry-max-elapsed", "must be at least CASTLE_TIMEOUT")
	}
	return nil
}

// Validate checks the mapping settings, including that the EVENT_MAP file
// can be read.
func (m Mapping) Validate() error {
	switch strings.ToLower(m.PageType) {
	case "page", "custom":
	default:
		return settingErr("PAGE_TYPE", "page-type", "%q is not page or custom", m.PageType)
	}
	if err := positive("DEDUPE_SIZE", "dedupe-size", m.DedupeSize); err != nil {
		return err
	}
	if err := positive("USER_CACHE_SIZE", "user-cache-size", m.UserCacheSize); err != nil {
		return err
	}
	_, err := m.LoadEventMap()
	return err
}

// LoadEventMap reads and parses the EVENT_MAP file (an empty map when none
// is set). Its error is a *SettingError naming EVENT_MAP, the file and the
// line at fault.
func (m Mapping) LoadEventMap() (mapping.EventMap, error) {
	data, err := m.ReadEventMap()
	if err != nil || data == nil {
		return mapping.EventMap{}, err
	}
	em, err := mapping.ParseEventMap(data)
	if err != nil {
		return mapping.EventMap{}, &SettingError{Env: "EVENT_MAP", Flag: "event-map", Err: fmt.Errorf("%s: %w", m.EventMap, err)}
	}
	return em, nil
}

// ReadEventMap returns the contents of the EVENT_MAP file, or nil when none
// is set. Its error is a *SettingError naming EVENT_MAP.
func (m Mapping) ReadEventMap() ([]byte, error) {
	if m.EventMap == "" {
		return nil, nil
	}
	data, err := os.ReadFile(m.EventMap)
	if err != nil {
		return nil, &SettingError{Env: "EVENT_MAP", Flag: "event-map", Err: err}
	}
	return data, nil
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
		return settingErr("BATCH_LINGER", "batch-linger", "must be positive")
	}
	return nil
}

// Validate checks the scoring settings.
func (s Scoring) Validate() error {
	if s.MaxAge <= 0 || s.MaxAge > RequestTokenLifetime {
		return settingErr("SCORING_MAX_AGE", "scoring-max-age",
			"%s is not within (0, %s]: Castle's request tokens expire %s after they are made", s.MaxAge, RequestTokenLifetime, RequestTokenLifetime)
	}
	return nil
}

// Validate checks the operational settings.
func (o Ops) Validate() error {
	switch strings.ToLower(o.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return settingErr("LOG_LEVEL", "log-level", "%q is not debug, info, warn or error", o.LogLevel)
	}
	switch strings.ToLower(o.LogFormat) {
	case "json", "console":
	default:
		return settingErr("LOG_FORMAT", "log-format", "%q is not json or console", o.LogFormat)
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return settingErr("METRICS_ADDR", "metrics-addr", "%q is not host:port or :port", o.MetricsAddr)
		}
	}
	if err := inRange("SHUTDOWN_TIMEOUT", "shutdown-timeout", o.ShutdownTimeout, time.Millisecond); err != nil {
		return err
	}
	return nil
}
