// Package deadletter defines what a dead letter is and where it can go.
//
// A dead letter is an input message the worker gives up on: it could not be
// mapped (malformed, an invalid Secure Mode token) or Castle refused it or
// kept failing. The original bytes are kept as they arrived, with headers that
// say why and where they came from, so an operator can inspect and re-drive
// them.
//
// Letters go to the dead-letter topic (Kafka: the original key and value,
// castle-destination-* headers, acknowledged by every in-sync replica) or,
// with no topic set, to the log (Log). NewSink picks one, for run and
// replay alike.
//
// This package knows nothing of Kafka consumption or of Castle's API, and
// never creates the dead-letter topic.
package deadletter

import (
	"context"
	"time"
)

// Letter is one message given up on.
type Letter struct {
	// Value is the original message bytes, unchanged.
	Value []byte
	// Key is the original message key, if any.
	Key []byte
	// Reason is a bounded label: malformed, user_jwt_invalid, rejected,
	// retries_exhausted, ...
	Reason string
	// Error is a human-readable detail. It never contains a secret.
	Error string
	// Source names where the message came from: a Kafka topic, or a file
	// path for replays.
	Source string
	// Partition and Offset locate the message in Source. For files,
	// Partition is 0 and Offset is the line (or message) number.
	Partition int
	Offset    int64
	// MessageID is the Segment messageId, when it could be read.
	MessageID string
	// Attempts is how many delivery attempts were made (0 when the message
	// never reached Castle).
	Attempts int
	// Time is when the message was given up on.
	Time time.Time
}

// Sink accepts dead letters. Write returns only once the letters are durable
// (or logged, for a log-only sink): callers commit the source offsets after
// it returns nil, and must not commit them if it returns an error.
type Sink interface {
	Write(ctx context.Context, letters ...Letter) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, letters ...Letter) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, letters ...Letter) error { return f(ctx, letters...) }
