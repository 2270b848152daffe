package kafkaio

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/segmentio/kafka-go"

	"github.com/castle-destination/castle-destination/internal/tlserr"
)

// Class is what kind of Kafka failure an error is. Its values are bounded
// and serve as metric labels.
type Class string

// The classes, from what the operator must fix to what retrying may cure.
const (
	// TopicMissing: the topic does not exist (the worker never creates it).
	TopicMissing Class = "topic_missing"
	// NotAuthorized: the cluster's ACLs refuse this client the topic, the
	// group or the cluster operation.
	NotAuthorized Class = "not_authorized"
	// AuthFailed: the brokers refused the SASL login.
	AuthFailed Class = "auth_failed"
	// TLSFailed: the brokers' certificate did not verify, or they do not
	// speak TLS.
	TLSFailed Class = "tls"
	// TooLarge: a record is larger than the topic or the brokers accept.
	TooLarge Class = "too_large"
	// Unreachable: the brokers did not answer, or answered that they cannot
	// serve the request now (no leader, coordinator loading, timeouts).
	// Retrying may cure it.
	Unreachable Class = "unreachable"
	// Other: anything else.
	Other Class = "other"
)

// Classes returns every class, for pre-initialising metric labels.
func Classes() []Class {
	return []Class{TopicMissing, NotAuthorized, AuthFailed, TLSFailed, TooLarge, Unreachable, Other}
}

// Permanent reports whether retrying cannot cure the class: a setting, an
// ACL or the cluster's topics must change first.
func (c Class) Permanent() bool {
	switch c {
	case TopicMissing, NotAuthorized, AuthFailed, TLSFailed:
		return true
	}
	return false
}

// Classify returns the class of err; "" for nil. For a kafka.WriteErrors it
// classifies the first failed message.
func Classify(err error) Class {
	if err == nil {
		return ""
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return Classify(e)
			}
		}
		return Other
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return TooLarge
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.UnknownTopicOrPartition:
			return TopicMissing
		case kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
			kafka.TransactionalIDAuthorizationFailed, kafka.DelegationTokenAuthorizationFailed:
			return NotAuthorized
		case kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState:
			return AuthFailed
		case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge:
			return TooLarge
		}
		if kerr.Temporary() {
			return Unreachable
		}
		return Other
	}
	if tlserr.Is(err) {
		return TLSFailed
	}
	// kafka-go's words for a plaintext client talking to a TLS listener.
	if strings.Contains(err.Error(), "expecting TLS") {
		return TLSFailed
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) {
		return Unreachable
	}
	return Other
}

// IsControlRecord reports whether a fetched record is a transaction marker
// (a commit or an abort a transactional producer wrote), not data. kafka-go
// hands out the records of control batches as messages
// (segmentio/kafka-go#1446): a marker's key is its version (0) and type (0
// abort, 1 commit) as two int16, and its value the marker's version and
// the coordinator epoch, six bytes. No Segment message looks like that: its
// value is JSON.
func IsControlRecord(key, value []byte) bool {
	return len(key) == 4 && key[0] == 0 && key[1] == 0 && key[2] == 0 && key[3] <= 1 &&
		len(value) == 6 && value[0] == 0 && value[1] == 0
}
