package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/ops"
)

// TopicError says why a topic cannot be used: it is missing, this client
// may not use it, or the brokers refused the connection's credentials or
// TLS. Its message is written for the operator; the setting that names the
// topic is the caller's to add.
type TopicError struct {
	Topic string
	Class Class
	Err   error
}

func (e *TopicError) Error() string {
	switch e.Class {
	case TopicMissing:
		return fmt.Sprintf("topic %q does not exist on the cluster (the worker never creates topics)", e.Topic)
	case NotAuthorized:
		return fmt.Sprintf("topic %q: not authorized (the cluster's ACLs must allow this client's user to describe, read or write it): %v", e.Topic, e.Err)
	case AuthFailed:
		return fmt.Sprintf("the Kafka brokers refused the SASL login: %v", e.Err)
	case TLSFailed:
		return fmt.Sprintf("TLS with the Kafka brokers failed: %v", e.Err)
	}
	return fmt.Sprintf("topic %q: %v", e.Topic, e.Err)
}

func (e *TopicError) Unwrap() error { return e.Err }

// UnreachableError is returned by CheckTopics when the brokers gave no
// usable answer for the whole wait.
type UnreachableError struct {
	Brokers  string
	Wait     time.Duration // how long CheckTopics retried
	Attempts int
	Err      error  // the last attempt's
	Hint     string // what the last error may mean (ClosedHint), or ""
}

func (e *UnreachableError) Error() string {
	msg := fmt.Sprintf("Kafka brokers %s unavailable: no usable answer within %s (%d attempts); last error: %v",
		e.Brokers, e.Wait, e.Attempts, e.Err)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// ClosedHint explains a connection the brokers closed without an answer
// (EOF, a reset) to a client that speaks no TLS or no SASL: a listener
// that requires them does that, and the bare "unexpected EOF" says
// nothing of it. It also explains a connection that got no answer in
// time (a timeout once connected) to a client that speaks TLS: a
// plaintext listener reads the TLS handshake as the start of a request
// and waits for the rest, and the bare "context deadline exceeded" says
// nothing of it either. "" for any other error.
func ClosedHint(c Cluster, err error) string {
	if c.TLS != nil && answerTimedOut(err) {
		return "the brokers gave no answer in time, as a listener without TLS does to a client speaking TLS " +
			"(KAFKA_TLS): check the setting against the brokers' listener on that port"
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		return ""
	}
	var lacks []string
	if c.TLS == nil {
		lacks = append(lacks, "TLS (KAFKA_TLS)")
	}
	if c.SASL == nil {
		lacks = append(lacks, "SASL (KAFKA_SASL_MECHANISM)")
	}
	if len(lacks) == 0 {
		return ""
	}
	return "the brokers closed the connection without an answer, as a listener that requires " +
		strings.Join(lacks, " or ") + " does to a client without it: check the settings against the brokers' listener on that port"
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// answerTimedOut reports a timeout other than one connecting: the TCP
// connection was made and nothing answered on it.
func answerTimedOut(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// TopicExists returns nil when topic exists with at least one partition,
// else an error Classify maps to a Class (TopicMissing for a missing one).
// The metadata request does not allow the topic to be created. A topic the
// client may not describe shows as NotAuthorized only if client's
// Transport names it (see Cluster.Transport); else as TopicMissing.
func TopicExists(ctx context.Context, client *kafka.Client, topic string) error {
	return topicsExist(ctx, client, []string{topic})
}

// topicsExist asks for the metadata of every topic in one request and
// returns a *TopicError for the first missing or refused one (in the
// order given), or the request's error.
func topicsExist(ctx context.Context, client *kafka.Client, topics []string) error {
	// kafka.MetadataRequest has no auto-creation field: kafka-go sends
	// AllowAutoTopicCreation=false on every version that carries it.
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return err
	}
	for _, name := range topics {
		var terr error = kafka.UnknownTopicOrPartition
		for _, t := range resp.Topics {
			if t.Name != name {
				continue
			}
			switch {
			case t.Error != nil:
				terr = t.Error
			case len(t.Partitions) > 0:
				terr = nil
			}
			break
		}
		if terr != nil {
			return &TopicError{Topic: name, Class: Classify(terr), Err: terr}
		}
	}
	return nil
}

// CheckOptions shape CheckTopics. Zero values take the defaults given.
type CheckOptions struct {
	// Wait is how long brokers that give no usable answer are retried
	// before CheckTopics gives up (0: one attempt).
	Wait time.Duration
	// Backoff is the first pause between attempts; it doubles up to
	// MaxBackoff. Defaults 500 ms and 30 s.
	Backoff, MaxBackoff time.Duration
	// Logger gets one WARN line for each of the first failed attempts and
	// then at most one a minute. Default: none.
	Logger *zap.Logger
}

// CheckTopics checks that every topic exists and may be used. A missing or
// refused topic, or refused credentials or TLS, return a *TopicError at
// once: retrying cannot cure them. Any other failure (brokers down,
// timeouts, no leader) is retried with backoff for up to opt.Wait, then
// returned as an *UnreachableError. It returns ctx's error if ctx ends
// first.
func CheckTopics(ctx context.Context, c Cluster, topics []string, opt CheckOptions) error {
	if len(topics) == 0 {
		return nil
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 500 * time.Millisecond
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	tr := c.Transport(topics...)
	defer tr.CloseIdleConnections()
	client := c.Client(tr, DialTimeout)

	deadline := time.Now().Add(opt.Wait)
	throttle := ops.NewThrottle(3, time.Minute)
	backoff := opt.Backoff
	for attempt := 1; ; attempt++ {
		err := topicsExist(ctx, client, topics)
		if err == nil {
			if attempt > 1 {
				opt.Logger.Info("Kafka brokers answer again", zap.String("brokers", c.String()), zap.Int("attempts", attempt))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var te *TopicError
		if errors.As(err, &te) && te.Class.Permanent() {
			return te
		}
		if class := Classify(err); class.Permanent() {
			return &TopicError{Topic: topics[0], Class: class, Err: err}
		}
		hint := ClosedHint(c, err)
		left := time.Until(deadline)
		if left <= 0 {
			return &UnreachableError{Brokers: c.String(), Wait: opt.Wait, Attempts: attempt, Err: err, Hint: hint}
		}
		pause := min(backoff, left)
		if ok, skipped := throttle.Allow(time.Now()); ok {
			fields := []zap.Field{zap.String("brokers", c.String()), zap.Error(err), zap.Int("attempt", attempt),
				zap.Int("lines_skipped", skipped), zap.Duration("retry_in", pause), zap.Duration("gives_up_in", left)}
			if hint != "" {
				fields = append(fields, zap.String("hint", hint))
			}
			opt.Logger.Warn("Kafka brokers give no usable answer; retrying", fields...)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, opt.MaxBackoff)
	}
}
