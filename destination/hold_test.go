package destination_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
)

// holdEnv is a client on the in-memory network with a hold.Board, as the
// worker wires it.
type holdEnv struct {
	*env
	board *hold.Board
	logs  *observer.ObservedLogs
}

func startHeld(t *testing.T, h http.Handler, cfg destination.Config) *holdEnv {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	board, err := hold.New(zap.New(core), prometheus.NewRegistry(), hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = board
	return &holdEnv{env: startMem(t, h, cfg), board: board, logs: logs}
}

// Systemic faults hold delivery: nothing is settled (so nothing is
// dead-lettered or committed), /readyz's check names the setting, one
// ERROR line says it, probes go out at a capped backoff, and delivery
// resumes by itself once Castle accepts again.
func TestSystemicFaultsHoldAndRecover(t *testing.T) {
	tests := []struct {
		name    string
		fault   castleserver.Fault
		class   string
		setting string
	}{
		{"wrong secret 401", castleserver.Status(401), hold.Auth, "CASTLE_API_SECRET"},
		{"service not enabled 403", castleserver.Status(403), hold.Auth, "CASTLE_API_SECRET"},
		{"wrong url 404", castleserver.Status(404), hold.Route, "CASTLE_API_URL"},
		{"redirect 301", castleserver.Status(301), hold.Route, "CASTLE_API_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newServer(t, castleserver.Config{})
				e := startHeld(t, srv, destination.Config{Retry: noJitter})
				defer e.stop()
				srv.StartOutage(tt.fault)
				evs := []destination.Event{event("u", 1), event("v", 1), event("", 1), event("u", 2)}
				p := submit(e.c, context.Background(), evs)
				time.Sleep(10 * time.Minute) // far past the 1-minute retry budget
				select {
				case <-p.Done():
					t.Fatalf("events settled during a systemic fault: %+v", p.snapshot())
				default:
				}
				if err := e.board.Ready(); err == nil || !strings.Contains(err.Error(), tt.setting) || !strings.Contains(err.Error(), tt.class) {
					t.Errorf("Ready() = %v, want it to name %s (%s)", err, tt.setting, tt.class)
				}
				// Probes, not one request per event per retry: the
				// backoff doubles from 100 ms to 30 s.
				if n := srv.Stats().Requests; n > 40 {
					t.Errorf("%d requests in 10 minutes of holding, want a probe per backoff", n)
				}
				errs := e.logs.FilterLevelExact(zapcore.ErrorLevel).All()
				if len(errs) < 1 || len(errs) > 11 || !strings.Contains(errs[0].Message, tt.setting) {
					t.Errorf("%d ERROR lines (first %q), want one a minute at most, naming %s", len(errs), firstMessage(errs), tt.setting)
				}
				srv.EndOutage()
				for i, r := range p.Wait() {
					if r.Status != destination.Delivered {
						t.Errorf("event %d: %v (%v)", i, r.Status, r.Err)
					}
				}
				if err := e.board.Ready(); err != nil {
					t.Errorf("Ready() = %v after recovery", err)
				}
				assertUserOrder(t, srv, "u", 2)
			})
		})
	}
}

func firstMessage(es []observer.LoggedEntry) string {
	if len(es) == 0 {
		return ""
	}
	return es[0].Message
}

// assertUserOrder checks that user's events reached Castle once each, in
// sequence order 1..n.
func assertUserOrder(t *testing.T, srv *castleserver.Server, user string, n int) {
	t.Helper()
	next := 1
	for _, r := range srv.Accepted() {
		if r.UserID != user {
			continue
		}
		if seq := r.Properties["seq"]; seq != float64(next) {
			t.Fatalf("user %s: accepted seq %v, want %d", user, seq, next)
		}
		next++
	}
	if next != n+1 {
		t.Errorf("user %s: %d events accepted, want %d", user, next-1, n)
	}
}

