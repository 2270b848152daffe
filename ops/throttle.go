package ops

import (
	"sync"
	"time"
)

// Throttle decides which lines of a run of repeated log lines (a retry loop
// failing the same way) are written: the first burst, then at most one per
// interval, each saying how many were left out since the last one written.
// Reset starts a new run, after the failure has cleared. Times are passed
// in, so the caller's clock (or a test's) decides. It is safe for
// concurrent use.
type Throttle struct {
	burst int
	every time.Duration

	mu      sync.Mutex
	written int       // lines written in this run
	skipped int       // lines left out since the last written
	last    time.Time // when the last line was written
}

// NewThrottle returns a throttle that lets the first burst lines through,
// then one per every.
func NewThrottle(burst int, every time.Duration) *Throttle {
	return &Throttle{burst: burst, every: every}
}

// Allow reports whether the line at now is written, and if so how many
// lines were left out before it.
func (t *Throttle) Allow(now time.Time) (ok bool, skipped int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written < t.burst || now.Sub(t.last) >= t.every {
		t.written++
		t.last = now
		skipped, t.skipped = t.skipped, 0
		return true, skipped
	}
	t.skipped++
	return false, 0
}

// Reset starts a new run: the next lines get the full burst again. It
// returns how many lines were left out since the last one written.
func (t *Throttle) Reset() (skipped int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	skipped = t.skipped
	t.written, t.skipped, t.last = 0, 0, time.Time{}
	return skipped
}
