package destination

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/internal/rawjson"
)

// ErrClosed is the cause of events settled Canceled because the client was
// closed.
var ErrClosed = errors.New("castle client closed")

// ErrStopped is the cause of events settled Canceled because the client
// was told to stop sending (Client.StopSending) before they were sent.
var ErrStopped = errors.New("castle client stopped sending")

// Faults is told about systemic faults (hold.Board): Raise at each failure
// that holds delivery, Clear when the fault is gone.
type Faults interface {
	Raise(class, msg string)
	Clear(class string)
}

// Client delivers events to Castle. It is safe for concurrent use. Build it
// with New and stop it with Close.
//
// It schedules; a sender makes the requests. Every user's events wait in
// that user's lane, a FIFO; an event without a user gets a lane of its own.
// Workers take ready lanes from one queue and send each lane's head event;
// a lane is served by at most one worker at a time, which keeps a user's
// events in order (across /v1/log, /v1/risk and /v1/filter). A lane that
// must wait (per-user pacing, or a retry backoff) arms a timer and frees
// its worker, so a held-back user holds back no one else. A gate in front
// of every send holds them all during a systemic fault or an account-wide
// 429.
//
// A worker has at most one request in flight, and there are as many
// workers as the adaptive concurrency limit (a limiter, between 1 and
// Config.Concurrency) allows: when the limit rises the client starts
// workers, when it falls the surplus ones stop as they come back for work.
// A lane that waits in the ready queue while no worker is idle tells the
// limiter that the limit, not the input, is what holds delivery back.
type Client struct {
	cfg    Config
	log    *zap.Logger
	m      *metrics
	send   *sender
	pacer  *pacer // nil when per-user pacing is off
	gate   *gate
	lim    *limiter
	faults Faults
	epoch  time.Time

	closeCtx context.Context
	closeFn  context.CancelCauseFunc
	workers  sync.WaitGroup
	batches  sync.WaitGroup // batches not yet settled

	mu      sync.Mutex
	ready   laneQueue // lanes waiting for a worker
	wake    *sync.Cond
	running int              // workers started and not yet stopped
	target  int              // workers wanted: the limiter's limit
	idle    int              // workers waiting for a lane
	lanes   map[string]*lane // user lanes
	// resting holds the users without a lane whose pacing state still
	// counts, by restKey: a replay keeps one for every user who sent in
	// the last few seconds, and an id would cost a string each.
	resting   restTable
	restSeed  maphash.Seed
	armed     map[*lane]struct{}
	lastSweep time.Duration
	peakLanes int // the most entries a sweep has seen in lanes since it was made
	closed    bool

	// stopping is set by StopSending: no attempt starts after it.
	stopping atomic.Bool
	// secret is what Castle's answers last said of the API secret
	// (Secret); secretCh is closed, under secretMu, when that changes.
	secret   atomic.Int32
	secretMu sync.Mutex
	secretCh chan struct{}
	// refusals counts the answers that refused the secret: an answer
	// accepting an event counts as taking the secret only if no refusal
	// came since its request was sent (a slow 2xx from before a rotation
	// at Castle proves nothing after it).
	refusals atomic.Int64

	consecFail  atomic.Int64
	checking    atomic.Bool  // Check runs and Castle has not answered it yet
	answered    atomic.Bool  // Castle has answered a request (any status) since the start
	lastFail    atomic.Int32 // a class
	unreachable atomic.Bool

	recent429 recent429
}

// Lane states, guarded by Client.mu.
const (
	laneIdle    uint8 = iota // no work, or not yet started
	laneQueued               // in the ready queue
	laneRunning              // a worker is serving it
	laneWaiting              // a timer will requeue it
)

// lane is the FIFO of one user's events (or of one anonymous event).
type lane struct {
	key   string
	queue []*job // guarded by Client.mu
	head  int
	state uint8       // guarded by Client.mu
	timer *time.Timer // guarded by Client.mu; armed while laneWaiting
	pace  userPace    // touched only by the worker serving the lane
	// Room for the first queued job and the first send times: most lanes
	// carry one or two events of a user, and then cost one allocation.
	queue0 [1]*job
	sent0  [restSends]time.Duration
}

// newLane returns an idle lane for key ("" for an event without a user).
func newLane(key string) *lane {
	l := &lane{key: key}
	l.queue, l.pace.sent = l.queue0[:0], l.sent0[:0]
	return l
}

func (l *lane) empty() bool { return l.head == len(l.queue) }

func (l *lane) front() *job { return l.queue[l.head] }

// push queues j behind the lane's other jobs.
func (l *lane) push(j *job) {
	l.queue = append(l.queue, j)
	if cap(l.queue) > len(l.queue0) {
		// The queue has outgrown the lane's room, which must not keep the
		// job it held alive.
		l.queue0 = [len(l.queue0)]*job{}
	}
}

func (l *lane) popFront() {
	l.queue[l.head] = nil
	l.head++
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
	}
}

// laneQueue is a FIFO of lanes.
type laneQueue struct {
	buf  []*lane
	head int
}

