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
type Client struct {
	cfg      Config
	log      *zap.Logger
	m        *metrics
	http     *http.Client
	endpoint string
	redactor *redactor
	pacer    *pacer // nil when per-user pacing is off
	epoch    time.Time
	sem      chan struct{}

	// Header values shared, read-only, by every request.
	hdrAuth, hdrJSON, hdrUA []string

	closeCtx context.Context
	closeFn  context.CancelCauseFunc
	wg       sync.WaitGroup

	mu        sync.Mutex
	lanes     map[string]*lane
	lastSweep time.Duration
	closed    bool

	consecFail  atomic.Int64
	lastFail    atomic.Pointer[string]
	unreachable atomic.Bool
}

// lane is the FIFO of one user's events. At most one goroutine drains a
// lane at a time, which is what keeps a user's events in order.
type lane struct {
	key     string
	queue   []*job // guarded by Client.mu
	head    int
	running bool // guarded by Client.mu: a goroutine is draining the lane
	pace    userPace
}

func (l *lane) pop() *job {
	if l.head == len(l.queue) {
		return nil
	}
	j := l.queue[l.head]
	l.queue[l.head] = nil
	l.head++
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
	}
	return j
}

// Job states.
const (
	jobPending uint32 = iota
	jobRunning
	jobSettled
)

type job struct {
	p     *Pending
	idx   int
	ev    Event
	state atomic.Uint32
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
	stops     [2]func() bool
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
		sem:      make(chan struct{}, cfg.Concurrency),
		hdrAuth:  []string{"Basic " + basic},
		hdrJSON:  []string{"application/json"},
		hdrUA:    []string{cfg.UserAgent},
		lanes:    make(map[string]*lane),
	}
	c.closeCtx, c.closeFn = context.WithCancelCause(context.Background())
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
	n := len(events)
	p := &Pending{c: c, results: make([]Result, n), done: make(chan struct{})}
	if n == 0 {
		close(p.done)
		return p
	}
	p.jobs = make([]job, n)
	for i := range events {
		p.jobs[i] = job{p: p, idx: i, ev: events[i]}
	}
	p.remaining.Store(int64(n))
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	p.stops[0] = context.AfterFunc(c.closeCtx, func() { p.cancel(ErrClosed) })
	p.stops[1] = context.AfterFunc(p.ctx, p.cancelPending)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		p.cancel(ErrClosed) // settles everything through cancelPending
		return p
	}
	c.maybeSweep()
	for i := range p.jobs {
		j := &p.jobs[i]
		if j.ev.UserID == "" {
			c.wg.Add(1)
			go c.runSingle(j)
			continue
		}
		l := c.lanes[j.ev.UserID]
		if l == nil {
			l = &lane{key: j.ev.UserID}
			c.lanes[j.ev.UserID] = l
		}
		l.queue = append(l.queue, j)
		if !l.running {
			l.running = true
			c.wg.Add(1)
			go c.runLane(l)
		}
	}
	c.mu.Unlock()
	return p
}

// cancelPending settles as Canceled every job no goroutine has started.
func (p *Pending) cancelPending() {
	cause := context.Cause(p.ctx)
	for i := range p.jobs {
		j := &p.jobs[i]
		if j.state.CompareAndSwap(jobPending, jobSettled) {
			p.c.settle(j, Result{Status: Canceled, Err: fmt.Errorf("castle: event not sent: %w", cause)})
		}
	}
}

// settle records r for j; the last settled job completes the batch.
func (c *Client) settle(j *job, r Result) {
	p := j.p
	p.results[j.idx] = r
	c.m.events.WithLabelValues(c.m.typeLabel(j.ev.Type), r.Status.String()).Inc()
	if p.remaining.Add(-1) == 0 {
		p.stops[0]()
		p.stops[1]()
		p.cancel(context.Canceled)
		close(p.done)
	}
}

// maybeSweep forgets the pacing state of idle users, at most once per
// longest window. Called with c.mu held.
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
		if !l.running && l.head == len(l.queue) && c.pacer.idle(&l.pace, now) {
			delete(c.lanes, k)
		}
	}
}

func (c *Client) runSingle(j *job) {
	defer c.wg.Done()
	c.process(j, nil)
}

func (c *Client) runLane(l *lane) {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		j := l.pop()
		if j == nil {
			l.running = false
			if c.pacer == nil {
				delete(c.lanes, l.key) // no state worth keeping
			}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.process(j, l)
	}
}

