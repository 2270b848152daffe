package destination

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// signal is what one attempt says about Castle's capacity.
type signal uint8

const (
	// sigNone says nothing about capacity: a canceled attempt, a systemic
	// fault (those hold delivery instead), a 429 for one user's own budget
	// (per-user pacing handles it), an unexpected status.
	sigNone signal = iota
	// sigAnswer is an answer that is not push-back (2xx, or a 4xx about
	// the event itself): its latency is a sample.
	sigAnswer
	// sigPushback is an account-wide 429, a 5xx, a 408, a timeout or a
	// connection error: a sign of overload when many come at once, noise
	// when few do. (The gate, not the limiter, makes every request wait
	// out an account-wide 429.)
	sigPushback
)

// limitParams tune a limiter. defaultLimitParams holds the values the
// client uses.
type limitParams struct {
	ceiling int // the highest limit (Config.Concurrency)
	initial int // the limit at start, at most ceiling
	// A window whose answers' mean latency is above base·tolerance +
	// slack is slow. The slack keeps scheduler and GC noise from reading
	// as congestion when the latency is near zero (a Castle server on the
	// same host).
	tolerance float64
	slack     time.Duration
	// A window whose share of push-back is above the background share
	// plus backTolerance, plus three standard deviations of a share of at
	// least backTolerance over the window's size, is failing: a few
	// failures in a small window are not.
	backTolerance float64
	riseCut       float64 // the limit's factor on a slow window
	backCut       float64 // the limit's factor on push-back or a throttle
	// minSamples and riseSamples are the fewest outcomes a window needs,
	// outside and during a rise (when goodputs are compared).
	minSamples, riseSamples int
	// Cuts that took the limit to half what it was, and the goodput
	// (answers per second) below keepGoodput of what it was: the cuts did
	// not relieve a bottleneck.
	keepGoodput float64
	// minSlot and maxSlot bound the length of a cohort (see limiter).
	minSlot, maxSlot time.Duration
}

func defaultLimitParams(ceiling int) limitParams {
	return limitParams{
		ceiling:       ceiling,
		initial:       min(ceiling, 32),
		tolerance:     1.5,
		slack:         2 * time.Millisecond,
		backTolerance: 0.05,
		riseCut:       0.9,
		backCut:       0.8,
		minSamples:    16,
		riseSamples:   32,
		keepGoodput:   0.6,
		minSlot:       time.Millisecond,
		maxSlot:       time.Second,
	}
}