func (q *laneQueue) push(l *lane) { q.buf = append(q.buf, l) }

func (q *laneQueue) empty() bool { return q.head == len(q.buf) }

func (q *laneQueue) pop() *lane {
	if q.head == len(q.buf) {
		return nil
	}
	l := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return l
}

// Job states.
const (
	jobPending uint32 = iota // waiting: queued, paced, or between attempts
	jobRunning               // a worker holds it
	jobSettled
)

type job struct {
	b     *batch
	idx   int
	ev    Event
	state atomic.Uint32
	// Delivery progress, written by the worker before the job returns to
	// jobPending, so that cancelPending reads them consistently.
	attempts int
	code     int
	lastErr  error
	deadline time.Time // zero until the first attempt of a retry budget
	// scoring: the next attempt goes to ev.Score; cleared by a fallback.
	scoring  bool
	fallback string
}

// batch is the events of one Submit call.
type batch struct {
	c         *Client
	jobs      []job
	remaining atomic.Int64
	ctx       context.Context
	cancel    context.CancelCauseFunc
	settled   func(i int, r Result)
	// stops unregister the batch's context.AfterFuncs. The functions
	// registered can run, and settle the whole batch, before Submit has
	// stored the stops: stopMu makes the last settle wait for them.
	stopMu sync.Mutex
	stops  [2]func() bool
}

// New builds a Client. logger may be nil (no logs); reg may be nil (metrics
// are kept but not exported); client may be nil, in which case the Client
// posts over HTTP/1.1 connections of its own (see h1), or, when the
// environment names a proxy for the URL, through a tuned net/http
// transport (NewTransport). Of a given client only its Transport is
// used (http.DefaultTransport when nil): each request goes straight to it,
// without http.Client's per-request copy of the headers for redirects,
// which are never followed. Requests share one header map, so the
// transport must keep net/http's contract and not modify a request. A
// redirect from Castle means the URL is wrong, which holds delivery like a
// 404, and it is never turned into a GET.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer, client *http.Client) (*Client, error) {
	return newClient(cfg, logger, reg, client, nil)
}

// newClient is New; dial, if not nil, makes the connections of the
// Client's own transport (h1), which is then used whatever the
// environment's proxy settings (tests dial an in-memory listener).
func newClient(cfg Config, logger *zap.Logger, reg prometheus.Registerer, client *http.Client, dial dialFunc) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("castle client config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("castle client metrics: %w", err)
	}
	faults := cfg.Faults
	if faults == nil {
		b, err := hold.New(logger, reg, hold.Options{})
		if err != nil {
			return nil, err
		}
		faults = b
	}
	var rt http.RoundTripper // nil: the sender's own connections (h1)
	switch {
	case client == nil:
		if dial == nil && viaProxy(cfg.URL) {
			rt = NewTransport(cfg.Concurrency)
		}
	case client.Transport == nil:
		rt = http.DefaultTransport
	default:
		rt = client.Transport
	}

	send, err := newSender(cfg, rt, dial)
	if err != nil {
		return nil, err
	}
	if send.h1 != nil {
		send.h1.opened, send.h1.resent = m.opened, m.resent
	}
	c := &Client{
		cfg:      cfg,
		log:      logger,
		m:        m,
		send:     send,
		pacer:    newPacer(cfg.UserRate),
		lim:      newLimiter(defaultLimitParams(cfg.Concurrency)),
		faults:   faults,
		epoch:    time.Now(),
		lanes:    make(map[string]*lane),
		restSeed: maphash.MakeSeed(),
		armed:    make(map[*lane]struct{}),
	}
	c.secretCh = make(chan struct{})
	c.gate = newGate(faults, cfg.Retry.Initial, cfg.ProbeMax, func(on bool) {
		if on {
			m.throttled.Set(1)
			logger.Warn("castle throttles the account (429 beyond per-user limits): holding every request until the Retry-After passes")
		} else {
			m.throttled.Set(0)
			logger.Info("castle account throttle over")
		}
	})
	c.wake = sync.NewCond(&c.mu)
	c.closeCtx, c.closeFn = context.WithCancelCause(context.Background())
	c.applyLimit()
	return c, nil
}

// applyLimit sets the number of workers to the limiter's limit: it starts
// the missing ones at once; surplus ones stop as they come back for work.
func (c *Client) applyLimit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.lim.value()
	c.target = n
	c.m.limit.Set(float64(n))
	for c.running < n && !c.closed {
		c.running++
		c.workers.Add(1)
		go c.worker()
	}
}

// ConcurrencyLimit is the current adaptive limit on requests in flight,
// between 1 and Config.Concurrency (also the gauge
// castle_destination_castle_concurrency_limit).
func (c *Client) ConcurrencyLimit() int { return c.lim.value() }

