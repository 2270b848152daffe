package consumer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Config configures a Consumer. Zero values mean the documented default.
type Config struct {
	// Brokers are the bootstrap broker addresses, host:port. Required.
	Brokers []string
	// Topic is the topic to consume. Required.
	Topic string
	// GroupID is the consumer group. Required.
	GroupID string
	// ClientID names this client to the brokers (default "castle-destination").
	ClientID string
	// TLS enables TLS; nil means plaintext.
	TLS *tls.Config
	// SASL enables SASL authentication; nil means none. See SASLMechanism.
	SASL sasl.Mechanism

	// StartOffset is where a partition without a committed offset starts:
	// kafka.FirstOffset (the default) or kafka.LastOffset.
	StartOffset int64

	// MinBytes, MaxBytes and MaxWait shape each partition fetch (defaults 1 B,
	// 1 MiB, 1 s).
	MinBytes, MaxBytes int
	MaxWait            time.Duration

	// SessionTimeout (default 30 s), HeartbeatInterval (default 3 s) and
	// RebalanceTimeout (default 30 s) are the group membership timings.
	SessionTimeout, HeartbeatInterval, RebalanceTimeout time.Duration

	// CommitInterval is how often acknowledged offsets are committed
	// (default 1 s). Offsets are also committed when a generation ends and on
	// shutdown.
	CommitInterval time.Duration
	// MaxInFlight bounds, per partition, the records between the committable
	// watermark and the fetch position (default 1000). A partition's fetcher
	// waits while the bound is reached.
	MaxInFlight int
	// RebalanceDrain is how long a generation that ends waits for its
	// outstanding records to be acknowledged before its final commit
	// (default 5 s). It must stay below RebalanceTimeout and SessionTimeout.
	RebalanceDrain time.Duration
	// DrainTimeout is how long Run waits on shutdown for outstanding records
	// to be acknowledged (default 10 s).
	DrainTimeout time.Duration

	// JoinTimeout bounds how long Run keeps retrying when it cannot be a
	// member of a generation (brokers down, coordinator unavailable): after
	// that long without one, Run returns an error (default 2 m).
	JoinTimeout time.Duration
	// RetryBackoff is the pause before rejoining the group after an error and
	// between fetch retries (default 1 s).
	RetryBackoff time.Duration
	// LagInterval is how often the consumer lag metric is refreshed
	// (default 5 s).
	LagInterval time.Duration
}

// Defaults.
const (
	DefaultClientID          = "castle-destination"
	DefaultMinBytes          = 1
	DefaultMaxBytes          = 1 << 20
	DefaultMaxWait           = time.Second
	DefaultSessionTimeout    = 30 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultCommitInterval    = time.Second
	DefaultMaxInFlight       = 1000
	DefaultRebalanceDrain    = 5 * time.Second
	DefaultDrainTimeout      = 10 * time.Second
	DefaultJoinTimeout       = 2 * time.Minute
	DefaultRetryBackoff      = time.Second
	DefaultLagInterval       = 5 * time.Second
)

func (c Config) withDefaults() Config {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setStr(&c.ClientID, DefaultClientID)
	if c.StartOffset == 0 {
		c.StartOffset = kafka.FirstOffset
	}
	setInt(&c.MinBytes, DefaultMinBytes)
	setInt(&c.MaxBytes, DefaultMaxBytes)
	setDur(&c.MaxWait, DefaultMaxWait)
	setDur(&c.SessionTimeout, DefaultSessionTimeout)
	setDur(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	setDur(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	setDur(&c.CommitInterval, DefaultCommitInterval)
	setInt(&c.MaxInFlight, DefaultMaxInFlight)
	setDur(&c.RebalanceDrain, DefaultRebalanceDrain)
	setDur(&c.DrainTimeout, DefaultDrainTimeout)
	setDur(&c.JoinTimeout, DefaultJoinTimeout)
	setDur(&c.RetryBackoff, DefaultRetryBackoff)
	setDur(&c.LagInterval, DefaultLagInterval)
	return c
}

// Validate reports the first bad setting, naming the field. Zero values are
// valid: they mean the default.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := validateBrokers(c.Brokers); err != nil {
		return err
	}
	if strings.TrimSpace(c.Topic) == "" {
		return errors.New("consumer config: Topic is required")
	}
	if strings.TrimSpace(c.GroupID) == "" {
		return errors.New("consumer config: GroupID is required")
	}
	if c.StartOffset != kafka.FirstOffset && c.StartOffset != kafka.LastOffset {
		return fmt.Errorf("consumer config: StartOffset must be kafka.FirstOffset (%d) or kafka.LastOffset (%d), got %d",
			kafka.FirstOffset, kafka.LastOffset, c.StartOffset)
	}
	if c.MinBytes < 0 {
		return fmt.Errorf("consumer config: MinBytes must not be negative, got %d", c.MinBytes)
	}
	if c.MaxBytes < 0 {
		return fmt.Errorf("consumer config: MaxBytes must not be negative, got %d", c.MaxBytes)
	}
	if c.MinBytes > c.MaxBytes {
		return fmt.Errorf("consumer config: MinBytes (%d) must not exceed MaxBytes (%d)", c.MinBytes, c.MaxBytes)
	}
	if c.MaxInFlight < 0 {
		return fmt.Errorf("consumer config: MaxInFlight must be positive, got %d", c.MaxInFlight)
	}
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"MaxWait", c.MaxWait},
		{"SessionTimeout", c.SessionTimeout},
		{"HeartbeatInterval", c.HeartbeatInterval},
		{"RebalanceTimeout", c.RebalanceTimeout},
		{"CommitInterval", c.CommitInterval},
		{"RebalanceDrain", c.RebalanceDrain},
		{"DrainTimeout", c.DrainTimeout},
		{"JoinTimeout", c.JoinTimeout},
		{"RetryBackoff", c.RetryBackoff},
		{"LagInterval", c.LagInterval},
	}
	for _, d := range durations {
		if d.d < 0 {
			return fmt.Errorf("consumer config: %s must not be negative, got %s", d.name, d.d)
		}
		if d.d/time.Millisecond >= math.MaxInt32 {
			return fmt.Errorf("consumer config: %s is too large: %s", d.name, d.d)
		}
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("consumer config: HeartbeatInterval (%s) must be below SessionTimeout (%s)",
			c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.RebalanceDrain >= c.RebalanceTimeout {
		return fmt.Errorf("consumer config: RebalanceDrain (%s) must be below RebalanceTimeout (%s)",
			c.RebalanceDrain, c.RebalanceTimeout)
	}
	if c.RebalanceDrain >= c.SessionTimeout {
		return fmt.Errorf("consumer config: RebalanceDrain (%s) must be below SessionTimeout (%s)",
			c.RebalanceDrain, c.SessionTimeout)
	}
	return nil
}

func validateBrokers(brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("consumer config: Brokers is required")
	}
	for _, b := range brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("consumer config: Brokers: %q is not host:port", b)
		}
	}
	return nil
}

