package castleserver

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// limiter is a per-user-id sliding log of accepted requests, shared by
// the three endpoints. Requests without a user id are not limited.
// Rejected requests (429 or otherwise) do not count.
type limiter struct {
	limits []Limit
	logLen int
	maxPer time.Duration

	mu        sync.Mutex
	users     map[string]*userLog
	lastSweep time.Time
}

type userLog struct {
	times []time.Time // ring, newest at head-1
	head  int
	count int
}

// decision is the limiter's answer with what the X-RateLimit-* headers say.
type decision struct {
	ok         bool
	limit      int
	remaining  int
	reset      time.Duration // until the window of the tightest limit frees a slot
	retryAfter time.Duration // when !ok: until a request would be accepted
}

func newLimiter(limits []Limit) *limiter {
	l := &limiter{limits: limits, users: make(map[string]*userLog)}
	for _, x := range limits {
		l.logLen = max(l.logLen, x.Requests)
		l.maxPer = max(l.maxPer, x.Per)
	}
	return l
}

func (l *limiter) describe() string {
	parts := make([]string, len(l.limits))
	for i, x := range l.limits {
		parts[i] = strconv.Itoa(x.Requests) + " requests per " + x.Per.String()
	}
	return strings.Join(parts, " and ")
}

// fresh is the answer for a request not attributed to a user.
func (l *limiter) fresh() decision {
	return decision{ok: true, limit: l.limits[0].Requests, remaining: l.limits[0].Requests}
}

// admit decides, at now, on a request of user, and counts it if admitted.
func (l *limiter) admit(user string, now time.Time) decision {
	if user == "" {
		return l.fresh()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.maxPer {
		l.sweep(now)
	}
	u := l.users[user]
	if u == nil {
		u = &userLog{times: make([]time.Time, l.logLen)}
		l.users[user] = u
	}
	d := decision{ok: true}
	for _, x := range l.limits {
		if n, oldest := u.inWindow(x, now); n >= x.Requests {
			d.ok = false
			d.retryAfter = max(d.retryAfter, oldest.Add(x.Per).Sub(now))
		}
	}
	if d.ok {
		u.times[u.head] = now
		u.head = (u.head + 1) % len(u.times)
		u.count = min(u.count+1, len(u.times))
	}
	// Report the limit with the fewest requests left (the first on ties).
	d.remaining = -1
	for _, x := range l.limits {
		n, oldest := u.inWindow(x, now)
		rem := max(x.Requests-n, 0)
		if d.remaining < 0 || rem < d.remaining {
			d.limit, d.remaining = x.Requests, rem
			d.reset = 0
			if n > 0 {
				d.reset = oldest.Add(x.Per).Sub(now)
			}
		}
	}
	return d
}

// inWindow counts the requests of u within (now-Per, now] (at most
// x.Requests of them) and returns the oldest counted.
func (u *userLog) inWindow(x Limit, now time.Time) (int, time.Time) {
	var oldest time.Time
	n := 0
	for i := 1; i <= min(u.count, x.Requests); i++ {
		t := u.times[(u.head-i+len(u.times))%len(u.times)]
		if !t.After(now.Add(-x.Per)) {
			break
		}
		n, oldest = i, t
	}
	return n, oldest
}

// sweep forgets users with no request within the longest window.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, u := range l.users {
		newest := u.times[(u.head-1+len(u.times))%len(u.times)]
		if u.count == 0 || !newest.After(now.Add(-l.maxPer)) {
			delete(l.users, k)
		}
	}
}

// Canonical forms of the X-RateLimit-* header names, for direct map use.
const (
	hdrLimit     = "X-Ratelimit-Limit"
	hdrRemaining = "X-Ratelimit-Remaining"
	hdrReset     = "X-Ratelimit-Reset"
)

func setRateHeaders(h http.Header, d decision) {
	h[hdrLimit] = []string{strconv.Itoa(d.limit)}
	h[hdrRemaining] = []string{strconv.Itoa(d.remaining)}
	h[hdrReset] = []string{strconv.Itoa(ceilSeconds(d.reset, 0))}
}
