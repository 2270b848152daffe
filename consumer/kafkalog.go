package consumer

import (
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/ops"
)

// readerErrorLog is a partition reader's kafka-go error logger. kafka-go
// retries most fetch failures inside the reader and only logs them, so a
// partition whose leader cannot be reached shows nowhere else: those lines
// are WARN, throttled. Lines that report no failure go to DEBUG: a
// long-poll fetch that ended with nothing to return (an i/o timeout or
// "[7] Request Timed Out" on an idle partition), a fetch cut short by the
// reader closing, and messages formatted from a nil error ("%!w(<nil>)").
type readerErrorLog struct {
	log      *zap.Logger
	throttle *ops.Throttle
}

func newReaderErrorLog(log *zap.Logger) readerErrorLog {
	return readerErrorLog{log: log, throttle: ops.NewThrottle(1, retryLogEvery)}
}

// ReaderErrorLog is the error logger of kafka-go readers outside a group
// (replay kafka:), the same as a partition reader's: failures WARN, at
// most one a minute across the readers given it, the rest DEBUG.
func ReaderErrorLog(log *zap.Logger) kafka.Logger { return newReaderErrorLog(log) }

// Printf implements kafka.Logger.
func (l readerErrorLog) Printf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	if isChatter(msg) {
		l.log.Debug(msg)
		return
	}
	if ok, skipped := l.throttle.Allow(time.Now()); ok {
		l.log.Warn(msg, zap.Int("lines_skipped", skipped))
		return
	}
	l.log.Debug(msg)
}

// isChatter reports a kafka-go log line that reports no failure.
func isChatter(msg string) bool {
	for _, c := range [...]string{
		"i/o timeout",
		"Request Timed Out",
		"context canceled",
		"context deadline exceeded",
		"(<nil>)", // a nil error formatted with %w or %v
	} {
		if strings.Contains(msg, c) {
			return true
		}
	}
	return false
}
