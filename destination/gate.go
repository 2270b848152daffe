package destination

import (
	"context"
	"sync"
	"time"
)

// gate stops every send while delivery is held, and lets one probe
// request through at a time until the hold clears. Two things hold it:
//
//   - a systemic fault (a refused secret, a wrong URL, a TLS failure):
//     every event would fail the same way. Probes go out at a capped
//     exponential backoff; the first answer that is not systemic clears it.
//   - an account-wide 429: Castle throttles the whole account, not one
//     user. Nothing is sent until the largest Retry-After seen has passed,
//     then one probe; a probe answered 429 again extends the hold.
//
// A pause (Client.PauseSending) stops every send too, without a probe:
// the fault is outside Castle (an output topic that cannot be written),
// and whoever paused probes it and resumes.
//
// So a storm of refusals costs one request per backoff or Retry-After
// window, not one per event per retry.
type gate struct {
	faults     Faults
	initial    time.Duration        // first probe backoff of a systemic hold
	maxProbe   time.Duration        // probe backoff cap
	onThrottle func(throttled bool) // called when the account-wide throttle starts or ends

	mu        sync.Mutex
	held      string        // systemic hold class, "" when none
	throttled bool          // account-wide 429 in force
	notBefore time.Time     // no probe before this
	backoff   time.Duration // current systemic probe backoff
	probing   bool          // a probe is out (or its sender waits for notBefore)
	paused    int           // pauses not yet resumed
	changed   chan struct{} // closed at every change a waiter may care about
	stopped   chan struct{} // closed by stop: no one passes any more
}

func newGate(f Faults, initial, maxProbe time.Duration, onThrottle func(bool)) *gate {
	return &gate{faults: f, initial: initial, maxProbe: maxProbe, onThrottle: onThrottle,
		changed: make(chan struct{}), stopped: make(chan struct{})}
}

// stop makes every waiter, and every later caller while the gate is held,
// return ErrStopped (Client.StopSending). Called once.
func (g *gate) stop() { close(g.stopped) }

// broadcastLocked wakes every waiter. g.mu must be held.
func (g *gate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// pass returns at once while the gate is open. While it is held, the first
// caller becomes the prober: it waits for the probe time and returns
// probe = true; others wait until the hold clears or the prober gives its
// role back. While it is paused, every caller waits. It returns ctx.Err()
// if ctx ends first, and ErrStopped once the gate is stopped.
func (g *gate) pass(ctx context.Context) (probe bool, err error) {
	for {
		g.mu.Lock()
		if g.paused == 0 && g.held == "" && !g.throttled {
			g.mu.Unlock()
			return false, nil
		}
		if g.paused == 0 && !g.probing {
			g.probing = true
			at := g.notBefore
			g.mu.Unlock()
			probe, paused, err := g.probe(ctx, at)
			if !paused {
				return probe, err
			}
			continue // wait with the others
		}
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		case <-g.stopped:
			return false, ErrStopped
		}
	}
}

// probe waits, as the prober, until at (or a later probe time a 429 set)
// and returns probe = true, or the error that ended the wait. Paused
// meanwhile, it gives the role back and returns paused = true.
func (g *gate) probe(ctx context.Context, at time.Time) (probe, paused bool, err error) {
	for {
		d := time.Until(at)
		if d <= 0 {
			return true, false, nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			g.leave(true)
			return false, false, ctx.Err()
		case <-g.stopped:
			t.Stop()
			g.leave(true)
			return false, false, ErrStopped
		}
		g.mu.Lock()
		if g.paused > 0 {
			g.probing = false
			g.broadcastLocked()
			g.mu.Unlock()
			return false, true, nil
		}
		at = g.notBefore // a later 429 may have moved it
		open := g.held == "" && !g.throttled
		g.mu.Unlock()
		if open {
			return true, false, nil
		}
	}
}

// pause stops every send until the matching resume; pauses nest.
func (g *gate) pause() {
	g.mu.Lock()
	g.paused++
	g.mu.Unlock()
}

// resume ends a pause.
func (g *gate) resume() {
	g.mu.Lock()
	g.paused--
	g.broadcastLocked()
	g.mu.Unlock()
}

// leave gives the probe role back without a result (the prober's event
// must wait for its user's pacing, or was canceled).
func (g *gate) leave(probe bool) {
	if !probe {
		return
	}
	g.mu.Lock()
	g.probing = false
	g.broadcastLocked()
	g.mu.Unlock()
}

// ok reports an answer that is neither systemic nor an account-wide 429.
// A probe's such answer, or any 2xx, clears the hold.
func (g *gate) ok(probe, delivered bool) {
	g.mu.Lock()
	if !probe && !delivered || g.held == "" && !g.throttled {
		if probe {
			g.probing = false
			g.broadcastLocked()
		}
		g.mu.Unlock()
		return
	}
	class, throttled := g.held, g.throttled
	g.held, g.throttled, g.probing, g.backoff = "", false, false, 0
	g.broadcastLocked()
	g.mu.Unlock()
	if class != "" {
		g.faults.Clear(class)
	}
	if throttled {
		g.onThrottle(false)
	}
}

// hold reports a systemic fault of class: delivery holds, and the next
// probe waits a backoff that doubles with every failed probe.
func (g *gate) hold(probe bool, class, msg string) {
	g.mu.Lock()
	first := g.held == ""
	if first || probe {
		if g.backoff == 0 {
			g.backoff = g.initial
		} else {
			g.backoff = min(2*g.backoff, g.maxProbe)
		}
		g.notBefore = time.Now().Add(g.backoff)
	}
	g.held = class
	if probe {
		g.probing = false
		g.broadcastLocked()
	}
	g.mu.Unlock()
	g.faults.Raise(class, msg)
}

// throttle reports an account-wide 429 asking for wait: nothing is sent
// before the largest such wait has passed.
func (g *gate) throttle(probe bool, wait time.Duration) {
	g.mu.Lock()
	first := !g.throttled
	g.throttled = true
	g.notBefore = maxTime(g.notBefore, time.Now().Add(wait))
	if probe {
		g.probing = false
		g.broadcastLocked()
	}
	g.mu.Unlock()
	if first {
		g.onThrottle(true)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
