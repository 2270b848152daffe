package destination

import (
	"math/rand/v2"
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
			var s userPace
			var log []time.Duration // every send, oldest first
			now := time.Duration(0)
			for range 40 {
				now += time.Duration(rng.IntN(int(400 * time.Millisecond)))
				if d := p.delay(&s, now); d != modelDelay(p, log, s.notBefore, now) {
					t.Fatalf("rate %+v after %d sends: delay %v, model %v", u, len(log), d, modelDelay(p, log, s.notBefore, now))
				}
				if got, want := p.idle(&s, now), len(log) == 0 || now-log[len(log)-1] >= p.maxPer; got != want {
					t.Fatalf("rate %+v after %d sends: idle %v, model %v", u, len(log), got, want)
				}
				if got, want := p.nearLimit(&s, now), modelNear(p, log, now); got != want {
					t.Fatalf("rate %+v after %d sends: nearLimit %v, model %v", u, len(log), got, want)
				}
				p.record(&s, now)
				log = append(log, now)
				if len(s.sent) > p.logLen || cap(s.sent) > p.logLen {
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