// process delivers one event: pacing, bounded concurrency, retries.
func (c *Client) process(j *job, l *lane) {
	if !j.state.CompareAndSwap(jobPending, jobRunning) {
		return // canceled before it started
	}
	ctx := j.p.ctx
	var (
		res      Result
		deadline time.Time
		lastErr  error
	)
	finish := func(s Status, err error) {
		res.Status, res.Err = s, err
		j.state.Store(jobSettled)
		c.settle(j, res)
	}
	canceled := func() {
		err := fmt.Errorf("castle: delivery canceled after %d attempts: %w", res.Attempts, context.Cause(ctx))
		if lastErr != nil {
			err = fmt.Errorf("castle: delivery canceled after %d attempts (last error: %w): %w", res.Attempts, lastErr, context.Cause(ctx))
		}
		finish(Canceled, err)
	}
	for {
		if l != nil && c.pacer != nil {
			if d := c.pacer.delay(&l.pace, c.now()); d > 0 {
				c.m.paceWaits.Inc()
				c.m.paceWaited.Add(d.Seconds())
				if !sleep(ctx, d) {
					canceled()
					return
				}
			}
		}
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			canceled()
			return
		}
		if l != nil && c.pacer != nil {
			c.pacer.record(&l.pace, c.now())
		}
		if res.Attempts == 0 {
			deadline = time.Now().Add(c.cfg.Retry.MaxElapsed)
		}
		res.Attempts++
		c.m.inFlight.Inc()
		o := c.attempt(ctx, j.ev.Body)
		c.m.inFlight.Dec()
		<-c.sem

		c.m.requests.WithLabelValues(o.class).Inc()
		c.m.latency.WithLabelValues(o.class).Observe(o.latency.Seconds())
		c.noteReachability(o)
		if o.code != 0 {
			res.Code = o.code
		}
		if l != nil && c.pacer != nil && o.exhaustedFor > 0 {
			// Castle says this user's budget is spent: hold the user
			// until the window resets, whatever our own count says.
			l.pace.notBefore = max(l.pace.notBefore, c.now()+min(o.exhaustedFor, c.cfg.Retry.Max))
		}
		switch {
		case o.class == class2xx:
			finish(Delivered, nil)
			return
		case o.class == classCanceled:
			canceled()
			return
		case o.cause == "":
			finish(Rejected, o.err)
			return
		}
		lastErr = o.err

		now := time.Now()
		if !now.Before(deadline) {
			finish(RetriesExhausted, fmt.Errorf("castle: gave up after %d attempts in %s: %w",
				res.Attempts, c.cfg.Retry.MaxElapsed, o.err))
			return
		}
		wait := c.backoff(res.Attempts)
		if o.hasRetryAfter {
			wait = max(wait, o.retryAfter)
		}
		wait = min(wait, c.cfg.Retry.Max, deadline.Sub(now))
		c.m.retries.WithLabelValues(o.cause).Inc()
		c.log.Debug("castle request failed, will retry",
			zap.String("cause", o.cause), zap.Int("code", o.code), zap.Int("attempt", res.Attempts),
			zap.Duration("wait", wait), zap.Error(o.err))
		if !sleep(ctx, wait) {
			canceled()
			return
		}
	}
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

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// noteReachability tracks consecutive attempts that failed at the
// transport level or with 5xx (or another unexpected status).
func (c *Client) noteReachability(o outcome) {
	switch o.class {
	case classCanceled:
		return
	case classTimeout, classConnError, class5xx, classOther:
		n := c.consecFail.Add(1)
		cls := o.class
		c.lastFail.Store(&cls)
		if n >= int64(c.cfg.UnreachableAfter) && c.unreachable.CompareAndSwap(false, true) {
			c.log.Warn("castle api looks unreachable", zap.Int64("consecutive_failures", n), zap.String("last", cls))
		}
	default:
		c.consecFail.Store(0)
		if c.unreachable.CompareAndSwap(true, false) {
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
	last := "unknown"
	if p := c.lastFail.Load(); p != nil {
		last = *p
	}
	return fmt.Errorf("castle api unreachable: the last %d attempts failed (last: %s)", n, last)
}

// Close settles every unsettled event as Canceled (cause ErrClosed), waits
// for the client's goroutines to end, and closes idle connections. Later
// Submits settle their events Canceled at once. Close is idempotent.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	c.closeFn(ErrClosed)
	c.wg.Wait()
	c.http.CloseIdleConnections()
}
