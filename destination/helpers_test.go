package destination_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/promtest"
)

// testSecret is long and distinctive, so a leak cannot hide.
const testSecret = "sk_test_Zq8VUxF1d7rK2mNoP4sT"

// fastRetry retries quickly and without jitter, for tests on real time.
var fastRetry = destination.RetryPolicy{
	Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2, MaxElapsed: 10 * time.Second,
}

// env is a client wired to a server.
type env struct {
	srv  *castleserver.Server
	url  string
	c    *destination.Client
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
	stop func()
}

func newClient(t testing.TB, cfg destination.Config, hc *http.Client) (*destination.Client, *prometheus.Registry, *observer.ObservedLogs) {
	t.Helper()
	return newClientOver(t, cfg, hc, nil)
}

// newClientOver is newClient; with dial, the client's own transport dials
// with it.
func newClientOver(t testing.TB, cfg destination.Config, hc *http.Client, dial func(context.Context, string, string) (net.Conn, error)) (*destination.Client, *prometheus.Registry, *observer.ObservedLogs) {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	core, logs := observer.New(zap.DebugLevel)
	reg := prometheus.NewRegistry()
	var c *destination.Client
	var err error
	if dial != nil {
		c, err = destination.NewOverDial(cfg, zap.New(core), reg, dial)
	} else {
		c, err = destination.New(cfg, zap.New(core), reg, hc)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, reg, logs
}

func newServer(t testing.TB, scfg castleserver.Config) *castleserver.Server {
	t.Helper()
	if scfg.Secret == "" {
		scfg.Secret = testSecret
	}
	s, err := castleserver.New(scfg)
	if err != nil {
		t.Fatalf("castleserver.New: %v", err)
	}
	return s
}

// startLoopback serves s on a real loopback socket. Cleanup is registered.
func startLoopback(t testing.TB, scfg castleserver.Config, cfg destination.Config) *env {
	t.Helper()
	s := newServer(t, scfg)
	ts := httptest.NewServer(s)
	cfg.URL = ts.URL
	c, reg, logs := newClient(t, cfg, nil)
	e := &env{srv: s, url: ts.URL, c: c, reg: reg, logs: logs}
	e.stop = func() {
		e.c.Close()
		s.Close()
		ts.Close()
	}
	t.Cleanup(e.stop)
	return e
}

// startMem serves h through an in-memory listener, for synctest bubbles,
// to a client on its own transport, as in production. The caller must
// defer e.stop() inside the bubble.
func startMem(t *testing.T, h http.Handler, cfg destination.Config) *env {
	t.Helper()
	return startMemOver(t, h, cfg, false)
}

// startMemOver is startMem; netHTTP puts net/http's Transport (what a
// proxy setting or a given http.Client brings) under the client.
func startMemOver(t *testing.T, h http.Handler, cfg destination.Config, netHTTP bool) *env {
	t.Helper()
	l := castleserver.NewMemListener()
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(l) }()
	tr := &http.Transport{DialContext: l.DialContext, MaxIdleConnsPerHost: 64}
	cfg.URL = "http://castle.test"
	var (
		c    *destination.Client
		reg  *prometheus.Registry
		logs *observer.ObservedLogs
	)
	if netHTTP {
		c, reg, logs = newClient(t, cfg, &http.Client{Transport: tr})
	} else {
		c, reg, logs = newClientOver(t, cfg, nil, l.DialContext)
	}
	e := &env{c: c, reg: reg, logs: logs}
	if s, ok := h.(*castleserver.Server); ok {
		e.srv = s
	}
	e.stop = func() {
		c.Close()
		if e.srv != nil {
			e.srv.Close()
		}
		_ = hs.Close()
		tr.CloseIdleConnections()
	}
	return e
}

func startMemServer(t *testing.T, scfg castleserver.Config, cfg destination.Config) *env {
	return startMem(t, newServer(t, scfg), cfg)
}

// body returns a valid /v1/log body for user with a sequence property.
func body(user string, seq int) []byte {
	if user == "" {
		return fmt.Appendf(nil, `{"type":"$custom","name":"Clicked","properties":{"seq":%d}}`, seq)
	}
	return fmt.Appendf(nil, `{"type":"$custom","name":"Clicked","user":{"id":%q},"properties":{"seq":%d}}`, user, seq)
}

func event(user string, seq int) destination.Event {
	return destination.Event{Body: body(user, seq), UserID: user, Type: "track"}
}

// counter is promtest.Value.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	return promtest.Value(t, reg, name, labels...)
}

// gatherText renders every metric, for leak checks.
func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	var b strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		b.WriteString(mf.String())
	}
	return b.String()
}

// sumCounter adds up every series of a counter.
func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// pending collects the results of one Submit.
type pending struct {
	mu   sync.Mutex
	res  []destination.Result
	left atomic.Int64
	done chan struct{}
}

// submit submits events and returns a pending whose Wait returns their
// results, in order, once all are settled.
func submit(c *destination.Client, ctx context.Context, events []destination.Event) *pending {
	p := &pending{res: make([]destination.Result, len(events)), done: make(chan struct{})}
	p.left.Store(int64(len(events)))
	if len(events) == 0 {
		close(p.done)
		return p
	}
	c.Submit(ctx, events, func(i int, r destination.Result) {
		p.mu.Lock()
		p.res[i] = r
		p.mu.Unlock()
		if p.left.Add(-1) == 0 {
			close(p.done)
		}
	})
	return p
}

func (p *pending) Wait() []destination.Result {
	<-p.done
	return p.snapshot()
}

// snapshot returns the results so far (zero Status: not settled yet).
func (p *pending) snapshot() []destination.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]destination.Result(nil), p.res...)
}

// deliver submits events and waits for their results.
func deliver(c *destination.Client, ctx context.Context, events []destination.Event) []destination.Result {
	return submit(c, ctx, events).Wait()
}

// Done is closed once every event is settled.
func (p *pending) Done() <-chan struct{} { return p.done }