// NewTransport returns an http.Transport tuned for many small POSTs to one
// host: up to concurrency kept-alive connections (Config.Concurrency, the
// ceiling: connections are opened only as the adaptive limit uses them),
// TLS 1.2 or later, HTTP/2 when the server offers it. New uses it when a
// proxy is configured.
func NewTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2: true,
		// Castle's answers are a few hundred bytes at most; asking for
		// gzip would cost a header map per request.
		DisableCompression:  true,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		// net/http reports a refused CONNECT by its reason phrase alone:
		// name the proxy's refusal of our credentials, so that it holds.
		OnProxyConnectResponse: func(_ context.Context, _ *url.URL, _ *http.Request, res *http.Response) error {
			if res.StatusCode == http.StatusProxyAuthRequired {
				return errProxyAuth
			}
			return nil
		},
	}
}

// errProxyAuth is a proxy's 407 to CONNECT: the credentials in
// HTTPS_PROXY (or HTTP_PROXY) are missing or wrong.
var errProxyAuth = errors.New("the proxy answered 407 Proxy Authentication Required")

// now is the monotonic time since the client started.
func (c *Client) now() time.Duration { return time.Since(c.epoch) }

// Submit queues events for delivery and returns at once; settled is called
// with each event's index and result as soon as that event is settled, from
// the goroutine that settled it, so it must be quick and must not block.
//
// Every event with a UserID is queued behind that user's earlier events,
// from this or any earlier Submit: a caller that needs batch A's events
// before batch B's submits A first. Different users proceed concurrently,
// and a user held back by pacing or a retry does not hold back others.
// When ctx ends, events not yet settled are settled Canceled promptly (a
// request in flight is aborted).
func (c *Client) Submit(ctx context.Context, events []Event, settled func(i int, r Result)) {
	n := len(events)
	if n == 0 {
		return
	}
	b := &batch{c: c, jobs: make([]job, n), settled: settled}
	for i := range events {
		j := &b.jobs[i]
		j.b, j.idx, j.ev = b, i, events[i]
		j.scoring = j.ev.Score != nil
	}
	b.remaining.Store(int64(n))
	b.ctx, b.cancel = context.WithCancelCause(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches.Add(1)
	b.stopMu.Lock()
	b.stops[0] = context.AfterFunc(c.closeCtx, func() { b.cancel(ErrClosed) })
	b.stops[1] = context.AfterFunc(b.ctx, b.cancelPending)
	b.stopMu.Unlock()
	if c.closed {
		b.cancel(ErrClosed) // settles everything through cancelPending
		return
	}
	c.maybeSweep()
	woken := 0
	for i := range b.jobs {
		j := &b.jobs[i]
		var l *lane
		if j.ev.UserID == "" {
			l = newLane("")
		} else if l = c.lanes[j.ev.UserID]; l == nil {
			// The lane, and its pacing state, can outlive the event by
			// minutes: its key must not keep the event's input alive.
			key := strings.Clone(j.ev.UserID)
			l = newLane(key)
			if c.resting.len() > 0 {
				if r, ok := c.resting.take(c.restKey(key)); ok {
					c.pacer.wake(&l.pace, r)
				}
			}
			c.lanes[key] = l
		}
		l.push(j)
		if l.state == laneIdle {
			l.state = laneQueued
			c.ready.push(l)
			woken++
		}
	}
	if woken >= c.target {
		c.wake.Broadcast()
	} else {
		for range woken {
			c.wake.Signal()
		}
	}
}

// cancelPending settles as Canceled every job no worker holds.
func (b *batch) cancelPending() {
	cause := context.Cause(b.ctx)
	for i := range b.jobs {
		j := &b.jobs[i]
		if j.state.CompareAndSwap(jobPending, jobSettled) {
			b.c.settle(j, Canceled, j.canceledErr(cause), nil)
		}
	}
}

func (j *job) canceledErr(cause error) error {
	if j.lastErr != nil {
		return fmt.Errorf("castle: delivery canceled after %d attempts (last error: %w): %w", j.attempts, j.lastErr, cause)
	}
	return fmt.Errorf("castle: delivery canceled after %d attempts: %w", j.attempts, cause)
}

// settle reports j's result; the last settled job completes the batch.
func (c *Client) settle(j *job, s Status, err error, verdict []byte) {
	b := j.b
	r := Result{Status: s, Attempts: j.attempts, Code: j.code, Err: err, Verdict: verdict, Fallback: j.fallback}
	if j.scoring {
		r.Endpoint = j.ev.Score.Endpoint
	}
	c.m.eventCounter(j.ev.Type, s).Inc()
	if b.settled != nil {
		b.settled(j.idx, r)
	}
	// The batch lives until its last event settles, which can be many
	// round trips later (a user's events go one after another): what this
	// job no longer needs goes now. Only the job's holder (the worker, or
	// cancelPending, which won the job's state) gets here.
	j.ev.Body, j.ev.Score = nil, nil
	if b.remaining.Add(-1) == 0 {
		b.stopMu.Lock()
		b.stops[0]()
		b.stops[1]()
		b.stopMu.Unlock()
		b.cancel(context.Canceled)
		c.batches.Done()
	}
}

// sweepEvery is how often idle users are looked for. A user's state lives
// until its last send left the longest window, plus up to this.
const sweepEvery = time.Second

// maybeSweep, at most once per sweepEvery, forgets idle users whose
// pacing state no longer matters and moves the lanes of the others who
// sent little into resting. Called with c.mu held.
func (c *Client) maybeSweep() {
	if c.pacer == nil {
		return
	}
	now := c.now()
	if now-c.lastSweep < sweepEvery {
		return
	}
	c.lastSweep = now
	for k, l := range c.lanes {
		if l.state != laneIdle {
			continue
		}
		if c.pacer.idle(&l.pace, now) {
			delete(c.lanes, k)
		} else if r, ok := c.pacer.rest(&l.pace, now); ok {
			c.resting.put(c.restKey(k), r, now)
			delete(c.lanes, k)
		}
	}
	c.resting.sweep(func(r restingPace) bool { return c.pacer.idleRest(r, now) })
	c.lanes = shrink(c.lanes, &c.peakLanes)
}

// restKey is the key of user id in c.resting: a 64-bit hash of it. Two
// users resting at once with the same hash (a chance of about n²/2^64
// with n resting: two in a billion at 200,000) would share one entry: the
// later to rest overwrites the other's, so one wakes paced by the other's
// sends and the other by none. At worst, a per-user 429 from Castle,
// retried.
func (c *Client) restKey(id string) uint64 { return maphash.String(c.restSeed, id) | 1 }

// shrink returns m, or a copy of it sized to its entries once it holds a
// quarter of the most it held (peak) or less: a Go map keeps the room
// of its largest size, and a burst of users must not keep that for good.
func shrink[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if !shrinkDue(len(m), peak) {
		return m
	}
	n := make(map[K]V, len(m)) // not maps.Clone: it keeps m's room
	for k, v := range m {
		n[k] = v
	}
	return n
}

// shrinkDue reports whether a store of pacing state holding n entries,
// and at most *peak since it was sized, should be sized anew: at a
// quarter of its peak or less, once the peak passed 1,024. It then takes
// n as the new peak.
func shrinkDue(n int, peak *int) bool {
	*peak = max(*peak, n)
	if *peak < 1024 || n > *peak/4 {
		return false
	}
	*peak = n
	return true
}

// worker serves ready lanes until the client is closed or the limit
// leaves it surplus.
func (c *Client) worker() {
	defer c.workers.Done()
	for {
		c.mu.Lock()
		var l *lane
		waited := false
		for {
			if c.closed {
				c.mu.Unlock()
				return
			}
			if c.running > c.target {
				c.running--
				if !c.ready.empty() {
					c.wake.Signal() // the lane this worker was woken for
				}
				c.mu.Unlock()
				return
			}
			if l = c.ready.pop(); l != nil {
				break
			}
			waited = true
			c.idle++
			c.wake.Wait()
			c.idle--
		}
		if !waited && c.idle == 0 {
			// l was ready while every worker was busy.
			c.lim.waited()
		}
		l.state = laneRunning
		c.mu.Unlock()
		c.serve(l)
	}
}

// serve sends l's events in order until the lane is empty or must wait.
func (c *Client) serve(l *lane) {
	for {
		c.mu.Lock()
		// Drop jobs settled while queued (their batch was canceled).
		for !l.empty() && l.front().state.Load() == jobSettled {
			l.popFront()
		}
		if l.empty() || c.closed {
			l.state = laneIdle
			if l.key != "" && (c.pacer == nil || c.closed) {
				delete(c.lanes, l.key) // no pacing state worth keeping
			}
			c.mu.Unlock()
			return
		}
		j := l.front()
		c.mu.Unlock()
		if !j.state.CompareAndSwap(jobPending, jobRunning) {
			continue // settled by cancelPending meanwhile
		}
		wait, done := c.step(j, l)
		if !done {
			j.state.Store(jobPending)
			// cancelPending runs once, when the batch's context ends; if
			// that happened while we held the job, settle it here.
			if ctx := j.b.ctx; ctx.Err() != nil && j.state.CompareAndSwap(jobPending, jobSettled) {
				c.settle(j, Canceled, j.canceledErr(context.Cause(ctx)), nil)
				continue
			}
			if wait > 0 {
				c.arm(l, wait)
				return
			}
			continue // at once: a fallback to /v1/log, or a hold to wait out
		}
		c.mu.Lock()
		l.popFront()
		c.mu.Unlock()
	}
}

// arm requeues l after d, freeing its worker meanwhile.
func (c *Client) arm(l *lane, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		l.state = laneIdle
		return
	}
	if c.stopping.Load() {
		// Nothing will be sent: requeue at once, to be canceled.
		l.state = laneQueued
		c.ready.push(l)
		c.wake.Signal()
		return
	}
	l.state = laneWaiting
	c.armed[l] = struct{}{}
	l.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed || l.state != laneWaiting {
			return
		}
		delete(c.armed, l)
		l.timer = nil
		l.state = laneQueued
		c.ready.push(l)
		c.wake.Signal()
	})
}