// limiter finds how many requests Castle can take in flight, by additive
// increase and multiplicative decrease, as TCP's congestion control does
// for packets (and Vector's adaptive request concurrency and Netflix's
// concurrency-limits do for requests). It owns no goroutine and blocks
// nothing: the Client asks it for the limit and tells it how each attempt
// went; the Client enforces the limit.
//
// Requests are grouped by when they were sent, in cohorts: slots of about
// one round trip, counted from the last change of the limit (requests sent
// before it say nothing about the new limit). A cohort is judged a round
// trip after its sending ended, once nine in ten of its requests have come
// back (or four round trips have passed), so that quick answers (503s, or
// requests not caught in a queue) do not stand for the whole cohort; its
// late outcomes (timeouts) count with the oldest cohort not yet judged.
// Small cohorts are judged together, as one window.
//
//   - A window with no answer at all (every request pushed back: an
//     account-wide 429, a 5xx, a timeout, a connection error) is an
//     outage: the limit is cut by backCut, but the slow-start threshold
//     stays, so that once Castle is back the limit doubles back up to
//     where it was.
//   - A slow window (answers' mean latency above base·tolerance + slack,
//     where base is the lowest window mean seen) or a failing one (a share
//     of push-back clearly above the background share) starts or goes on
//     with a rise: the limit is cut, by riseCut or backCut. Once a rise
//     has halved the limit, the limiter checks that the cuts helped: if
//     the goodput (answers per second) fell with the limit, the limit was
//     not the bottleneck (Castle got slower, or fails a share of requests
//     whatever the load), so what rose is the new normal (base or
//     background share) and the limit goes back to the last one whose
//     window was fine. If the goodput held, the overload is this client's,
//     and the cuts go on, to be checked again at the next halving. A rise
//     at a limit of 1 cannot be this client's doing either.
//   - A window neither slow nor failing, during which requests waited for
//     the limit (it, not the input, held delivery back), raises the limit:
//     doubling it while below the slow-start threshold (and the window's
//     lowest latency within an eighth of the lowest seen, 4 to 16 ms, as
//     HyStart++ has it); else adding a thirty-second of it (at least one)
//     up to the limit of the last cut; and past that (whatever held the
//     limit there is gone), adding steps that double each window, up to
//     an eighth of the limit. The threshold starts at the ceiling, so a
//     fresh client ramps up in a few round trips, and drops with the
//     limit at every other cut. The window right after a doubling is
//     given a second look before it ends slow start, or, with Castle
//     4 ms or more away, before it cuts: its requests went out in a
//     burst, many on new connections.
//
// The limit never leaves [1, ceiling]. Per-user 429s and systemic holds
// are not capacity signals (sigNone).
type limiter struct {
	p limitParams

	// busy is set by the Client when a request waited for the limit.
	busy atomic.Bool

	mu       sync.Mutex
	limit    float64
	ssthresh float64
	good     float64       // the last limit whose window was fine
	base     time.Duration // the lowest window mean latency; valid if hasBase
	floor    time.Duration // the lowest window least latency; valid if hasBase
	hasBase  bool
	backBase float64 // the background share of push-back
	down     bool    // the last window was an outage
	wmax     float64 // the limit before the last cut
	probe    int     // the last growth step past wmax
	// doubled is set when slow start has just doubled the limit: the
	// next window's requests went out in a burst, many on connections
	// dialed for them, and a rise in its latency is looked at twice.
	doubled bool
	rtt     time.Duration // smoothed latency of answers; 0 until one came

	// The cohorts since origin, the last change of the limit: cohort k
	// holds the requests sent in [origin+k·slot, origin+(k+1)·slot).
	origin time.Duration
	slot   time.Duration
	next   int64              // the oldest cohort not yet judged
	open   [openCohorts]tally // cohort k at k % openCohorts, for k >= next
	carry  tally              // judged cohorts too small to judge alone

	rise rise
}

// minRiseThresh and maxRiseThresh bound the rise of the lowest latency,
// an eighth of it in between, that ends slow start (RFC 9406's
// MIN_RTT_THRESH and MAX_RTT_THRESH).
const (
	minRiseThresh = 4 * time.Millisecond
	maxRiseThresh = 16 * time.Millisecond
)

// openCohorts bounds the cohorts awaiting judgment; a request of a later
// cohort counts with the last of them.
const openCohorts = 8

// tally adds up requests and their outcomes.
type tally struct {
	sent, settled      int // requests of the cohort sent, and settled so far
	answers, pushbacks int
	sum                time.Duration // the answers' latencies
	least              time.Duration // the lowest answer latency; 0 if none
	slots              int           // cohorts added up
}

// add adds o's outcomes to t (sent and settled only serve to close a
// cohort, and are not added).
func (t *tally) add(o tally) {
	t.answers += o.answers
	t.pushbacks += o.pushbacks
	t.sum += o.sum
	t.least = leastOf(t.least, o.least)
	t.slots += o.slots
}

