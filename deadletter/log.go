package deadletter

import (
	"context"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/internal/redact"
)

// MaxLoggedValue bounds how much of a dead letter's value the log sink
// writes: enough to identify and re-drive most Segment messages, never a
// 10 MB line.
const MaxLoggedValue = 4 << 10

// Log is a Sink that writes each letter as one warning line. It is the sink
// when no dead-letter topic is configured: nothing is lost silently, but the
// log is the only record. Unlike a dead-letter topic, which keeps the
// original bytes to re-drive them, the log never shows a message's request
// tokens, userJwt or Cookie and Authorization headers: their string values
// read [redacted] (Redact).
type Log struct{ logger *zap.Logger }

// NewLog returns a log sink.
func NewLog(logger *zap.Logger) *Log { return &Log{logger: logger} }

// Write logs the letters. It never fails.
func (l *Log) Write(_ context.Context, letters ...Letter) error {
	for _, x := range letters {
		value, truncated := Truncate(x.Value, MaxLoggedValue)
		value = Redact(value)
		l.logger.Warn("dead letter",
			zap.String("reason", x.Reason),
			zap.String("error", x.Error),
			zap.String("source", x.Source),
			zap.Int("partition", x.Partition),
			zap.Int64("offset", x.Offset),
			zap.String("message_id", x.MessageID),
			zap.Int("attempts", x.Attempts),
			zap.Time("time", x.Time.UTC().Truncate(time.Millisecond)),
			zap.ByteString("value", value),
			zap.Bool("value_truncated", truncated),
		)
	}
	return nil
}

// Truncate cuts b to at most n bytes on a UTF-8 boundary.
func Truncate(b []byte, n int) ([]byte, bool) {
	if len(b) <= n {
		return b, false
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	return b[:i], true
}

// Redact returns b with the string value of every key that carries a
// token or a credential (requestToken, request_token, userJwt, user_jwt,
// Cookie, Authorization, Set-Cookie, Proxy-Authorization,
// X-Castle-Request-Token; matched case-insensitively, anywhere in the
// document, also in JSON held in a JSON string) replaced by [redacted]; b
// itself when there is none. It also works on a value cut short or not
// JSON at all, as a dead letter's may be.
func Redact(b []byte) []byte { return redact.JSON(b) }