// step makes one attempt at delivering j, after the gate and pacing. It
// returns done once j is settled; otherwise how long the lane must wait
// before the next attempt (0: try again at once).
func (c *Client) step(j *job, l *lane) (time.Duration, bool) {
	ctx := j.b.ctx
	if ctx.Err() != nil {
		c.finish(j, Canceled, j.canceledErr(context.Cause(ctx)), nil)
		return 0, true
	}
	if c.stopping.Load() {
		c.finish(j, Canceled, j.canceledErr(ErrStopped), nil)
		return 0, true
	}
	probe, err := c.gate.pass(ctx)
	if err != nil {
		cause := context.Cause(ctx)
		if errors.Is(err, ErrStopped) {
			cause = ErrStopped
		}
		c.finish(j, Canceled, j.canceledErr(cause), nil)
		return 0, true
	}
	paced := c.pacer != nil && l.key != ""
	if paced {
		if d := c.pacer.delay(&l.pace, c.now()); d > 0 {
			c.gate.leave(probe)
			c.m.paceWaits.Inc()
			c.m.paceWaited.Add(d.Seconds())
			return d, false
		}
		c.pacer.record(&l.pace, c.now())
	}
	if j.scoring && (j.ev.Score.Body == nil || time.Now().After(j.ev.Score.Until)) {
		c.fallBack(j, FallbackTokenAged)
	}
	ep, body := Log, j.ev.Body
	switch {
	case j.scoring:
		ep, body = j.ev.Score.Endpoint, j.ev.Score.Body
	case !j.ev.TokenUntil.IsZero() && time.Now().After(j.ev.TokenUntil):
		// Retries or a hold outlasted the request token: Castle could
		// refuse the event for it.
		c.dropToken(j)
		body = j.ev.Body
	}
	if j.deadline.IsZero() {
		j.deadline = time.Now().Add(c.cfg.Retry.MaxElapsed)
	}
	j.attempts++
	c.m.inFlight.Inc()
	start := c.now()
	c.lim.sent(start)
	refusals := c.refusals.Load()
	r := c.send.send(ctx, ep, body, ep != Log)
	c.m.inFlight.Dec()

	d := classify(ep, r.code, r.apiType, r.err, r.canceled, r.timedOut)
	d = c.unanswered(d, r.code)
	c.m.reqBy[d.class].Inc()
	c.m.latBy[d.class].Observe(r.latency.Seconds())
	c.noteReachability(d.class, r.code, r.err)
	if r.code != 0 {
		j.code = r.code
	}
	if paced && r.hints.exhaustedFor > 0 {
		// Castle says this user's budget is spent: hold the user until
		// the window resets, whatever our own count says.
		l.pace.notBefore = max(l.pace.notBefore, c.now()+min(r.hints.exhaustedFor, c.cfg.Retry.Max))
	}
	wide := d.class == class429 && c.accountWide429(l, r.hints)
	if c.lim.observe(start, r.latency, capacitySignal(d, wide), c.now()) {
		c.applyLimit()
	}
	switch d.act {
	case actDeliver:
		c.gate.ok(probe, true)
		c.noteTaken(refusals)
		c.finish(j, Delivered, nil, r.body)
		return 0, true
	case actCancel:
		c.gate.leave(probe)
		c.finish(j, Canceled, j.canceledErr(context.Cause(ctx)), nil)
		return 0, true
	case actReject:
		c.gate.ok(probe, false)
		if ep == Log && r.code == http.StatusUnprocessableEntity && r.apiType == "invalid_request_token" {
			// Castle refused the token (expired in flight, or not its
			// own): it is optional on /v1/log, so the event goes again
			// at once without it rather than to the dead letters.
			if c.dropToken(j) {
				return 0, false
			}
		}
		c.finish(j, Rejected, c.send.apiError(r, body), nil)
		return 0, true
	case actFallback:
		c.gate.ok(probe, false)
		c.fallBack(j, FallbackTokenRefused)
		return 0, false
	case actHold:
		c.lim.restart(c.now())
		j.lastErr = c.failure(r, body)
		j.deadline = time.Time{} // a hold does not spend the retry budget
		c.hold(probe, d, ep, r)
		return 0, false
	}
	// actRetry
	j.lastErr = c.failure(r, body)
	wait := c.backoff(j.attempts)
	if r.hints.has {
		wait = max(wait, r.hints.retryAfter)
	}
	now := time.Now()
	wait = min(wait, c.cfg.Retry.Max)
	if wide {
		c.gate.throttle(probe, wait)
	} else {
		c.gate.ok(probe, false)
	}
	if !now.Before(j.deadline) {
		c.finish(j, RetriesExhausted, fmt.Errorf("castle: gave up after %d attempts in %s: %w",
			j.attempts, c.cfg.Retry.MaxElapsed, j.lastErr), nil)
		return 0, true
	}
	wait = min(wait, j.deadline.Sub(now))
	c.m.retryBy[d.cause].Inc()
	c.log.Debug("castle request failed, will retry",
		zap.String("cause", d.cause.String()), zap.Int("code", r.code), zap.Int("attempt", j.attempts),
		zap.Duration("wait", wait), zap.Error(j.lastErr))
	return wait, false
}

