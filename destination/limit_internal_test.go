package destination

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

// sim drives a limiter as the Client does under a steady load, event by
// event: it keeps limit requests in flight (there is always more to send,
// so requests always wait for the limit), and each request is answered
// after the latency serve gives it.
type sim struct {
	l        *limiter
	now      time.Duration
	rng      *rand.Rand
	inflight simHeap
}

type simReq struct {
	start, done time.Duration
	sig         signal
}

// simHeap is the requests in flight, earliest answer first.
type simHeap []simReq

func (h simHeap) Len() int           { return len(h) }
func (h simHeap) Less(i, j int) bool { return h[i].done < h[j].done }
func (h simHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *simHeap) Push(x any)        { *h = append(*h, x.(simReq)) }
func (h *simHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newSim(ceiling, initial int) *sim {
	p := defaultLimitParams(ceiling)
	p.initial = initial
	return &sim{l: newLimiter(p), now: time.Second, rng: rand.New(rand.NewPCG(1, 2))}
}

// serve says how a request sent while n requests (itself included) are in
// flight fares: its latency and what its answer says.
type serve func(n int) (time.Duration, signal)

// run simulates d of time.
func (s *sim) run(d time.Duration, f serve) {
	end := s.now + d
	for s.now < end {
		for limit := s.l.value(); s.inflight.Len() < limit; {
			rtt, sig := f(s.inflight.Len() + 1)
			s.l.sent(s.now)
			heap.Push(&s.inflight, simReq{start: s.now, done: s.now + max(rtt, time.Microsecond), sig: sig})
		}
		s.l.waited()
		r := heap.Pop(&s.inflight).(simReq)
		s.now = r.done
		s.l.observe(r.start, r.done-r.start, r.sig, s.now)
	}
}

// span runs d of time and returns the lowest and highest limit seen in
// its second half, sampled every 10 ms.
func (s *sim) span(d time.Duration, f serve) (lo, hi int) {
	lo = s.l.p.ceiling
	for t := time.Duration(0); t < d; t += 10 * time.Millisecond {
		s.run(10*time.Millisecond, f)
		if t >= d/2 {
			lo, hi = min(lo, s.l.value()), max(hi, s.l.value())
		}
	}
	return lo, hi
}

func fixed(rtt time.Duration) serve {
	return func(int) (time.Duration, signal) { return rtt, sigAnswer }
}

// queued is a server that serves capacity requests at a time and queues
// the rest: the latency grows with the queue.
func queued(capacity *int, base time.Duration) serve {
	return func(n int) (time.Duration, signal) {
		if n > *capacity {
			return base * time.Duration(n) / time.Duration(*capacity), sigAnswer
		}
		return base, sigAnswer
	}
}

// shedding is a server that answers 503 at once beyond capacity requests
// in flight.
func shedding(capacity *int, base time.Duration) serve {
	return func(n int) (time.Duration, signal) {
		if n > *capacity {
			return time.Millisecond, sigPushback
		}
		return base, sigAnswer
	}
}

// failing answers a share p of requests 503 at once, whatever the load.
func failing(rng *rand.Rand, p float64, base time.Duration) serve {
	return func(int) (time.Duration, signal) {
		if rng.Float64() < p {
			return time.Millisecond, sigPushback
		}
		return base, sigAnswer
	}
}

func TestLimiterSlowStartToCeiling(t *testing.T) {
	s := newSim(1000, 32)
	prev := s.l.value()
	for t0 := s.now; s.l.value() < 1000; {
		s.run(time.Millisecond, fixed(30*time.Millisecond))
		if n := s.l.value(); n < prev {
			t.Fatalf("limit fell from %d to %d at a steady latency", prev, n)
		}
		prev = s.l.value()
		if d := s.now - t0; d > 20*30*time.Millisecond {
			t.Fatalf("limit %d after %v, want the ceiling 1000 within 20 round trips", prev, d)
		}
	}
}

// Once many requests are in flight, a busy CPU (or GC) delays some
// answers: the mean latency rises while the quickest answers keep Castle's
// own latency. No queue forms at Castle, so slow start goes on to the
// ceiling instead of ending where the mean first rose.
func TestLimiterSlowStartThroughCPUNoise(t *testing.T) {
	s := newSim(1000, 32)
	busyCPU := func(n int) (time.Duration, signal) {
		rtt := 30 * time.Millisecond
		if n > 64 && s.rng.IntN(2) == 0 {
			// Half the answers up to 20 ms late: the mean is 5 ms
			// above the base, well below a slow window's 47 ms.
			rtt += time.Duration(s.rng.Int64N(int64(20 * time.Millisecond)))
		}
		return rtt, sigAnswer
	}
	for t0 := s.now; s.l.value() < 1000; {
		s.run(time.Millisecond, busyCPU)
		if d := s.now - t0; d > 20*30*time.Millisecond {
			t.Fatalf("limit %d after %v, want the ceiling 1000 within 20 round trips", s.l.value(), d)
		}
	}
}

// Each request beyond the connections open dials one, and waits for the
// TCP and TLS handshakes: two more round trips. Right after slow start
// doubles the limit, half the requests dial, and their answers make the
// window slow. Once the connections are open, the latency is back at the
// base: that is no reason to cut, and slow start goes on to the ceiling.
func TestLimiterSlowStartThroughHandshakes(t *testing.T) {
	s := newSim(1000, 32)
	conns := 32 // open already
	dialing := func(n int) (time.Duration, signal) {
		if n > conns {
			conns = n
			return 90 * time.Millisecond, sigAnswer
		}
		return 30 * time.Millisecond, sigAnswer
	}
	for t0 := s.now; s.l.value() < 1000; {
		s.run(time.Millisecond, dialing)
		if d := s.now - t0; d > 30*30*time.Millisecond {
			t.Fatalf("limit %d after %v, want the ceiling 1000 within 30 round trips", s.l.value(), d)
		}
	}
}

// A slow window right after a doubling is looked at twice only when
// Castle is a network away (dialing costs round trips there); a few
// milliseconds away it is this client's load, and the limit is cut at
// once.
func TestLimiterSecondLookAfterDoubling(t *testing.T) {
	for _, tt := range []struct {
		floor      time.Duration
		secondLook bool
	}{
		{time.Millisecond, false},
		{30 * time.Millisecond, true},
	} {
		l := newLimiter(defaultLimitParams(1000))
		l.base, l.floor, l.hasBase = tt.floor, tt.floor, true
		l.limit, l.doubled = 256, true
		slow := tally{answers: 100, sum: 100 * (3*tt.floor + 3*time.Millisecond), least: 2 * tt.floor, slots: 1}
		now := time.Second
		l.judge(slow, now)
		if cut := l.value() < 256; cut == tt.secondLook {
			t.Errorf("Castle %v away: first slow window after a doubling cut the limit: %v, want %v", tt.floor, cut, !tt.secondLook)
		}
		l.judge(slow, now+tt.floor)
		if l.value() >= 256 {
			t.Errorf("Castle %v away: limit %d after two slow windows, want it cut", tt.floor, l.value())
		}
	}
}

// Without requests waiting for the limit there is no evidence that more
// would help: the limit stays where it is.
func TestLimiterGrowsOnlyWhenTheLimitBinds(t *testing.T) {
	l := newLimiter(defaultLimitParams(1000))
	now := time.Second
	for range 1000 {
		l.observe(now, 30*time.Millisecond, sigAnswer, now+30*time.Millisecond)
		now += time.Millisecond
	}
	if got := l.value(); got != 32 {
		t.Fatalf("limit %d after 1000 answers with nothing waiting, want 32", got)
	}
}

// Everything failing is an outage: the limit drops to 1 (while Castle is
// down, few requests go out), and once Castle is back it doubles back up
// to where it was instead of climbing by one per round trip.
func TestLimiterOutage(t *testing.T) {
	s := newSim(1000, 1000)
	s.run(5*time.Second, func(int) (time.Duration, signal) { return 5 * time.Millisecond, sigPushback })
	if got := s.l.value(); got != 1 {
		t.Fatalf("limit %d during the outage, want 1", got)
	}
	back := s.now
	for s.l.value() < 1000 {
		s.run(10*time.Millisecond, fixed(30*time.Millisecond))
		if d := s.now - back; d > 3*time.Second {
			t.Fatalf("limit %d %v after the outage, want back at 1000 by doubling", s.l.value(), d)
		}
	}
}

// A share of requests failing whatever the load (a degraded Castle) is not
// a capacity limit: cutting the limit only cuts the goodput, so the limit
// goes back up and stays.
func TestLimiterToleratesRandomFailures(t *testing.T) {
	for _, p := range []float64{0.001, 0.02, 0.2, 0.4} {
		s := newSim(200, 32)
		lo, hi := s.span(10*time.Second, failing(s.rng, p, 30*time.Millisecond))
		if lo < 100 || hi != 200 {
			t.Errorf("%.1f%% of requests failing at random: limit within [%d, %d], want it to stay near 200", p*100, lo, hi)
		}
	}
}

// A server that answers 503 beyond its capacity: the limit settles near
// the capacity, and follows it down and back up.
func TestLimiterSettlesAtCapacity(t *testing.T) {
	capacity := 0
	s := newSim(200, 32)
	for _, c := range []int{100, 20, 100, 10} {
		capacity = c
		lo, hi := s.span(10*time.Second, shedding(&capacity, 30*time.Millisecond))
		if lo < c*3/4 || hi > c*5/4+1 {
			t.Errorf("503 beyond %d in flight: limit within [%d, %d], want within [%d, %d]", c, lo, hi, c*3/4, c*5/4+1)
		}
	}
}

// A server that queues beyond its capacity: the limit settles about where
// the latency is 1.5 times the base plus 2 ms (1.57 times the capacity at
// 30 ms; the latency of a window lags its limit a little), not filling the
// queue, and follows the capacity down to a tenth and back up.
func TestLimiterSettlesAtLatencyKnee(t *testing.T) {
	capacity := 0
	s := newSim(200, 32)
	for _, c := range []int{200, 20, 60, 200} {
		capacity = c
		lo, hi := s.span(10*time.Second, queued(&capacity, 30*time.Millisecond))
		if want := min(200, c*7/4); lo < c*3/4 || hi > want {
			t.Errorf("capacity %d: limit within [%d, %d], want within [%d, %d]", c, lo, hi, c*3/4, want)
		}
	}
}

// A latency rise that cutting the limit does not cure is not this
// client's doing: the new latency becomes the base and the limit goes
// back to where it was.
func TestLimiterAcceptsExternalLatencyRise(t *testing.T) {
	s := newSim(200, 32)
	for _, lat := range []time.Duration{30, 90, 30} {
		lo, hi := s.span(10*time.Second, fixed(lat*time.Millisecond))
		if lo != 200 || hi != 200 {
			t.Errorf("Castle at %d ms: limit within [%d, %d], want it at the ceiling 200", lat, lo, hi)
		}
	}
}

func TestLimiterIgnoresNone(t *testing.T) {
	s := newSim(1000, 32)
	s.run(10*time.Second, func(int) (time.Duration, signal) { return time.Second, sigNone })
	if got := s.l.value(); got != 32 {
		t.Fatalf("limit %d after signals that say nothing, want 32", got)
	}
}

func TestLimiterBounds(t *testing.T) {
	s := newSim(64, 100)
	if got := s.l.value(); got != 64 {
		t.Fatalf("initial limit %d with ceiling 64, want 64", got)
	}
	s.run(10*time.Second, fixed(time.Millisecond))
	if got := s.l.value(); got != 64 {
		t.Fatalf("limit %d, want at most the ceiling 64", got)
	}
}

func TestCapacitySignal(t *testing.T) {
	tests := []struct {
		d    decision
		wide bool
		want signal
	}{
		{decision{class: class2xx, act: actDeliver}, false, sigAnswer},
		{decision{class: class4xx, act: actReject}, false, sigAnswer},
		{decision{class: class4xx, act: actFallback}, false, sigAnswer},
		{decision{class: class429, act: actRetry, cause: class429}, false, sigNone},
		{decision{class: class429, act: actRetry, cause: class429}, true, sigPushback},
		{decision{class: class5xx, act: actRetry, cause: class5xx}, false, sigPushback},
		{decision{class: class4xx, act: actRetry, cause: classTimeout}, false, sigPushback},
		{decision{class: classTimeout, act: actRetry, cause: classTimeout}, false, sigPushback},
		{decision{class: classConnError, act: actRetry, cause: classConnError}, false, sigPushback},
		{decision{class: classOther, act: actRetry, cause: classOther}, false, sigNone},
		{decision{class: class4xx, act: actHold}, false, sigNone},
		{decision{class: classConnError, act: actHold}, false, sigNone},
		{decision{class: classCanceled, act: actCancel}, false, sigNone},
	}
	for _, tt := range tests {
		if got := capacitySignal(tt.d, tt.wide); got != tt.want {
			t.Errorf("capacitySignal(%+v, wide=%v) = %d, want %d", tt.d, tt.wide, got, tt.want)
		}
	}
}