// A CASTLE_API_URL with a path Castle does not serve (a gateway's prefix
// typed where none is) requests /api/v1/log: 404 on a route Castle does
// not serve. It holds like a wrong secret. (Castle's own /v1 is taken off:
// TestURLWithCastleVersion.)
func TestWrongURLPathHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(t, castleserver.Config{})
		mux := http.NewServeMux()
		mux.Handle("/", srv)
		e := startHeld(t, mux, destination.Config{Retry: noJitter})
		defer e.stop()
		// startMem points the client at http://castle.test; rebuild it
		// with the path an operator might type.
		e.c.Close()
		l := castleserver.NewMemListener()
		hs := &http.Server{Handler: srv}
		go func() { _ = hs.Serve(l) }()
		defer hs.Close()
		c, _, _ := newClient(t, destination.Config{URL: "http://castle.test/api", Retry: noJitter, Faults: e.board},
			&http.Client{Transport: &http.Transport{DialContext: l.DialContext}})
		defer c.Close()
		p := submit(c, context.Background(), []destination.Event{event("u", 1)})
		time.Sleep(5 * time.Minute)
		select {
		case <-p.Done():
			t.Fatalf("settled: %+v", p.snapshot())
		default:
		}
		err := e.board.Ready()
		if err == nil || !strings.Contains(err.Error(), "CASTLE_API_URL") || !strings.Contains(err.Error(), "/api/v1/log") {
			t.Errorf("Ready() = %v, want CASTLE_API_URL and the path requested", err)
		}
		if srv.Stats().Accepted != 0 {
			t.Error("accepted on a wrong route")
		}
	})
}

// The secret is rotated at Castle mid-stream: the first events are
// delivered, the rest hold (none settled, none rejected) until the pods get
// the new secret; here Castle accepts the old one again.
func TestSecretRotatedMidStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(t, castleserver.Config{})
		var accepted atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			srv.ServeHTTP(w, r)
			if accepted.Add(1) == 5 { // after 5 events, Castle refuses the secret
				srv.StartOutage(castleserver.Status(401))
			}
		})
		e := startHeld(t, h, destination.Config{Retry: noJitter, Concurrency: 1})
		defer e.stop()
		evs := make([]destination.Event, 20)
		for i := range evs {
			evs[i] = event("", i)
		}
		p := submit(e.c, context.Background(), evs)
		time.Sleep(3 * time.Minute)
		settled := 0
		for i, r := range p.snapshot() {
			if r.Status != 0 {
				settled++
				if r.Status != destination.Delivered {
					t.Errorf("event %d settled %v during the hold", i, r.Status)
				}
			}
		}
		if settled != 5 {
			t.Errorf("%d events settled before the rotation took effect, want 5", settled)
		}
		if !e.board.Held(hold.Auth) {
			t.Error("auth not held")
		}
		srv.EndOutage()
		for i, r := range p.Wait() {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v", i, r.Status)
			}
		}
		if got := srv.Stats().Accepted; got != 20 {
			t.Errorf("accepted %d, want 20", got)
		}
	})
}

// A TLS failure (here: a certificate the client does not trust) holds.
func TestTLSFailureHolds(t *testing.T) {
	srv := newServer(t, castleserver.Config{})
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	board, err := hold.New(nil, nil, hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := newClient(t, destination.Config{URL: ts.URL, Retry: fastRetry, Faults: board, ProbeMax: 10 * time.Millisecond}, nil)
	defer c.Close()
	heldUntilCanceled(t, c, board, event("u", 1))
	if err := board.Ready(); err == nil || !strings.Contains(err.Error(), "tls") || strings.Contains(err.Error(), testSecret) {
		t.Errorf("Ready() = %v, want a tls hold without the secret", err)
	}
	// An untrusted certificate: most often an egress proxy that re-signs
	// TLS. The message says how to trust its CA without a new image.
	if err := board.Ready(); err == nil || !strings.Contains(err.Error(), "SSL_CERT_DIR") {
		t.Errorf("Ready() = %v, want the way to trust a re-signing proxy's CA", err)
	}
}

// An all-429 storm from the account's limit costs about one request per
// event per Retry-After window, not several: the client holds every
// request until the Retry-After passes and probes once.
func TestAccountWide429StormSlowsTheWholeClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(t, castleserver.Config{RateLimitOff: true})
		e := startMem(t, srv, destination.Config{Retry: noJitter})
		defer e.stop()
		srv.StartOutage(castleserver.TooManyRequests("2"))
		const n = 200
		evs := make([]destination.Event, n)
		for i := range evs {
			evs[i] = event(string(rune('a'+i%26))+strings.Repeat("x", i/26), i)
		}
		p := submit(e.c, context.Background(), evs)
		time.Sleep(20 * time.Second) // ten Retry-After windows
		storm := srv.Stats().Requests
		srv.EndOutage()
		for i, r := range p.Wait() {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v", i, r.Status)
			}
		}
		// The first wave (every event once) plus one probe per window.
		if storm > n+15 {
			t.Errorf("%d requests during 20 s of 429s for %d events, want about one per event plus a probe per 2 s window", storm, n)
		}
		if got := counter(t, e.reg, "castle_destination_castle_throttled"); got != 0 {
			t.Errorf("throttled gauge = %v after the storm", got)
		}
	})
}

