package destination

import "time"

// pacer enforces per-user rate windows with a sliding log of the last send
// times. Times are durations since the client's epoch (monotonic).
type pacer struct {
	windows []RateWindow // Per already includes the slack
	logLen  int          // the largest Requests: how many send times to keep
	maxPer  time.Duration
}

func newPacer(u UserRate) *pacer {
	if u.Off || len(u.Windows) == 0 {
		return nil
	}
	p := &pacer{}
	for _, w := range u.Windows {
		w.Per += u.Slack
		p.windows = append(p.windows, w)
		p.logLen = max(p.logLen, w.Requests)
		p.maxPer = max(p.maxPer, w.Per)
	}
	return p
}

// userPace is one user's pacing state. It is touched only by the goroutine
// draining the user's lane, or under Client.mu while no goroutine is.
type userPace struct {
	// sent holds the latest send times. While fewer than logLen it grows,
	// oldest first, with head 0: most users send once or twice within a
	// window, and a replay keeps this for every user who sent in the last
	// few seconds. Once full it is a ring whose oldest entry, the next
	// to be overwritten, is at head.
	sent      []time.Duration
	head      int
	notBefore time.Duration // from X-RateLimit hints: send nothing earlier
}

// latest is the time of the last send, noSend if none.
func (s *userPace) latest() time.Duration {
	if len(s.sent) == 0 {
		return noSend
	}
	return s.sent[(s.head-1+len(s.sent))%len(s.sent)]
}

// delay returns how long to wait, at now, before the next send.
func (p *pacer) delay(s *userPace, now time.Duration) time.Duration {
	until := s.notBefore
	for _, w := range p.windows {
		if len(s.sent) < w.Requests {
			continue
		}
		// The w.Requests-th most recent send must have left the window.
		k := (s.head - w.Requests + len(s.sent)) % len(s.sent)
		until = max(until, s.sent[k]+w.Per)
	}
	return max(until-now, 0)
}

// record notes a send at now.
func (p *pacer) record(s *userPace, now time.Duration) {
	if n := len(s.sent); n < p.logLen {
		if n == cap(s.sent) {
			grown := make([]time.Duration, n, min(max(2*n, 2), p.logLen))
			copy(grown, s.sent)
			s.sent = grown
		}
		s.sent = append(s.sent, now)
		return
	}
	s.sent[s.head] = now
	s.head = (s.head + 1) % len(s.sent)
}

// idle reports whether s no longer constrains anything at now, so that
// forgetting it changes no decision.
func (p *pacer) idle(s *userPace, now time.Duration) bool {
	return p.spent(s.latest(), s.notBefore, now)
}

// spent reports whether a user whose last send was at latest (noSend if
// none) and who may send nothing before notBefore is held by nothing at now.
func (p *pacer) spent(latest, notBefore, now time.Duration) bool {
	return (latest == noSend || now-latest >= p.maxPer) && now >= notBefore
}

// nearLimit reports whether s has used all but at most one request of any
// window at now: a 429 then may well be Castle's per-user limit.
func (p *pacer) nearLimit(s *userPace, now time.Duration) bool {
	for _, w := range p.windows {
		n := 0
		for i := range len(s.sent) {
			k := (s.head - 1 - i + len(s.sent)) % len(s.sent)
			if now-s.sent[k] < w.Per {
				n++
			}
		}
		if n >= w.Requests-1 {
			return true
		}
	}
	return false
}

// restSends is how many send times a resting user keeps: most users send
// once or twice within the longest window.
const restSends = 2

// noSend stands for no send time: an unused slot of restingPace.sent, or
// the latest send of a user who sent nothing. Send times are durations
// since the client's epoch, never negative.
const noSend time.Duration = -1

// restingPace is the pacing state of a user with nothing queued who sent
// at most restSends requests within the longest window. Kept in a
// restTable by a hash of the user's id (Client.restKey), it costs 21–43
// bytes, a tenth of what the user's lane costs, and most users at any time
// are resting. A replay keeps one for every user who sent within the last
// few seconds.
type restingPace struct {
	sent      [restSends]time.Duration // oldest first; noSend at the front when fewer
	notBefore time.Duration
}

// rest returns s as a restingPace, dropping send times that no window can
// count any more, or false when more than restSends send times still
// count at now.
func (p *pacer) rest(s *userPace, now time.Duration) (restingPace, bool) {
	r := restingPace{sent: [restSends]time.Duration{noSend, noSend}, notBefore: s.notBefore}
	k := restSends
	for i := range len(s.sent) {
		t := s.sent[(s.head-1-i+len(s.sent))%len(s.sent)] // newest first
		if now-t >= p.maxPer {
			break // and so is every older one
		}
		if k == 0 {
			return restingPace{}, false
		}
		k--
		r.sent[k] = t
	}
	return r, true
}

// wake makes r the state of a user's new lane, s.
func (p *pacer) wake(s *userPace, r restingPace) {
	s.notBefore = r.notBefore
	for _, t := range r.sent {
		if t != noSend {
			p.record(s, t)
		}
	}
}

// idleRest is idle for a resting user.
func (p *pacer) idleRest(r restingPace, now time.Duration) bool {
	return p.spent(r.sent[restSends-1], r.notBefore, now)
}