// capacitySignal is what an attempt's decision d says about Castle's
// capacity; wide says whether a 429 was account-wide. A 429 for one
// user's own budget is for pacing, not for the concurrency limit, and
// systemic faults hold delivery instead.
func capacitySignal(d decision, wide bool) signal {
	switch d.act {
	case actDeliver, actReject, actFallback:
		return sigAnswer
	case actRetry:
		switch d.cause {
		case class429:
			if wide {
				return sigPushback
			}
		case class5xx, classTimeout, classConnError:
			return sigPushback
		}
	}
	return sigNone
}

// failure is the error an unsuccessful answer to the request body sent
// stands for.
func (c *Client) failure(r response, sent []byte) error {
	if r.err != nil {
		return r.err
	}
	return c.send.apiError(r, sent)
}

// dropToken sends j's /v1/log body without its request token from now
// on, counted; false when the body has none.
func (c *Client) dropToken(j *job) bool {
	j.ev.TokenUntil = time.Time{}
	b := rawjson.Without(j.ev.Body, requestTokenKey)
	if len(b) == len(j.ev.Body) {
		return false
	}
	j.ev.Body = b
	c.m.tokensExpired.Inc()
	return true
}

// fallBack sends j to /v1/log from now on.
func (c *Client) fallBack(j *job, reason string) {
	j.scoring, j.fallback = false, reason
	c.m.fallbacks.WithLabelValues(reason).Inc()
}