// A 429 that Castle marks as the user's own budget (X-RateLimit-Remaining:
// 0) holds only that user: others flow at once.
func TestPerUser429HoldsOnlyThatUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var heavy atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if strings.Contains(string(b), `"id":"heavy"`) && heavy.Add(1) == 1 {
				w.Header().Set("X-RateLimit-Remaining", "0")
				w.Header().Set("X-RateLimit-Reset", "5")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		e := startMem(t, h, destination.Config{Retry: noJitter})
		defer e.stop()
		start := time.Now()
		var at [2]time.Duration
		done := make(chan struct{}, 2)
		e.c.Submit(context.Background(), []destination.Event{event("heavy", 1), event("light", 1)}, func(i int, r destination.Result) {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v", i, r.Status)
			}
			at[i] = time.Since(start)
			done <- struct{}{}
		})
		<-done
		<-done
		if at[1] != 0 {
			t.Errorf("the other user waited %v", at[1])
		}
		if at[0] != 5*time.Second {
			t.Errorf("the limited user was delivered after %v, want its 5 s reset", at[0])
		}
		if got := counter(t, e.reg, "castle_destination_castle_throttled"); got != 0 {
			t.Errorf("a per-user 429 throttled the account")
		}
	})
}

// A CASTLE_API_URL whose host does not exist is a wrong URL, not an
// outage: delivery holds however long it lasts (retries would dead-letter
// the events once the retry budget ran out), /readyz names the setting,
// and delivery resumes once the name resolves. On both transports.
func TestHostThatDoesNotExistHolds(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testHostThatDoesNotExistHolds(t, tr.netHTTP) })
		})
	}
}

