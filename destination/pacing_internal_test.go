package destination

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// The pacer's compact log (grown while filling, then a ring) decides as a
// log of every send would: the delay, idleness and nearness to a limit
// agree with a model over random send times, through the fill and many
// turns of the ring.
func TestPacerAgreesWithFullLog(t *testing.T) {
	rates := []UserRate{
		DefaultUserRate(),
		{Windows: []RateWindow{{Requests: 1, Per: time.Second}}},
		{Windows: []RateWindow{{Requests: 3, Per: 200 * time.Millisecond}, {Requests: 7, Per: time.Second}}, Slack: 10 * time.Millisecond},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, u := range rates {
		p := newPacer(u)
		for range 50 {
			s := &newLane("user").pace // in the lane's own room at first
			var log []time.Duration    // every send, oldest first
			now := time.Duration(0)
			for range 40 {
				now += time.Duration(rng.IntN(int(400 * time.Millisecond)))
				if d := p.delay(s, now); d != modelDelay(p, log, s.notBefore, now) {
					t.Fatalf("rate %+v after %d sends: delay %v, model %v", u, len(log), d, modelDelay(p, log, s.notBefore, now))
				}
				if got, want := p.idle(s, now), len(log) == 0 || now-log[len(log)-1] >= p.maxPer; got != want {
					t.Fatalf("rate %+v after %d sends: idle %v, model %v", u, len(log), got, want)
				}
				if got, want := p.nearLimit(s, now), modelNear(p, log, now); got != want {
					t.Fatalf("rate %+v after %d sends: nearLimit %v, model %v", u, len(log), got, want)
				}
				p.record(s, now)
				log = append(log, now)
				// The lane's own room may exceed what a window needs; what
				// is allocated may not.
				if len(s.sent) > p.logLen || cap(s.sent) > max(p.logLen, restSends) {
					t.Fatalf("the log holds %d (cap %d) send times, more than the %d any window needs", len(s.sent), cap(s.sent), p.logLen)
				}
			}
		}
	}
}

func modelDelay(p *pacer, log []time.Duration, notBefore, now time.Duration) time.Duration {
	until := notBefore
	for _, w := range p.windows {
		if len(log) >= w.Requests {
			until = max(until, log[len(log)-w.Requests]+w.Per)
		}
	}
	return max(until-now, 0)
}

func modelNear(p *pacer, log []time.Duration, now time.Duration) bool {
	for _, w := range p.windows {
		n := 0
		for i := len(log) - 1; i >= 0 && len(log)-i <= p.logLen; i-- {
			if now-log[i] < w.Per {
				n++
			}
		}
		if n >= w.Requests-1 {
			return true
		}
	}
	return false
}

// A user who sent once keeps one or two send times, not a whole window's.
func TestPacerLogStartsSmall(t *testing.T) {
	p := newPacer(DefaultUserRate())
	var s userPace
	p.record(&s, time.Second)
	if cap(s.sent) > 2 {
		t.Errorf("after one send the log has room for %d send times, want at most 2", cap(s.sent))
	}
}

// A lane made for a user's one or two events costs one allocation: its
// first queued job and first send times fit in the lane itself.
func TestLaneForFewEventsAllocatesOnce(t *testing.T) {
	p := newPacer(DefaultUserRate())
	j := &job{}
	allocs := testing.AllocsPerRun(100, func() {
		l := newLane("user")
		for at := range 2 {
			l.push(j)
			l.popFront()
			p.record(&l.pace, time.Duration(at+1)*time.Second)
		}
		escaped = l
	})
	if allocs != 1 {
		t.Errorf("a lane for two events allocates %v times, want 1", allocs)
	}
}

var escaped *lane

// A user put to rest and woken again is paced as if its lane had been
// kept all along: at rest, and at every later time, the delay, idleness
// and nearness to a limit agree. Rest refuses exactly the users with more
// than restSends send times still inside the longest window.
func TestRestingAgreesWithLane(t *testing.T) {
	rates := []UserRate{
		DefaultUserRate(),
		{Windows: []RateWindow{{Requests: 1, Per: time.Second}}},
		{Windows: []RateWindow{{Requests: 3, Per: 200 * time.Millisecond}, {Requests: 7, Per: time.Second}}, Slack: 10 * time.Millisecond},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	rested := 0
	for _, u := range rates {
		p := newPacer(u)
		for range 300 {
			s := &newLane("user").pace // in the lane's own room at first
			now := time.Duration(rng.IntN(int(time.Second)))
			for range rng.IntN(14) {
				p.record(s, now)
				now += time.Duration(rng.IntN(int(p.maxPer / 3)))
			}
			if rng.IntN(3) == 0 {
				s.notBefore = now + time.Duration(rng.IntN(int(2*p.maxPer)))
			}
			now += time.Duration(rng.IntN(int(p.maxPer / 2)))
			counting := 0
			for i := range len(s.sent) {
				if now-s.sent[i] < p.maxPer {
					counting++
				}
			}
			r, ok := p.rest(s, now)
			if ok != (counting <= restSends) {
				t.Fatalf("rate %+v: rest ok=%v with %d send times inside %v", u, ok, counting, p.maxPer)
			}
			if !ok {
				continue
			}
			rested++
			w := &newLane("user").pace // the lane's own room for send times
			p.wake(w, r)
			for at := now; at < now+2*p.maxPer+time.Second; at += time.Duration(1 + rng.IntN(int(100*time.Millisecond))) {
				if got, want := p.delay(w, at), p.delay(s, at); got != want {
					t.Fatalf("rate %+v at +%v: woken delay %v, lane's %v", u, at-now, got, want)
				}
				if got, want := p.idle(w, at), p.idle(s, at); got != want {
					t.Fatalf("rate %+v at +%v: woken idle %v, lane's %v", u, at-now, got, want)
				}
				if got, want := p.idleRest(r, at), p.idle(s, at); got != want {
					t.Fatalf("rate %+v at +%v: resting idle %v, lane's %v", u, at-now, got, want)
				}
				if got, want := p.nearLimit(w, at), p.nearLimit(s, at); got != want {
					t.Fatalf("rate %+v at +%v: woken nearLimit %v, lane's %v", u, at-now, got, want)
				}
			}
		}
	}
	if rested < 100 {
		t.Fatalf("only %d of 900 users could rest: the test does not exercise waking", rested)
	}
}

// After a burst of users, the maps of pacing state are made anew once a
// quarter of their peak is left, keeping every entry.
func TestShrinkAfterBurst(t *testing.T) {
	m := map[string]restingPace{}
	peak := 0
	for i := range 5000 {
		m[strconv.Itoa(i)] = restingPace{notBefore: time.Duration(i)}
	}
	if got := shrink(m, &peak); !sameMap(got, m) || peak != 5000 {
		t.Fatalf("at its peak the map was made anew (peak %d)", peak)
	}
	for i := range 3749 {
		delete(m, strconv.Itoa(i))
	}
	if got := shrink(m, &peak); !sameMap(got, m) {
		t.Fatalf("made anew at %d of a peak of 5000", len(m))
	}
	delete(m, "3749")
	got := shrink(m, &peak)
	if sameMap(got, m) || peak != 1250 || len(got) != 1250 {
		t.Fatalf("at a quarter of its peak: made anew %v, peak %d, %d entries", !sameMap(got, m), peak, len(got))
	}
	for i := 3750; i < 5000; i++ {
		if r, ok := got[strconv.Itoa(i)]; !ok || r.notBefore != time.Duration(i) {
			t.Fatalf("entry %d lost or changed: %+v", i, r)
		}
	}
}

// sameMap reports whether a and b are one map.
func sameMap(a, b map[string]restingPace) bool {
	a["\x00probe"] = restingPace{}
	_, same := b["\x00probe"]
	delete(a, "\x00probe")
	return same
}