// holdMessage says what a systemic fault means and which setting to fix.
// It never contains the secret (the sender redacts transport errors).
func (c *Client) holdMessage(class string, ep Endpoint, r response) string {
	switch class {
	case hold.Auth:
		if r.code == http.StatusProxyAuthRequired || errors.Is(r.err, errProxyAuth) {
			return "the proxy in HTTPS_PROXY or HTTP_PROXY refused the worker's credentials (407 Proxy Authentication Required): put them in the proxy URL, http://user:password@host:port"
		}
		return fmt.Sprintf("CASTLE_API_SECRET was refused by Castle (%d %s on %s)", r.code, r.apiType, ep.Path())
	case hold.TLS:
		msg := fmt.Sprintf("TLS with CASTLE_API_URL %s failed: %v", c.send.base, r.err)
		var unknown x509.UnknownAuthorityError
		if errors.As(r.err, &unknown) {
			// Castle's certificate is publicly trusted: something between
			// re-signs it. Go reads SSL_CERT_DIR's directories besides the
			// system's bundle file.
			msg += ": a proxy or gateway that re-signs TLS is in the way: mount its CA certificate (PEM) in a directory and set SSL_CERT_DIR to it; the public roots stay trusted"
		}
		return msg
	default:
		if noSuchHost(r.err) {
			return fmt.Sprintf("CASTLE_API_URL %s names a host that does not exist (%v)", c.send.base, r.err)
		}
		if op := (*net.OpError)(nil); errors.As(r.err, &op) && op.Op == "proxyconnect" {
			return fmt.Sprintf("the proxy in HTTPS_PROXY (or HTTP_PROXY) has not answered since the start (%v): check its host and port, or NO_PROXY", r.err)
		}
		if r.code == 0 && r.err != nil {
			return fmt.Sprintf("CASTLE_API_URL %s has not answered since the start (%v): check its host and port, and the network path to it", c.send.base, r.err)
		}
		if r.code >= 300 && r.code < 400 {
			return fmt.Sprintf("CASTLE_API_URL %s is redirected (%d on %s): use the URL Castle serves", c.send.base, r.code, ep.Path())
		}
		return fmt.Sprintf("CASTLE_API_URL %s has no Castle API (%d %s on %s%s)", c.send.base, r.code, r.apiType, c.send.base, ep.Path())
	}
}

// accountWide429 reports whether a 429 for lane l throttles the whole
// account rather than this user: the event names no user, or Castle did
// not say the user's budget is spent while our own pacing counts the user
// well within Castle's limits, or several users got 429s within a second.
func (c *Client) accountWide429(l *lane, h hints) bool {
	if l.key == "" || c.pacer == nil || h.remaining > 0 {
		return true
	}
	if h.remaining < 0 && !c.pacer.nearLimit(&l.pace, c.now()) {
		return true
	}
	return c.recent429.add(l.key, c.now()) >= accountWideUsers
}

// accountWideUsers is how many distinct users answered 429 within
// recent429Window make a 429 account-wide.
const (
	accountWideUsers = 3
	recent429Window  = time.Second
)

// recent429 remembers the users of the last per-user 429s.
type recent429 struct {
	mu   sync.Mutex
	at   [accountWideUsers * 2]time.Duration
	user [accountWideUsers * 2]string
	next int
}

// add notes a 429 for user at now and returns how many distinct users got
// one within the window.
func (r *recent429) add(user string, now time.Duration) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[r.next], r.user[r.next] = now, user
	r.next = (r.next + 1) % len(r.at)
	seen := make(map[string]struct{}, len(r.at))
	for i := range r.at {
		if r.user[i] != "" && now-r.at[i] <= recent429Window {
			seen[r.user[i]] = struct{}{}
		}
	}
	return len(seen)
}

