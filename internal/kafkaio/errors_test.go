package kafkaio

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{nil, ""},
		{kafka.UnknownTopicOrPartition, TopicMissing},
		{fmt.Errorf("write: %w", kafka.UnknownTopicOrPartition), TopicMissing},
		{kafka.WriteErrors{nil, kafka.TopicAuthorizationFailed}, NotAuthorized},
		{kafka.GroupAuthorizationFailed, NotAuthorized},
		{kafka.ClusterAuthorizationFailed, NotAuthorized},
		{kafka.SASLAuthenticationFailed, AuthFailed},
		{kafka.MessageSizeTooLarge, TooLarge},
		{kafka.MessageTooLargeError{}, TooLarge},
		{kafka.LeaderNotAvailable, Unreachable},
		{kafka.RequestTimedOut, Unreachable},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Unreachable},
		{io.ErrUnexpectedEOF, Unreachable},
		{context.DeadlineExceeded, Unreachable},
		{fmt.Errorf("%w: broker appears to be expecting TLS", io.ErrUnexpectedEOF), TLSFailed},
		{x509.UnknownAuthorityError{}, TLSFailed},
		{kafka.InvalidRequiredAcks, Other},
		{errors.New("something else"), Other},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	for _, c := range Classes() {
		if c.Permanent() != (c == TopicMissing || c == NotAuthorized || c == AuthFailed || c == TLSFailed) {
			t.Errorf("%s.Permanent() = %v", c, c.Permanent())
		}
	}
}

// A transaction marker is recognised; a Segment message never is.
func TestIsControlRecord(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		want       bool
	}{
		{"\x00\x00\x00\x01", "\x00\x00\x00\x00\x00\x07", true},  // commit
		{"\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x00", true},  // abort
		{"\x00\x00\x00\x02", "\x00\x00\x00\x00\x00\x00", false}, // no such marker type
		{"\x00\x00\x00\x01", `{"a":1}`, false},
		{"user", `{"type":"track"}`, false},
		{"", "", false},
	} {
		if got := IsControlRecord([]byte(tc.key), []byte(tc.value)); got != tc.want {
			t.Errorf("IsControlRecord(%q, %q) = %v, want %v", tc.key, tc.value, got, tc.want)
		}
	}
}