func testHostThatDoesNotExistHolds(t *testing.T, netHTTP bool) {
	srv := newServer(t, castleserver.Config{})
	l := castleserver.NewMemListener()
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	var exists atomic.Bool
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !exists.Load() {
			host, _, _ := net.SplitHostPort(addr)
			// What net.Dialer returns for a name with no DNS record.
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
		return l.DialContext(ctx, network, addr)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	board, err := hold.New(zap.New(core), prometheus.NewRegistry(), hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := destination.Config{URL: "http://castle.test", Retry: noJitter, Faults: board}
	var c *destination.Client
	if netHTTP {
		c, _, _ = newClient(t, cfg, &http.Client{Transport: &http.Transport{DialContext: dial}})
	} else {
		c, _, _ = newClientOver(t, cfg, nil, dial)
	}
	defer c.Close()
	p := submit(c, context.Background(), []destination.Event{event("u", 1), event("v", 2)})
	time.Sleep(3 * noJitter.MaxElapsed)
	select {
	case <-p.Done():
		t.Fatalf("settled while the host did not exist: %+v", p.snapshot())
	default:
	}
	err = board.Ready()
	if err == nil || !strings.Contains(err.Error(), "CASTLE_API_URL http://castle.test names a host that does not exist") {
		t.Errorf("Ready() = %v, want CASTLE_API_URL and the host", err)
	}
	if n := logs.FilterMessageSnippet("CASTLE_API_URL").Len(); n == 0 {
		t.Error("no log line names CASTLE_API_URL")
	}
	exists.Store(true)
	for i, r := range p.Wait() {
		if r.Status != destination.Delivered {
			t.Errorf("event %d: %v once the host resolved", i, r.Status)
		}
	}
	if err := board.Ready(); err != nil {
		t.Errorf("still held once delivered: %v", err)
	}
}

// A proxy that refuses the worker's credentials (407) holds delivery as an
// auth fault naming the proxy setting, whether it answers a CONNECT (an
// https Castle URL) or a plain request; before, the first was retried and
// then dead-lettered, the second rejected at once.
func TestProxyRefusingCredentialsHolds(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="egress"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
	}))
	defer proxy.Close()
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, castleURL := range []string{"https://castle.test", "http://castle.test"} {
		t.Run(castleURL, func(t *testing.T) {
			err := heldThroughProxy(t, proxyURL, castleURL)
			if err == nil || !strings.Contains(err.Error(), "auth: the proxy in HTTPS_PROXY or HTTP_PROXY refused") || strings.Contains(err.Error(), testSecret) {
				t.Errorf("Ready() = %v, want an auth hold naming the proxy, without the secret", err)
			}
		})
	}
}

// PauseSending (an output topic that cannot be written) stops every
// request: queued and retried events wait, and a Castle hold sends no
// probe while paused. Requests resume, and the hold's probing with them,
// once sending resumes; pauses nest.
func TestPauseSendingStopsEveryRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(t, castleserver.Config{})
		e := startHeld(t, srv, destination.Config{Retry: noJitter})
		defer e.stop()
		e.c.PauseSending()
		e.c.PauseSending()
		p := submit(e.c, context.Background(), []destination.Event{event("u", 1), event("v", 1), event("", 1)})
		time.Sleep(time.Minute)
		if n := srv.Stats().Requests; n != 0 {
			t.Fatalf("%d requests while paused", n)
		}
		e.c.ResumeSending()
		time.Sleep(time.Minute)
		if n := srv.Stats().Requests; n != 0 {
			t.Fatalf("%d requests with one of two pauses resumed", n)
		}
		e.c.ResumeSending()
		for i, r := range p.Wait() {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v (%v)", i, r.Status, r.Err)
			}
		}

		// Paused during a Castle hold: no probe until resumed.
		srv.StartOutage(castleserver.Status(401))
		p = submit(e.c, context.Background(), []destination.Event{event("u", 2)})
		time.Sleep(time.Second)
		if err := e.board.Ready(); err == nil {
			t.Fatal("no hold after a 401")
		}
		e.c.PauseSending()
		before := srv.Stats().Requests
		time.Sleep(10 * time.Minute)
		if n := srv.Stats().Requests - before; n > 1 { // a probe already on its way may go
			t.Errorf("%d probes while paused", n)
		}
		srv.EndOutage()
		e.c.ResumeSending()
		if r := p.Wait()[0]; r.Status != destination.Delivered {
			t.Errorf("after resuming: %v (%v)", r.Status, r.Err)
		}
		if err := e.board.Ready(); err != nil {
			t.Errorf("Ready() = %v after recovery", err)
		}
	})
}

