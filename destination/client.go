package destination

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ErrClosed is the cause of events settled Canceled because the client was
// closed.
var ErrClosed = errors.New("castle client closed")

// Client delivers events to Castle's POST /v1/log. It is safe for
// concurrent use. Build it with New and stop it with Close.
//
// How it works: every user's events wait in that user's lane, a FIFO; an
// event without a user gets a lane of its own. Concurrency workers take
// ready lanes from one queue and send each lane's head event; a lane is
// served by at most one worker at a time, which keeps a user's events in
// order. A lane that must wait (per-user pacing, or a retry backoff) arms a
// timer and frees its worker, so a held-back user holds back no one else.
type Client struct {
	cfg      Config
	log      *zap.Logger
	m        *metrics
	http     *http.Client
	endpoint string
	redactor *redactor
	pacer    *pacer // nil when per-user pacing is off
	epoch    time.Time

	// Header values shared, read-only, by every request.
	hdrAuth, hdrJSON, hdrUA []string

	closeCtx context.Context
	closeFn  context.CancelCauseFunc
	workers  sync.WaitGroup
	batches  sync.WaitGroup // Pendings not yet settled

	mu        sync.Mutex
	ready     laneQueue // lanes waiting for a worker
	wake      *sync.Cond
	lanes     map[string]*lane // user lanes
	armed     map[*lane]struct{}
	lastSweep time.Duration
	closed    bool

	consecFail  atomic.Int64
	lastFail    atomic.Int32 // a class
	unreachable atomic.Bool
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
}

func (l *lane) empty() bool { return l.head == len(l.queue) }

func (l *lane) front() *job { return l.queue[l.head] }

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
	p     *Pending
	idx   int
	ev    Event
	state atomic.Uint32
	// Delivery progress, written by the worker before the job returns to
	// jobPending, so that cancelPending reads them consistently.
	attempts int
	code     int
	lastErr  error
	deadline time.Time
}

// Pending is a submitted batch whose events are being delivered.
type Pending struct {
	c         *Client
	results   []Result
	jobs      []job
	remaining atomic.Int64
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelCauseFunc
	notify    func(i int, r Result)
	// stops unregister the batch's context.AfterFuncs. The functions
	// registered can run, and settle the whole batch, before Submit has
	// stored the stops: stopMu makes the last settle wait for them.
	stopMu sync.Mutex
	stops  [2]func() bool
}

// Done is closed once every event of the batch is settled.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait blocks until every event is settled and returns one Result per
// event, in the order submitted. Cancellation of the Submit context settles
// the remaining events as Canceled promptly.
func (p *Pending) Wait() []Result {
	<-p.done
	return p.results
}

// New builds a Client. logger may be nil (no logs); reg may be nil (metrics
// are kept but not exported); client may be nil, in which case a client
// with a tuned transport (NewTransport) is used. A given client is copied
// and set not to follow redirects: a redirect from Castle is a
// misconfiguration, retried like a 5xx, and never turned into a GET.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer, client *http.Client) (*Client, error) {
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
	if client == nil {
		client = &http.Client{Transport: NewTransport(cfg.Concurrency)}
	} else {
		cp := *client
		client = &cp
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	basic := base64.StdEncoding.EncodeToString([]byte(":" + cfg.Secret))
	c := &Client{
		cfg:      cfg,
		log:      logger,
		m:        m,
		http:     client,
		endpoint: strings.TrimRight(cfg.URL, "/") + "/v1/log",
		redactor: newRedactor(cfg.Secret, basic),
		pacer:    newPacer(cfg.UserRate),
		epoch:    time.Now(),
		hdrAuth:  []string{"Basic " + basic},
		hdrJSON:  []string{"application/json"},
		hdrUA:    []string{cfg.UserAgent},
		lanes:    make(map[string]*lane),
		armed:    make(map[*lane]struct{}),
	}
	c.wake = sync.NewCond(&c.mu)
	c.closeCtx, c.closeFn = context.WithCancelCause(context.Background())
	c.workers.Add(cfg.Concurrency)
	for range cfg.Concurrency {
		go c.worker()
	}
	return c, nil
}

// NewTransport returns an http.Transport tuned for many small POSTs to one
// host: up to concurrency kept-alive connections, TLS 1.2 or later, HTTP/2
// when the server offers it.
func NewTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// now is the monotonic time since the client started.
func (c *Client) now() time.Duration { return time.Since(c.epoch) }

