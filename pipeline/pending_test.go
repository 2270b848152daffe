package pipeline

import "testing"

// Settling a message that was delivered allocates nothing: done runs once
// for every message.
func TestPendingDoneAllocatesNothing(t *testing.T) {
	r := &pending{}
	allocs := testing.AllocsPerRun(100, func() {
		r.left.Store(2)
		r.done(nil)
		r.done(nil)
	})
	if allocs != 0 {
		t.Errorf("done allocates %v times for a delivered message, want 0", allocs)
	}
	if r.err.Load() != nil {
		t.Error("a delivered message was given an error")
	}
}