// Cluster returns the connection settings of c.
func (c Config) Cluster() Cluster {
	return Cluster{Brokers: c.Brokers, TLS: c.TLS, SASL: c.SASL, ClientID: c.withDefaults().ClientID}
}

// Cluster holds how to reach a Kafka cluster. It builds every kafka-go
// connection object the project uses (group and partition readers, the
// dead-letter writer, admin clients) in one place, so TLS, SASL and the
// client id are applied the same way everywhere.
type Cluster struct {
	Brokers  []string
	TLS      *tls.Config    // nil = plaintext
	SASL     sasl.Mechanism // nil = none
	ClientID string
}

// dialTimeout bounds connection set-up, TLS and SASL handshakes included.
const dialTimeout = 10 * time.Second

// Dialer returns a Dialer for readers and consumer groups.
func (c Cluster) Dialer() *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      c.ClientID,
		Timeout:       dialTimeout,
		DualStack:     true,
		TLS:           c.TLS,
		SASLMechanism: c.SASL,
	}
}

// Transport returns a Transport for writers and clients. Callers own it and
// may call CloseIdleConnections when done.
func (c Cluster) Transport() *kafka.Transport {
	return &kafka.Transport{
		ClientID:    c.ClientID,
		DialTimeout: dialTimeout,
		TLS:         c.TLS,
		SASL:        c.SASL,
	}
}

// Client returns an admin/metadata client whose requests time out after
// timeout (0: no timeout beyond the request context).
func (c Cluster) Client(timeout time.Duration) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: timeout, Transport: c.Transport()}
}

// TLSFromCAFile returns a TLS configuration that trusts the PEM certificates in
// caFile (in addition to nothing else: only that CA is trusted). An empty
// caFile returns a configuration that uses the system roots.
func TLSFromCAFile(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read Kafka CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read Kafka CA file %s: no PEM certificate found", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// SASLMechanism builds a SASL mechanism by name: "" (none), "PLAIN",
// "SCRAM-SHA-256" or "SCRAM-SHA-512" (case-insensitive). The error never
// contains the password.
func SASLMechanism(name, user, password string) (sasl.Mechanism, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "":
		return nil, nil
	case "PLAIN":
		if user == "" {
			return nil, errors.New("SASL PLAIN needs a user name")
		}
		return plain.Mechanism{Username: user, Password: password}, nil
	case "SCRAM-SHA-256":
		return scramMechanism(scram.SHA256, user, password)
	case "SCRAM-SHA-512":
		return scramMechanism(scram.SHA512, user, password)
	default:
		return nil, fmt.Errorf("SASL mechanism %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", name)
	}
}

func scramMechanism(algo scram.Algorithm, user, password string) (sasl.Mechanism, error) {
	if user == "" {
		return nil, fmt.Errorf("SASL %s needs a user name", algo.Name())
	}
	m, err := scram.Mechanism(algo, user, password)
	if err != nil {
		// The library's error quotes the password: never wrap or print it.
		return nil, fmt.Errorf("SASL %s: the user name or password is not valid SASLprep text", algo.Name())
	}
	return m, nil
}