// Deliver sends every event and returns when each is settled, one Result
// per event, in the same order. It is Submit followed by Wait.
//
// Events with the same UserID are sent in the order submitted, also across
// concurrent calls; different users proceed concurrently, and a user held
// back by pacing or a retry does not hold back others. Concurrent Deliver
// calls are ordered by when they enqueue, which is on entry; a caller that
// needs batch A's events before batch B's must Submit A before B (Deliver
// from separate goroutines gives no such order).
func (c *Client) Deliver(ctx context.Context, events []Event) []Result {
	return c.Submit(ctx, events).Wait()
}

// Submit enqueues events for delivery and returns at once. Every event
// with a UserID is queued behind that user's earlier events, from this or
// any earlier Submit. When ctx ends, events not yet settled are settled
// Canceled promptly (a request in flight is aborted).
func (c *Client) Submit(ctx context.Context, events []Event) *Pending {
	return c.SubmitNotify(ctx, events, nil)
}

// SubmitNotify is Submit, and also calls settled with each event's index
// and result as soon as that event is settled, from the goroutine that
// settled it: settled must be quick and must not block. A caller can thus
// act on early events without waiting for the whole batch.
func (c *Client) SubmitNotify(ctx context.Context, events []Event, settled func(i int, r Result)) *Pending {
	n := len(events)
	p := &Pending{c: c, results: make([]Result, n), done: make(chan struct{}), notify: settled}
	if n == 0 {
		close(p.done)
		return p
	}
	p.jobs = make([]job, n)
	for i := range events {
		p.jobs[i].p, p.jobs[i].idx, p.jobs[i].ev = p, i, events[i]
	}
	p.remaining.Store(int64(n))
	p.ctx, p.cancel = context.WithCancelCause(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches.Add(1)
	p.stopMu.Lock()
	p.stops[0] = context.AfterFunc(c.closeCtx, func() { p.cancel(ErrClosed) })
	p.stops[1] = context.AfterFunc(p.ctx, p.cancelPending)
	p.stopMu.Unlock()
	if c.closed {
		p.cancel(ErrClosed) // settles everything through cancelPending
		return p
	}
	c.maybeSweep()
	woken := 0
	for i := range p.jobs {
		j := &p.jobs[i]
		var l *lane
		if j.ev.UserID == "" {
			l = &lane{}
		} else if l = c.lanes[j.ev.UserID]; l == nil {
			l = &lane{key: j.ev.UserID}
			c.lanes[j.ev.UserID] = l
		}
		l.queue = append(l.queue, j)
		if l.state == laneIdle {
			l.state = laneQueued
			c.ready.push(l)
			woken++
		}
	}
	if woken >= c.cfg.Concurrency {
		c.wake.Broadcast()
	} else {
		for range woken {
			c.wake.Signal()
		}
	}
	return p
}

// cancelPending settles as Canceled every job no worker holds.
func (p *Pending) cancelPending() {
	cause := context.Cause(p.ctx)
	for i := range p.jobs {
		j := &p.jobs[i]
		if j.state.CompareAndSwap(jobPending, jobSettled) {
			p.c.settle(j, Canceled, j.canceledErr(cause))
		}
	}
}

func (j *job) canceledErr(cause error) error {
	if j.lastErr != nil {
		return fmt.Errorf("castle: delivery canceled after %d attempts (last error: %w): %w", j.attempts, j.lastErr, cause)
	}
	return fmt.Errorf("castle: delivery canceled after %d attempts: %w", j.attempts, cause)
}

// settle records j's result; the last settled job completes the batch.
func (c *Client) settle(j *job, s Status, err error) {
	p := j.p
	p.results[j.idx] = Result{Status: s, Attempts: j.attempts, Code: j.code, Err: err}
	c.m.eventCounter(j.ev.Type, s).Inc()
	if p.notify != nil {
		p.notify(j.idx, p.results[j.idx])
	}
	if p.remaining.Add(-1) == 0 {
		p.stopMu.Lock()
		p.stops[0]()
		p.stops[1]()
		p.stopMu.Unlock()
		p.cancel(context.Canceled)
		close(p.done)
		c.batches.Done()
	}
}

// maybeSweep forgets idle users whose pacing state no longer matters, at
// most once per longest window. Called with c.mu held.
func (c *Client) maybeSweep() {
	if c.pacer == nil {
		return
	}
	now := c.now()
	if now-c.lastSweep < c.pacer.maxPer {
		return
	}
	c.lastSweep = now
	for k, l := range c.lanes {
		if l.state == laneIdle && c.pacer.idle(&l.pace, now) {
			delete(c.lanes, k)
		}
	}
}

// worker serves ready lanes until the client is closed.
func (c *Client) worker() {
	defer c.workers.Done()
	for {
		c.mu.Lock()
		var l *lane
		for !c.closed {
			if l = c.ready.pop(); l != nil {
				break
			}
			c.wake.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
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
			if ctx := j.p.ctx; ctx.Err() != nil && j.state.CompareAndSwap(jobPending, jobSettled) {
				c.settle(j, Canceled, j.canceledErr(context.Cause(ctx)))
				continue
			}
			c.arm(l, wait)
			return
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

// step makes one attempt at delivering j, after pacing. It returns done
// once j is settled; otherwise how long the lane must wait first.
func (c *Client) step(j *job, l *lane) (time.Duration, bool) {
	ctx := j.p.ctx
	if ctx.Err() != nil {
		c.finish(j, Canceled, j.canceledErr(context.Cause(ctx)))
		return 0, true
	}
	paced := c.pacer != nil && l.key != ""
	if paced {
		if d := c.pacer.delay(&l.pace, c.now()); d > 0 {
			c.m.paceWaits.Inc()
			c.m.paceWaited.Add(d.Seconds())
			return d, false
		}
		c.pacer.record(&l.pace, c.now())
	}
	if j.attempts == 0 {
		j.deadline = time.Now().Add(c.cfg.Retry.MaxElapsed)
	}
	j.attempts++
	c.m.inFlight.Inc()
	o := c.attempt(ctx, j.ev.Body)
	c.m.inFlight.Dec()

	c.m.reqBy[o.class].Inc()
	c.m.latBy[o.class].Observe(o.latency.Seconds())
	c.noteReachability(o)
	if o.code != 0 {
		j.code = o.code
	}
	if paced && o.exhaustedFor > 0 {
		// Castle says this user's budget is spent: hold the user until
		// the window resets, whatever our own count says.
		l.pace.notBefore = max(l.pace.notBefore, c.now()+min(o.exhaustedFor, c.cfg.Retry.Max))
	}
	switch {
	case o.class == class2xx:
		c.finish(j, Delivered, nil)
		return 0, true
	case o.class == classCanceled:
		c.finish(j, Canceled, j.canceledErr(context.Cause(ctx)))
		return 0, true
	case o.cause == classNone:
		c.finish(j, Rejected, o.err)
		return 0, true
	}
	j.lastErr = o.err
	now := time.Now()
	if !now.Before(j.deadline) {
		c.finish(j, RetriesExhausted, fmt.Errorf("castle: gave up after %d attempts in %s: %w",
			j.attempts, c.cfg.Retry.MaxElapsed, o.err))
		return 0, true
	}
	wait := c.backoff(j.attempts)
	if o.hasRetryAfter {
		wait = max(wait, o.retryAfter)
	}
	wait = min(wait, c.cfg.Retry.Max, j.deadline.Sub(now))
	c.m.retryBy[o.cause].Inc()
	c.log.Debug("castle request failed, will retry",
		zap.String("cause", o.cause.String()), zap.Int("code", o.code), zap.Int("attempt", j.attempts),
		zap.Duration("wait", wait), zap.Error(o.err))
	return wait, false
}

func (c *Client) finish(j *job, s Status, err error) {
	j.state.Store(jobSettled)
	c.settle(j, s, err)
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
// transport level or with 5xx (or another unexpected status).
func (c *Client) noteReachability(o outcome) {
	switch o.class {
	case classCanceled:
		return
	case classTimeout, classConnError, class5xx, classOther:
		n := c.consecFail.Add(1)
		c.lastFail.Store(int32(o.class))
		if n >= int64(c.cfg.UnreachableAfter) && c.unreachable.CompareAndSwap(false, true) {
			c.log.Warn("castle api looks unreachable", zap.Int64("consecutive_failures", n), zap.String("last", o.class.String()))
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
	n := c.consecFail.Load()
	if n < int64(c.cfg.UnreachableAfter) {
		return nil
	}
	return fmt.Errorf("castle api unreachable: the last %d attempts failed (last: %s)", n, class(c.lastFail.Load()))
}

// Close settles every unsettled event as Canceled (cause ErrClosed), stops
// the workers and timers, waits until every Pending is done, and closes
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
	c.http.CloseIdleConnections()
}
