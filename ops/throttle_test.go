package ops

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	th := NewThrottle(3, time.Minute)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	steps := []struct {
		at      time.Duration
		ok      bool
		skipped int
	}{
		{0, true, 0},                 // the burst
		{time.Second, true, 0},       //
		{2 * time.Second, true, 0},   //
		{3 * time.Second, false, 0},  // then quiet
		{30 * time.Second, false, 0}, //
		{62 * time.Second, true, 2},  // a minute after the last line written, saying 2 were left out
		{90 * time.Second, false, 0}, //
		{122 * time.Second, true, 1}, //
		{122500 * time.Millisecond, false, 0},
	}
	for i, s := range steps {
		ok, skipped := th.Allow(at(s.at))
		if ok != s.ok || skipped != s.skipped {
			t.Errorf("step %d at %s: Allow = %v, %d; want %v, %d", i, s.at, ok, skipped, s.ok, s.skipped)
		}
	}
	if n := th.Reset(); n != 1 {
		t.Errorf("Reset = %d, want the 1 line left out since the last written", n)
	}
	for i := range 3 {
		if ok, _ := th.Allow(at(123 * time.Second)); !ok {
			t.Errorf("after Reset, line %d of the burst was held back", i)
		}
	}
	if ok, _ := th.Allow(at(123 * time.Second)); ok {
		t.Error("after Reset, a fourth line at once was written")
	}
}