func (c *Client) finish(j *job, s Status, err error, verdict []byte) {
	j.state.Store(jobSettled)
	c.settle(j, s, err, verdict)
}

// backoff is the jittered wait before retry n (n >= 1).
func (c *Client) backoff(n int) time.Duration {
	p := c.cfg.Retry
	d := float64(p.Initial)
	for i := 1; i < n && d < float64(p.Max); i++ {
		d *= p.Multiplier
	}
	d = min(d, float64(p.Max))
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// noteReachability tracks consecutive attempts that failed at the
// transport level or with 5xx (or another unexpected status); code and err
// are the attempt's, for the log line that says Castle looks unreachable.
func (c *Client) noteReachability(cl class, code int, err error) {
	switch cl {
	case classCanceled:
		return
	case classTimeout, classConnError, class5xx, classOther:
		n := c.consecFail.Add(1)
		c.lastFail.Store(int32(cl))
		if n >= int64(c.cfg.UnreachableAfter) && c.unreachable.CompareAndSwap(false, true) {
			fields := []zap.Field{zap.Int64("consecutive_failures", n), zap.String("last", cl.String()), zap.String("url", c.send.base)}
			if err != nil {
				fields = append(fields, zap.Error(err)) // redacted by the sender
			} else {
				fields = append(fields, zap.Int("status", code))
			}
			c.log.Warn("castle api looks unreachable", fields...)
		}
	default:
		if c.consecFail.Load() != 0 {
			c.consecFail.Store(0)
		}
		if c.unreachable.Load() && c.unreachable.CompareAndSwap(true, false) {
			c.log.Info("castle api reachable again")
		}
	}
}

// Reachable reports whether Castle looks reachable: nil unless the last
// UnreachableAfter (or more) attempts all failed at the transport level or
// with 5xx. It is passive: it makes no requests.
func (c *Client) Reachable() error {
	if c.checking.Load() {
		return errors.New("castle api not checked yet: no answer to the start-up check")
	}
	n := c.consecFail.Load()
	if n < int64(c.cfg.UnreachableAfter) {
		return nil
	}
	return fmt.Errorf("castle api unreachable: the last %d attempts failed (last: %s)", n, class(c.lastFail.Load()))
}

// Waiting is the number of users whose next event waits on a timer: for
// their per-user pacing (Castle takes 6 requests per second and 10 per 5
// seconds of one user) or for a retry's backoff. A replay shows it, so
// that a pause while a heavy user is paced does not look like a hang.
func (c *Client) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.armed)
}

// unanswered makes a refused or timed-out connection hold, as a wrong
// CASTLE_API_URL, while Castle has answered nothing since the start: a
// port nothing listens on, or a host that drops the packets, would
// otherwise spend every event's retry budget and dead-letter the topic.
// Once Castle has answered, such failures are an outage: retried, then
// retries_exhausted.
func (c *Client) unanswered(d decision, code int) decision {
	if code != 0 {
		if !c.answered.Load() {
			c.answered.Store(true)
		}
		return d
	}
	if d.act == actRetry && (d.cause == classConnError || d.cause == classTimeout) && !c.answered.Load() {
		d.act, d.hold = actHold, hold.Route
	}
	return d
}

// checkBody is what Check sends to /v1/log: an event without a type, which
// Castle refuses (422) once it has taken the secret, and does not record.
var checkBody = []byte(`{}`)

