package consumer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/castle-destination/castle-destination/internal/kafkaio"
)

// Config configures a Consumer. Zero values mean the documented default.
type Config struct {
	// Brokers are the bootstrap broker addresses, host:port. Required.
	Brokers []string
	// Topic is the topic to consume. Required.
	Topic string
	// GroupID is the consumer group. Required.
	GroupID string
	// ClientID names this client to the brokers (default
	// kafkaio.DefaultClientID).
	ClientID string
	// TLS enables TLS; nil means plaintext.
	TLS *tls.Config
	// SASL enables SASL authentication; nil means none.
	SASL sasl.Mechanism

	// StartOffset is where a partition without a committed offset starts:
	// kafka.FirstOffset (the default) or kafka.LastOffset.
	StartOffset int64

	// MinBytes, MaxBytes and MaxWait shape each partition fetch (defaults 1 B,
	// 10 MiB, 500 ms).
	MinBytes, MaxBytes int
	MaxWait            time.Duration

	// SessionTimeout (default 30 s), HeartbeatInterval (default 3 s) and
	// RebalanceTimeout (default 30 s) are the group membership timings.
	SessionTimeout, HeartbeatInterval, RebalanceTimeout time.Duration

	// CommitInterval is how often acknowledged offsets are committed
	// (default 1 s). Offsets are also committed when a generation ends and on
	// shutdown.
	CommitInterval time.Duration
	// MaxInFlight bounds, per partition, the records fetched and not yet
	// acknowledged (default 500): they hold memory. A partition's fetcher
	// waits while the bound is reached, or while SpanPerInFlight times as
	// many records lie between the committable watermark and the fetch
	// position (acknowledged records behind an older outstanding one, which
	// a crash would hand out again).
	MaxInFlight int
	// RebalanceDrain is how long a generation that ends waits for its
	// outstanding records to be acknowledged before its final commit
	// (default 5 s). It must stay below RebalanceTimeout and SessionTimeout.
	RebalanceDrain time.Duration
	// DrainTimeout is how long Run waits on shutdown for outstanding records
	// to be acknowledged (default 25 s: within Kubernetes' default 30 s
	// termination grace period, with time left to commit and leave).
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

// Defaults. They are the worker's defaults too: config registers its Kafka
// settings with these values.
//
// A fetch of up to 10 MiB in at most 500 ms keeps a partition's records
// flowing in large batches without holding an idle partition's fetch for
// long.
const (
	DefaultClientID          = kafkaio.DefaultClientID
	DefaultMinBytes          = 1
	DefaultMaxBytes          = 10 << 20
	DefaultMaxWait           = 500 * time.Millisecond
	DefaultSessionTimeout    = 30 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultCommitInterval    = time.Second
	DefaultMaxInFlight       = 500
	DefaultRebalanceDrain    = 5 * time.Second
	DefaultDrainTimeout      = 25 * time.Second
	DefaultJoinTimeout       = 2 * time.Minute
	DefaultRetryBackoff      = time.Second
	DefaultLagInterval       = 5 * time.Second
)

// SpanPerInFlight is how many times MaxInFlight records a partition's fetch
// position may run ahead of its committable watermark. Acknowledged records
// cost nine bytes each there; the span lets one record that takes several
// round trips to Castle (a batch envelope of one user's events, sent in
// order) hold back the commit without holding back the fetch.
const SpanPerInFlight = 16

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
func (c Config) Cluster() kafkaio.Cluster {
	return kafkaio.Cluster{Brokers: c.Brokers, TLS: c.TLS, SASL: c.SASL, ClientID: c.withDefaults().ClientID}
}