// leastOf is the lower of two answer latencies, where 0 is none.
func leastOf(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func (t tally) total() int { return t.answers + t.pushbacks }

// rise is a congestion episode: from the first slow or failing window to
// the riseOver-th fine window in a row.
type rise struct {
	on       bool
	from     float64 // the last fine limit, restored if the rise is not ours
	ssthresh float64 // the slow-start threshold then, restored likewise
	fine     int     // fine windows in a row since the last cut
	// seen are the rise's windows since its start or its last check,
	// oldest first, at most maxSeen. The first window of a rise is left
	// out: it may still hold answers from before whatever changed.
	seen []seenWindow
}

// seenWindow is what a window of a rise delivered.
type seenWindow struct {
	limit float64
	t     tally
	span  time.Duration // the time its requests were sent over
}

// add notes a window of the rise: into the last one if the limit has not
// changed since, else as a new one (dropping the oldest past maxSeen).
func (r *rise) add(w seenWindow) {
	if n := len(r.seen); n > 0 && r.seen[n-1].limit == w.limit {
		r.seen[n-1].t.add(w.t)
		r.seen[n-1].span += w.span
		return
	}
	if len(r.seen) == maxSeen {
		r.seen = append(r.seen[:0], r.seen[1:]...)
	}
	r.seen = append(r.seen, w)
}

// pool adds up the windows whose limit is within [lo, hi].
func (r *rise) pool(lo, hi float64) (p seenWindow) {
	for _, s := range r.seen {
		if s.limit >= lo && s.limit <= hi {
			p.t.add(s.t)
			p.span += s.span
		}
	}
	return p
}

const (
	// riseOver fine windows in a row end a rise: one alone may be luck
	// when a share of requests fails at random.
	riseOver = 3
	// checkSpan is how far the limit must have fallen within a rise
	// before the goodput tells whether the cuts helped: halving the limit
	// about halves the goodput when the limit was not the bottleneck, and
	// leaves it when it was.
	checkSpan = 2
	// checkAnswers is how many answers the check needs on each side, so
	// that chance does not decide it (about ±9% each).
	checkAnswers = 128
	// maxSeen bounds rise.seen: cuts of 0.9 halve the limit in seven
	// windows.
	maxSeen = 16
)

func newLimiter(p limitParams) *limiter {
	p.initial = max(1, min(p.initial, p.ceiling))
	return &limiter{p: p, limit: float64(p.initial), ssthresh: float64(p.ceiling), good: float64(p.initial), slot: p.minSlot}
}

// value is the current limit.
func (l *limiter) value() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// waited notes that a request waited for the limit.
func (l *limiter) waited() {
	if !l.busy.Load() {
		l.busy.Store(true)
	}
}

// restart drops the cohorts: delivery was held (a systemic fault), so
// requests in flight and the time held say nothing about capacity.
func (l *limiter) restart(now time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reset(now)
}

// reset starts counting cohorts afresh at now.
func (l *limiter) reset(now time.Duration) {
	l.origin = now
	l.slot = min(max(l.rtt, l.p.minSlot), l.p.maxSlot)
	l.next = 0
	l.open = [openCohorts]tally{}
	l.carry = tally{}
}

// cohort returns the index of the cohort of a request sent at start, and
// whether it is still open (not yet judged). It is clamped to the open
// ones. l.mu must be held, and start >= l.origin.
func (l *limiter) cohort(start time.Duration) (int64, bool) {
	k := int64((start - l.origin) / l.slot)
	return min(max(k, l.next), l.next+openCohorts-1), k >= l.next
}

// sent notes a request sent at start (since the same epoch as observe's
// times), so that its cohort is judged once nearly all its requests have
// come back.
func (l *limiter) sent(start time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if start >= l.origin {
		k, _ := l.cohort(start)
		l.open[k%openCohorts].sent++
	}
}

// due reports whether the oldest open cohort is to be judged at now: a
// round trip has passed since its sending ended (so the usual answers are
// in, not only quick 503s) and nine in ten of its requests have come back
// (so answers held up in a queue count too), or four round trips have
// passed (the rest time out or hang: they count with a later cohort).
func (l *limiter) due(now time.Duration) bool {
	end := l.origin + time.Duration(l.next+1)*l.slot + l.p.minSlot
	if now < end+l.rtt {
		return false
	}
	c := &l.open[l.next%openCohorts]
	return c.settled >= c.sent-c.sent/10 || now >= end+4*l.rtt
}

// observe takes one attempt's outcome: s, for a request sent at start and
// answered after rtt, judged at now (times since any fixed epoch). Every
// request noted by sent must be observed once, with sigNone if it says
// nothing. It reports whether the limit changed.
func (l *limiter) observe(start, rtt time.Duration, s signal, now time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := int(l.limit)
	if s == sigAnswer {
		if l.rtt == 0 {
			l.rtt = max(rtt, 1)
		} else {
			l.rtt += (rtt - l.rtt) / 16
		}
	}
	if start >= l.origin {
		k, open := l.cohort(start)
		c := &l.open[k%openCohorts]
		if open {
			c.settled++
		}
		switch s {
		case sigAnswer:
			c.answers++
			c.sum += rtt
			c.least = leastOf(c.least, max(rtt, 1))
		case sigPushback:
			c.pushbacks++
		}
	}
	// Judge the cohorts whose time has come.
	for epoch := l.origin; epoch == l.origin && l.due(now); {
		i := l.next % openCohorts
		c := l.open[i]
		l.open[i] = tally{}
		l.next++
		c.slots = 1
		l.carry.add(c)
		need := l.p.minSamples
		if l.rise.on {
			need = l.p.riseSamples
		}
		if l.carry.total() >= need {
			w := l.carry
			l.carry = tally{}
			l.judge(w, now)
		}
	}
	return int(l.limit) != old
}

// judge acts on the window w, judged at now.
func (l *limiter) judge(w tally, now time.Duration) {
	busy := l.busy.Swap(false)
	doubled := l.doubled
	l.doubled = false
	if w.answers == 0 {
		// An outage, not a capacity limit.
		l.rise, l.down = rise{seen: l.rise.seen[:0]}, true
		l.cut(l.p.backCut, now)
		return
	}
	if l.down {
		// Castle is back. This window mixes the outage's end with the
		// recovery: judge the next one.
		l.down = false
		l.reset(now)
		return
	}
	total := w.total()
	mean := w.sum / time.Duration(w.answers)
	share := float64(w.pushbacks) / float64(total)
	slow := l.hasBase && mean > time.Duration(float64(l.base)*l.p.tolerance)+l.p.slack
	q := max(l.backBase, l.p.backTolerance)
	noise := 3 * math.Sqrt(q*(1-q)/float64(total))
	failing := w.pushbacks >= 2 && share > l.backBase+l.p.backTolerance+noise
	if !slow && !failing && l.rise.on && share > l.backBase+l.p.backTolerance {
		// More push-back than the background, but within chance: during
		// a rise, neither failing nor fine. Wait for the next window.
		return
	}
	if !slow && !failing {
		l.fine(mean, w.least, share, busy, doubled, now)
		return
	}
	if !failing && doubled && l.floor >= minRiseThresh {
		// Slow right after slow start doubled the limit: the burst of
		// requests and the connections dialed for them (TLS handshakes,
		// round trips to a Castle a network away) slow every answer for
		// about a round trip. Look again at the next window before
		// cutting. (On a Castle a few milliseconds away, a slow window
		// is this client's load: there, every extra in flight costs CPU
		// and memory and gains nothing.)
		l.reset(now)
		return
	}
	ratio := l.p.riseCut
	if failing {
		ratio = l.p.backCut
	}
	r := &l.rise
	r.fine = 0
	if !r.on {
		*r = rise{on: true, from: l.good, ssthresh: l.ssthresh, seen: r.seen[:0]}
		l.cut(ratio, now)
		l.ssthresh = l.limit
		return
	}
	r.add(seenWindow{l.limit, w, time.Duration(w.slots) * l.slot})
	if l.limit <= 1 {
		// One request at a time, and still slow or failing: this load
		// cannot be the cause.
		l.notOurs(slow, failing, w, now)
		return
	}
	ref := r.pool(checkSpan*l.limit, math.Inf(1))
	if ref.t.answers < checkAnswers {
		// Not yet halved, or too few answers from before to compare
		// with: cut on.
		l.cut(ratio, now)
		l.ssthresh = l.limit
		return
	}
	cur := r.pool(0, l.limit*1.25)
	if cur.t.answers < checkAnswers {
		return // hold the limit here until the check can be trusted
	}
	// Goodputs compared as answers/span, multiplied out.
	if float64(cur.t.answers)*ref.span.Seconds() < l.p.keepGoodput*float64(ref.t.answers)*cur.span.Seconds() {
		// The goodput fell with the limit: the limit was not the
		// bottleneck.
		l.notOurs(slow, failing, w, now)
		return
	}
	// The goodput held: the overload is ours. Cut on, and check again
	// once the limit has halved from here.
	r.seen = append(r.seen[:0], r.seen[len(r.seen)-1])
	l.cut(ratio, now)
	l.ssthresh = l.limit
}

// notOurs ends a rise that this client's load did not cause: what rose is
// the new normal, and the limit goes back to where the rise found it.
func (l *limiter) notOurs(slow, failing bool, w tally, now time.Duration) {
	r := &l.rise
	if slow {
		l.base, l.floor = w.sum/time.Duration(w.answers), w.least
	}
	if failing {
		// The share over the whole rise (it does not depend on the
		// limit), plus one standard deviation: better to tolerate a
		// little more than to cut on chance.
		all := r.pool(0, math.Inf(1)).t
		n := float64(all.total())
		q := float64(all.pushbacks) / n
		l.backBase = min(1, q+math.Sqrt(q*(1-q)/n))
	}
	l.limit = max(l.limit, r.from)
	l.ssthresh = max(r.ssthresh, l.limit)
	l.good = l.limit
	*r = rise{seen: r.seen[:0]}
	l.reset(now)
}

// fine acts on a window that was neither slow nor failing.
// mean and least are its answers' mean and lowest latency; doubled says
// that slow start doubled the limit just before it.
func (l *limiter) fine(mean, least time.Duration, share float64, busy, doubled bool, now time.Duration) {
	if l.rise.on {
		if l.rise.fine++; l.rise.fine >= riseOver {
			l.rise = rise{seen: l.rise.seen[:0]}
		}
	}
	if !l.rise.on {
		l.good = l.limit
	}
	if !l.hasBase {
		l.base, l.floor, l.hasBase = mean, least, true
	}
	l.base, l.floor = min(l.base, mean), min(l.floor, least)
	if share < l.backBase/2 {
		// Clearly fewer failures than the background: it fades.
		l.backBase += (share - l.backBase) / 8
	}
	if !busy || l.limit >= float64(l.p.ceiling) {
		return
	}
	if l.limit < l.ssthresh && least > l.floor+min(max(l.floor/8, minRiseThresh), maxRiseThresh) {
		// Even the quickest answers come later: a queue has begun to
		// form, and doubling again would overshoot. Leave slow start for
		// the gentler growth below. This is HyStart++'s test (RFC 9406,
		// section 4.2): the lowest latency, not the mean, so that a busy
		// CPU or GC slowing some answers (the mean) does not end slow
		// start while Castle itself keeps up; and against the lowest
		// seen, not the last window's, so that a creeping rise counts.
		if doubled {
			// Unless slow start has just doubled the limit (see judge):
			// look again at the next window.
			l.reset(now)
			return
		}
		l.ssthresh = l.limit
	}
	switch {
	case l.limit < l.ssthresh:
		// Slow start: wait and see what the doubled limit does.
		l.limit = min(2*l.limit, l.ssthresh, float64(l.p.ceiling))
		l.doubled = true
		l.reset(now)
	case l.limit < l.wmax:
		// Back towards the limit of the last cut: a thirty-second of the
		// limit per window (at least one), so that a cut on a passing
		// blip costs a few round trips, not seconds.
		l.limit = min(l.limit+max(1, l.limit/32), l.wmax)
	default:
		// Past the limit of the last cut: whatever held the limit there
		// is gone. Probe with steps doubling each window, up to an eighth
		// of the limit (a slow start that cannot overshoot far).
		l.probe = min(max(2*l.probe, 1), max(1, int(l.limit/8)))
		l.limit = min(l.limit+float64(l.probe), float64(l.p.ceiling))
	}
}

// cut lowers the limit by ratio, to no less than 1, and starts counting
// cohorts afresh.
func (l *limiter) cut(ratio float64, now time.Duration) {
	l.wmax, l.probe = l.limit, 0
	l.limit = max(l.limit*ratio, 1)
	l.reset(now)
}