// Check asks Castle, before any event, whether it takes the API secret and
// CASTLE_API_URL: one POST of an empty object to /v1/log, which records
// nothing. A refused secret (401, 403, a proxy's 407), a route Castle does
// not serve (404, a redirect, a host that does not exist) or a TLS failure
// holds delivery as an event's would, so /readyz says what to fix before
// any traffic arrives and a rollout with a wrong secret stops at its first
// pod; Check then asks again as the hold's probe, at its backoff, until
// Castle answers otherwise, which clears the hold. Refused connections and timeouts
// hold too while nothing has answered since the start (unanswered). Until
// Castle answers at all, Reachable reports the check as pending; 5xx are
// retried at the retry backoff. Check returns once Castle answered
// with anything but a systemic fault (nil), or with ctx's error.
//
// That Castle checks the secret before the body is inferred (its docs say
// nothing of the order; the Castle-compatible server does so). Were it the
// other way round, a wrong secret would pass the check and be found by the
// first event, as without it.
func (c *Client) Check(ctx context.Context) error {
	c.checking.Store(true)
	defer c.checking.Store(false)
	for attempt := 1; ; attempt++ {
		// Through the gate, as an event: while held, the check waits for
		// the probe time like the events do, and its answer is the probe.
		probe, err := c.gate.pass(ctx)
		if err != nil {
			return err
		}
		r := c.send.send(ctx, Log, checkBody, false)
		d := c.unanswered(classify(Log, r.code, r.apiType, r.err, r.canceled, r.timedOut), r.code)
		switch d.act {
		case actCancel:
			c.gate.leave(probe)
			return ctx.Err()
		case actHold:
			c.checking.Store(false) // answered: the hold says what is wrong
			c.hold(probe, d, Log, r)
			continue
		case actRetry:
			c.gate.ok(probe, false)
		default: // Castle took the secret and the route (and refused the empty event)
			c.gate.ok(probe, false)
			return nil
		}
		t := time.NewTimer(min(c.backoff(attempt), c.cfg.Retry.Max))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// SecretState is what Castle's answers last said of the API secret.
type SecretState int32

const (
	SecretUnknown SecretState = iota // no event accepted, no 401 or 403 yet
	SecretTaken                      // an event accepted since any 401 or 403
	SecretRefused                    // a 401 or 403 since any event accepted
)

// Secret returns what Castle's answers last said of the API secret, and a
// channel closed when that changes. A userJwt whose signature fails under
// the secret is forged only while Castle takes the secret.
func (c *Client) Secret() (SecretState, <-chan struct{}) {
	c.secretMu.Lock()
	defer c.secretMu.Unlock()
	return SecretState(c.secret.Load()), c.secretCh
}

// noteTaken records an event accepted in answer to a request sent when
// c.refusals was refusals.
func (c *Client) noteTaken(refusals int64) {
	if SecretState(c.secret.Load()) == SecretTaken {
		return // every delivered event passes here: no lock while nothing changes
	}
	c.secretMu.Lock()
	defer c.secretMu.Unlock()
	if c.refusals.Load() == refusals {
		c.setSecretLocked(SecretTaken)
	}
}

// noteRefused records an answer refusing the secret.
func (c *Client) noteRefused() {
	c.secretMu.Lock()
	defer c.secretMu.Unlock()
	c.refusals.Add(1)
	c.setSecretLocked(SecretRefused)
}

func (c *Client) setSecretLocked(s SecretState) {
	if SecretState(c.secret.Load()) != s {
		c.secret.Store(int32(s))
		close(c.secretCh)
		c.secretCh = make(chan struct{})
	}
}

// hold holds delivery for answer r to a request to ep (d.act is actHold),
// noting first when it is Castle refusing the API secret (401 or 403, not
// a proxy's 407).
func (c *Client) hold(probe bool, d decision, ep Endpoint, r response) {
	if r.code == http.StatusUnauthorized || r.code == http.StatusForbidden {
		c.noteRefused()
	}
	c.gate.hold(probe, d.hold, c.holdMessage(d.hold, ep, r))
}

// PauseSending stops every new request to Castle until ResumeSending:
// a fault outside Castle that holds delivery (a dead-letter or verdict
// topic that cannot be written) stops the sends as a refused secret does.
// Requests in flight finish; events wait in their lanes, paced and retried
// as before once sending resumes. Calls nest: each PauseSending needs its
// ResumeSending.
func (c *Client) PauseSending() { c.gate.pause() }

// ResumeSending ends a PauseSending.
func (c *Client) ResumeSending() { c.gate.resume() }

// StopSending makes the client start no more requests. Every event not
// yet on the wire, whether queued, waiting for its user's pacing, for a
// retry or behind a hold or an account-wide 429, is settled Canceled
// (cause ErrStopped) at once, and so is every event submitted later; the
// requests in flight finish, and their events settle as usual. It does
// not wait.
//
// It is for a stop where what was not sent is sent again later without a
// cost: an interrupted replay, whose checkpoint records each event. A
// worker's offsets commit in order, so an event canceled ahead of
// delivered ones would have those read and sent again: the worker drains
// instead.
func (c *Client) StopSending() {
	if c.stopping.Swap(true) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.gate.stop()
	// Wake the lanes waiting on a timer, for pacing or a retry: their
	// next step cancels their events. A timer that already fired finds
	// its lane no longer waiting and does nothing.
	for l := range c.armed {
		l.timer.Stop()
		l.timer = nil
		l.state = laneQueued
		c.ready.push(l)
	}
	clear(c.armed)
	c.wake.Broadcast()
}

// Close settles every unsettled event as Canceled (cause ErrClosed), stops
// the workers and timers, waits until every batch is settled, and closes
// idle connections. Later Submits settle their events Canceled at once.
// Close is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	for l := range c.armed {
		l.timer.Stop()
		l.state = laneIdle
	}
	clear(c.armed)
	c.wake.Broadcast()
	c.mu.Unlock()
	c.closeFn(ErrClosed)
	c.workers.Wait()
	c.batches.Wait()
	if c.send.h1 != nil {
		c.send.h1.closeIdle()
	} else if t, ok := c.send.rt.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// viaProxy reports whether the environment (HTTPS_PROXY, HTTP_PROXY,
// NO_PROXY) sends requests to rawURL through a proxy, which the Client's
// own connections do not speak: net/http's Transport is used then.
func viaProxy(rawURL string) bool { return viaProxyFunc(rawURL, http.ProxyFromEnvironment) }

func viaProxyFunc(rawURL string, proxy func(*http.Request) (*url.URL, error)) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	p, err := proxy(&http.Request{URL: u})
	return err != nil || p != nil
}
