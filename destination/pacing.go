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
	if u.Off {
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
	sent      []time.Duration // ring of send times, len logLen once used
	head      int             // next write position
	count     int             // stored entries, <= len(sent)
	notBefore time.Duration   // from X-RateLimit hints: send nothing earlier
	last      time.Duration   // latest send
}

// delay returns how long to wait, at now, before the next send.
func (p *pacer) delay(s *userPace, now time.Duration) time.Duration {
	until := s.notBefore
	for _, w := range p.windows {
		if s.count < w.Requests {
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
	if s.sent == nil {
		s.sent = make([]time.Duration, p.logLen)
	}
	s.sent[s.head] = now
	s.head = (s.head + 1) % len(s.sent)
	s.count = min(s.count+1, len(s.sent))
	s.last = now
}

// idle reports whether s no longer constrains anything at now, so that
// forgetting it changes no decision.
func (p *pacer) idle(s *userPace, now time.Duration) bool {
	return (s.count == 0 || now-s.last >= p.maxPer) && now >= s.notBefore
}

// nearLimit reports whether s has used all but at most one request of any
// window at now: a 429 then may well be Castle's per-user limit.
func (p *pacer) nearLimit(s *userPace, now time.Duration) bool {
	for _, w := range p.windows {
		n := 0
		for i := 0; i < s.count; i++ {
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