// Check asks Castle before any event whether it takes the secret and the
// URL, recording nothing: a refused secret or a wrong route holds (so
// /readyz says what to fix before traffic arrives) until Castle takes
// them; while Castle does not answer, Reachable says the check is pending.
func TestCheckBeforeAnyEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(t, castleserver.Config{})
		e := startHeld(t, srv, destination.Config{Retry: noJitter})
		defer e.stop()
		if err := e.c.Check(context.Background()); err != nil {
			t.Fatalf("Check with the right secret: %v", err)
		}
		if err := e.board.Ready(); err != nil {
			t.Errorf("Ready() = %v after a good check", err)
		}
		if err := e.c.Reachable(); err != nil {
			t.Errorf("Reachable() = %v after a good check", err)
		}
		if n := srv.Stats().Accepted; n != 0 {
			t.Errorf("the check recorded %d events", n)
		}

		for _, tc := range []struct {
			fault   castleserver.Fault
			setting string
		}{{castleserver.Status(401), "CASTLE_API_SECRET"}, {castleserver.Status(404), "CASTLE_API_URL"}, {castleserver.Status(503), "not checked yet"}} {
			srv.StartOutage(tc.fault)
			done := make(chan error, 1)
			go func() { done <- e.c.Check(context.Background()) }()
			time.Sleep(2 * time.Minute)
			var got error
			if tc.setting == "not checked yet" {
				got = e.c.Reachable()
			} else {
				got = e.board.Ready()
			}
			if got == nil || !strings.Contains(got.Error(), tc.setting) {
				t.Errorf("%v: %v, want it to name %s", tc.fault, got, tc.setting)
			}
			select {
			case err := <-done:
				t.Fatalf("%v: Check returned %v while Castle refused", tc.fault, err)
			default:
			}
			srv.EndOutage()
			if err := <-done; err != nil {
				t.Errorf("%v, then fixed: Check = %v", tc.fault, err)
			}
			if err := e.board.Ready(); err != nil {
				t.Errorf("%v, then fixed: Ready() = %v", tc.fault, err)
			}
			if err := e.c.Reachable(); err != nil {
				t.Errorf("%v, then fixed: Reachable() = %v", tc.fault, err)
			}
		}
	})
}

// A proxy where nothing answers holds delivery naming the proxy setting,
// not CASTLE_API_URL, which was never reached.
func TestProxyNotAnsweringNamesTheProxy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	if err := heldThroughProxy(t, &url.URL{Scheme: "http", Host: dead}, "https://castle.test"); err == nil || !strings.Contains(err.Error(), "HTTPS_PROXY") || strings.Contains(err.Error(), "CASTLE_API_URL") {
		t.Errorf("Ready() = %v, want a hold naming the proxy", err)
	}
}

// heldThroughProxy sends one event to castleURL through proxy and returns
// what the hold board then says (Ready): the event must be held until its
// context ends.
func heldThroughProxy(t *testing.T, proxy *url.URL, castleURL string) error {
	t.Helper()
	board, err := hold.New(nil, nil, hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := destination.NewTransport(8)
	tr.Proxy = http.ProxyURL(proxy)
	c, _, _ := newClient(t, destination.Config{URL: castleURL, Retry: fastRetry, Faults: board, ProbeMax: 10 * time.Millisecond},
		&http.Client{Transport: tr})
	defer c.Close()
	heldUntilCanceled(t, c, board, event("u", 1))
	return board.Ready()
}

// heldUntilCanceled submits ev, waits until board reports a hold (30 s
// bounds a hang), cancels the submission and checks that the event was
// held, not settled, until then. It waits for the hold itself rather than
// for a fixed time: a loaded machine may take longer than any such time
// to make the first attempt.
func heldUntilCanceled(t *testing.T, c *destination.Client, board *hold.Board, ev destination.Event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pend := submit(c, ctx, []destination.Event{ev})
	deadline := time.Now().Add(30 * time.Second)
	for board.Ready() == nil {
		select {
		case <-pend.Done():
			r := pend.snapshot()[0]
			t.Fatalf("got %v (%v) before any hold, want the event held", r.Status, r.Err)
		case <-time.After(5 * time.Millisecond): // polling interval, not a wait for an event
		}
		if time.Now().After(deadline) {
			t.Fatal("no hold within 30s")
		}
	}
	select {
	case <-pend.Done():
		r := pend.snapshot()[0]
		t.Fatalf("got %v (%v) while held, want the event held until canceled", r.Status, r.Err)
	default:
	}
	cancel()
	if r := pend.Wait()[0]; r.Status != destination.Canceled {
		t.Fatalf("got %v (%v), want the held event canceled with its context", r.Status, r.Err)
	}
}
