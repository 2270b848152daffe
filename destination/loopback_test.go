package destination_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
)

// Per-user order survives retries, resets and concurrent batches.
func TestOrderPerUser(t *testing.T) {
	e := startLoopback(t, castleserver.Config{RateLimitOff: true, MaxRecords: -1, Seed: 7},
		destination.Config{Retry: fastRetry, UserRate: destination.UserRate{Off: true}, Concurrency: 16})
	e.srv.FailRate(0.2, castleserver.Status(500))
	e.srv.FailRate(0.1, castleserver.TooManyRequests("0"))
	e.srv.FailRate(0.05, castleserver.Reset())

	const users, perUser, batches = 20, 30, 3
	var want = make(map[string][]int)
	var pend []*pending
	seq := 0
	for range batches {
		var evs []destination.Event
		for range perUser / batches {
			for u := range users {
				user := "user-" + strconv.Itoa(u)
				evs = append(evs, event(user, seq))
				want[user] = append(want[user], seq)
				seq++
			}
		}
		pend = append(pend, submit(e.c, context.Background(), evs)) // submitted in order
	}
	var wg sync.WaitGroup
	for _, p := range pend { // waited for concurrently
		wg.Go(func() {
			for _, r := range p.Wait() {
				if r.Status != destination.Delivered {
					t.Errorf("event not delivered: %v %v", r.Status, r.Err)
				}
			}
		})
	}
	wg.Wait()

	got := make(map[string][]int)
	for _, rec := range e.srv.Accepted() {
		got[rec.UserID] = append(got[rec.UserID], int(rec.Properties["seq"].(float64)))
	}
	for user, w := range want {
		if fmt.Sprint(got[user]) != fmt.Sprint(w) {
			t.Errorf("user %s: server got %v, want %v", user, got[user], w)
		}
	}
	st := e.srv.Stats()
	if st.Faults["status_500"] == 0 || st.Faults["status_429"] == 0 || st.Faults["reset"] == 0 {
		t.Errorf("faults not exercised: %v", st.Faults)
	}
	if st.Accepted != int64(seq) {
		t.Errorf("accepted %d, want %d (exactly once)", st.Accepted, seq)
	}
	// Resets close connections: new ones are opened, and counted.
	if got := counter(t, e.reg, "castle_destination_castle_connections_opened_total"); got < 2 {
		t.Errorf("connections_opened_total = %v, want at least 2 after resets", got)
	}
}

// Two goroutines calling Deliver: each call's events of a user keep their
// order, and a call's events are never interleaved out of order with the
// other's beyond what enqueue order allows.
func TestConcurrentDeliverCallsKeepUserOrder(t *testing.T) {
	e := startLoopback(t, castleserver.Config{RateLimitOff: true, MaxRecords: -1},
		destination.Config{Retry: fastRetry, UserRate: destination.UserRate{Off: true}})
	e.srv.FailRate(0.3, castleserver.Status(503))
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			var evs []destination.Event
			for i := range 50 {
				evs = append(evs, event("shared", g*1000+i))
			}
			for _, r := range deliver(e.c, context.Background(), evs) {
				if r.Status != destination.Delivered {
					t.Errorf("%v", r.Status)
				}
			}
		})
	}
	wg.Wait()
	last := map[int]int{0: -1, 1: -1}
	for _, rec := range e.srv.Accepted() {
		s := int(rec.Properties["seq"].(float64))
		g, i := s/1000, s%1000
		if i <= last[g] {
			t.Fatalf("call %d: event %d accepted after %d", g, i, last[g])
		}
		last[g] = i
	}
	if last[0] != 49 || last[1] != 49 {
		t.Errorf("missing events: %v", last)
	}
}

func TestConnectionResetRetried(t *testing.T) {
	e := startLoopback(t, castleserver.Config{}, destination.Config{Retry: fastRetry})
	// Castle has answered: a reset now is an outage, retried (before any
	// answer it holds: TestNoAnswerSinceStartHolds).
	if err := e.c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first reset meets the connection Check left idle, and is sent
	// again on a new one at once, as a stale kept-alive connection is; the
	// next two are attempts.
	e.srv.FailNext(3, castleserver.Reset())
	r := deliver(e.c, context.Background(), []destination.Event{event("u", 1)})[0]
	if r.Status != destination.Delivered || r.Attempts != 3 {
		t.Fatalf("got %v after %d attempts (%v)", r.Status, r.Attempts, r.Err)
	}
	if got := counter(t, e.reg, "castle_destination_castle_requests_total", "class", "conn_error"); got != 2 {
		t.Errorf("requests{conn_error} = %v, want 2", got)
	}
	if got := counter(t, e.reg, "castle_destination_castle_retries_total", "cause", "conn_error"); got != 2 {
		t.Errorf("retries{conn_error} = %v, want 2", got)
	}
}

// Refused once Castle has answered since the start (it went away, or its
// port changed): an outage, retried for the retry budget, then
// retries_exhausted, with a warning that names the URL and the error.
func TestConnectionRefusedAfterAnAnswer(t *testing.T) {
	s := newServer(t, castleserver.Config{})
	ts := httptest.NewServer(s)
	url := ts.URL
	p := fastRetry
	p.MaxElapsed = 50 * time.Millisecond
	c, reg, logs := newClient(t, destination.Config{URL: url, Retry: p, UnreachableAfter: 2}, nil)
	defer c.Close()
	if r := deliver(c, context.Background(), []destination.Event{event("v", 1)})[0]; r.Status != destination.Delivered {
		t.Fatalf("first event: %v", r.Status)
	}
	ts.Close() // nothing listens there now
	s.Close()
	r := deliver(c, context.Background(), []destination.Event{event("u", 1)})[0]
	if r.Status != destination.RetriesExhausted || r.Code != 0 || r.Attempts < 2 {
		t.Fatalf("got %v code=%d attempts=%d", r.Status, r.Code, r.Attempts)
	}
	// The warning says where, and why, so that a wrong host or port shows.
	warned := logs.FilterMessage("castle api looks unreachable").AllUntimed()
	if len(warned) != 1 {
		t.Fatalf("%d unreachable warnings, want 1", len(warned))
	}
	f := warned[0].ContextMap()
	if f["url"] != url || !strings.Contains(fmt.Sprint(f["error"]), "connection refused") {
		t.Errorf("warning fields %v, want the URL and the connection error", f)
	}
	var op *net.OpError
	if !errors.As(r.Err, &op) {
		t.Errorf("Err = %v, want a *net.OpError inside", r.Err)
	}
	if err := c.Reachable(); err == nil || !strings.Contains(err.Error(), "conn_error") {
		t.Errorf("Reachable() = %v", err)
	}
	if got := counter(t, reg, "castle_destination_castle_events_total", "type", "track", "result", "retries_exhausted"); got != 1 {
		t.Errorf("events{retries_exhausted} = %v", got)
	}
}

// Refused or timing out while Castle has answered nothing since the start:
// as likely a wrong CASTLE_API_URL (a port nothing listens on, a host that
// drops the packets) as an outage, so delivery holds under route, naming
// the setting, and spends no event's retry budget: a wrong port never
// dead-letters the topic. The first answer ends the hold.
func TestNoAnswerSinceStartHolds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	board, err := hold.New(nil, prometheus.NewRegistry(), hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := fastRetry
	p.MaxElapsed = 50 * time.Millisecond
	c, _, _ := newClient(t, destination.Config{URL: "http://" + addr, Retry: p, ProbeMax: 20 * time.Millisecond, Faults: board}, nil)
	defer c.Close()
	pend := submit(c, context.Background(), []destination.Event{event("u", 1), event("v", 1)})
	deadline := time.Now().Add(10 * time.Second)
	for board.Ready() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := board.Ready(); err == nil || !strings.Contains(err.Error(), "CASTLE_API_URL") || !strings.Contains(err.Error(), "has not answered since the start") {
		t.Fatalf("Ready() = %v, want a route hold naming CASTLE_API_URL", err)
	}
	// Far past the 50 ms retry budget: nothing is settled.
	select {
	case <-pend.Done():
		t.Fatalf("events settled while Castle never answered: %+v", pend.snapshot())
	case <-time.After(300 * time.Millisecond):
	}
	// Castle comes up at that address: the probes find it.
	s := newServer(t, castleserver.Config{})
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	hs := &http.Server{Handler: s}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	for i, r := range pend.Wait() {
		if r.Status != destination.Delivered {
			t.Errorf("event %d: %v (%v)", i, r.Status, r.Err)
		}
	}
	if err := board.Ready(); err != nil {
		t.Errorf("Ready() = %v once Castle answered", err)
	}
}

// heavyAndLight is n events of one heavy user, then one event of each of
// m light users.
func heavyAndLight(n, m int) []destination.Event {
	var evs []destination.Event
	for i := range n {
		evs = append(evs, event("heavy", i))
	}
	for i := range m {
		evs = append(evs, event("light-"+strconv.Itoa(i), i))
	}
	return evs
}

// The default pacing against a server enforcing Castle's documented
// limits, on a fake clock the client and the server share (a synctest
// bubble, the connection in memory): the heavy user's 7th request waits out
// the 1 s window plus the client's slack and no longer, nobody sees a 429,
// and the light users are not held up. On real time this was at the mercy
// of the machine's load; nothing here depends on it.
func TestPacingAgainstRealLimitsNoTooManyRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{MaxRecords: -1}, destination.Config{})
		defer e.stop()
		start := time.Now()
		deliverFirstTry(t, e, heavyAndLight(8, 30))
		heavy := heavyArrivals(t, e, start)
		if len(heavy) != 8 {
			t.Fatalf("the server accepted %d events of the heavy user, want 8", len(heavy))
		}
		checkWindows(t, "heavy", heavy, castleserver.DefaultLimits)
		rate := destination.DefaultUserRate()
		if d, want := heavy[6].Sub(start), rate.Windows[0].Per+rate.Slack; d != want {
			t.Errorf("the heavy user's 7th request went after %v, want %v (the 1 s window plus the slack)", d, want)
		}
	})
}

// On a real loopback socket and real time, against Castle's documented
// limits with the client's defaults: every event is delivered. That is the
// whole contract here. A loaded machine can bring two of a user's requests
// closer together on arrival than they were sent, so the server may answer
// 429 now and then; the client retries, and nothing is lost. How exactly
// the client paces is TestPacingAgainstRealLimitsNoTooManyRequests's job.
func TestLoopbackRealLimitsLoseNothing(t *testing.T) {
	e := startLoopback(t, castleserver.Config{MaxRecords: -1}, destination.Config{})
	evs := heavyAndLight(8, 30)
	for i, r := range deliver(e.c, context.Background(), evs) {
		if r.Status != destination.Delivered {
			t.Errorf("event %d: %v after %d attempts (%v)", i, r.Status, r.Attempts, r.Err)
		}
	}
	got := map[string]int{}
	for _, rec := range e.srv.Accepted() {
		got[fmt.Sprint(rec.UserID, "/", rec.Properties["seq"])]++
	}
	for i, ev := range evs {
		var m struct {
			Properties struct{ Seq int } `json:"properties"`
		}
		if err := json.Unmarshal(ev.Body, &m); err != nil {
			t.Fatal(err)
		}
		if got[fmt.Sprint(ev.UserID, "/", m.Properties.Seq)] == 0 {
			t.Errorf("event %d (user %s) never reached the server", i, ev.UserID)
		}
	}
	if n := e.srv.Stats().ByStatus[429]; n > 0 {
		t.Logf("the server answered %d 429s; all retried", n)
	}
}

// The secret appears in no error, log line, metric or Reachable message,
// even when a server echoes the credentials back.
func TestSecretNeverLeaks(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(":" + testSecret))
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, _ := r.BasicAuth()
		code := http.StatusBadRequest
		if r.Header.Get("X-Test") == "" && strings.Contains(string(mustRead(r)), `"seq":2`) {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"type":"bad_request","message":"you sent %s and %s"}`, pass, r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client hanging up only once the body is read.
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hang.Close()
	// A 401 whose error type echoes the credentials: the hold's message
	// (Reachable, the log) names the type.
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"type":"refused %s","message":"no"}`, r.Header.Get("Authorization"))
	}))
	defer refuse.Close()

	var errs []string
	var logs []string
	run := func(url string, timeout time.Duration, evs ...destination.Event) {
		p := fastRetry
		p.MaxElapsed = 30 * time.Millisecond
		c, reg, obs := newClient(t, destination.Config{URL: url, Retry: p, Timeout: timeout}, nil)
		// A server that never answers holds (TestNoAnswerSinceStartHolds):
		// its events end canceled, with their last error.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		for _, r := range deliver(c, ctx, evs) {
			if r.Err == nil {
				t.Errorf("%s: no error", url)
				continue
			}
			errs = append(errs, r.Err.Error(), fmt.Sprintf("%+v", r.Err))
		}
		if err := c.Reachable(); err != nil {
			errs = append(errs, err.Error())
		}
		c.Close()
		for _, entry := range obs.All() {
			enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"})
			buf, err := enc.EncodeEntry(entry.Entry, entry.Context)
			if err != nil {
				t.Fatal(err)
			}
			logs = append(logs, buf.String())
		}
		errs = append(errs, gatherText(t, reg))
	}
	run(echo.URL, time.Second, event("u", 1), event("u", 2)) // 400 echo (rejected), 503 echo (exhausted)
	run(hang.URL, 5*time.Millisecond, event("u", 3))         // timeouts
	run("http://127.0.0.1:1", time.Second, event("u", 4))    // refused
	run(refuse.URL, time.Second, event("u", 5))              // 401 echo (held)

	if len(logs) == 0 {
		t.Fatal("no log lines captured; the check would be vacuous")
	}
	for _, s := range append(errs, logs...) {
		if strings.Contains(s, testSecret) || strings.Contains(s, basic) {
			t.Errorf("secret leaked: %s", s)
		}
	}
	// The echoed text is there, redacted: the check above is not vacuous.
	if !strings.Contains(strings.Join(errs, "\n"), "you sent [REDACTED] and Basic [REDACTED]") {
		t.Errorf("echoed body not found redacted in errors:\n%s", strings.Join(errs, "\n"))
	}

	// A transport error names the request as http.Client's errors do.
	if want := `Post "http://127.0.0.1:1/v1/log": `; !strings.Contains(strings.Join(errs, "\n"), want) {
		t.Errorf("no error names the refused request as %s:\n%s", want, strings.Join(errs, "\n"))
	}

	// Config errors do not echo a URL carrying the secret.
	_, err := destination.New(destination.Config{URL: "https://:" + testSecret + "@api.castle.io", Secret: testSecret}, nil, nil, nil)
	if err == nil || strings.Contains(err.Error(), testSecret) {
		t.Errorf("New with credentials in the URL: %v", err)
	}
}

// A request token echoed by a server, in whatever form (here a proxy's
// HTML page quoting the request body), appears in no error or log line,
// not even its start where the error cuts a long page: the client knows
// the token it sent.
func TestEchoedRequestTokenNeverLeaks(t *testing.T) {
	const token = "cst1.echoed-token-value"
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := string(mustRead(r))
		switch {
		case strings.Contains(body, `"seq":2`):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.Contains(body, `"seq":3`):
			// The token across the 512 bytes of a page the error keeps.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "%s %s", strings.Repeat("x", 499), token)
			return
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
		fmt.Fprintf(w, "<html><body><p>Refused request:</p><pre>%s</pre></body></html>", html.EscapeString(body))
	}))
	defer echo.Close()
	p := fastRetry
	p.MaxElapsed = 30 * time.Millisecond
	c, _, obs := newClient(t, destination.Config{URL: echo.URL, Retry: p, Timeout: time.Second}, nil)
	defer c.Close()
	var evs []destination.Event
	for seq := 1; seq <= 3; seq++ {
		body := fmt.Sprintf(`{"type":"$custom","name":"E","request_token":%q,"user":{"id":"u"},"properties":{"seq":%d}}`, token, seq)
		evs = append(evs, destination.Event{Body: []byte(body), UserID: "u", Type: "track"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var text []string
	for _, r := range deliver(c, ctx, evs) {
		if r.Err == nil {
			t.Fatal("an echoed refusal was delivered")
		}
		text = append(text, r.Err.Error())
	}
	for _, entry := range obs.All() {
		buf, err := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"}).EncodeEntry(entry.Entry, entry.Context)
		if err != nil {
			t.Fatal(err)
		}
		text = append(text, buf.String())
	}
	all := strings.Join(text, "\n")
	if strings.Contains(all, token[:8]) {
		t.Errorf("the request token leaked:\n%s", all)
	}
	if !strings.Contains(all, "Refused request") {
		t.Errorf("the echoed page is in no error; the check is vacuous:\n%s", all)
	}
}

func mustRead(r *http.Request) []byte {
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return []byte(b.String())
		}
	}
}

// A request token is hidden by its value only when it can be one: a junk
// value a misconfigured client sends ("token", "undefined") is common
// text, and hiding it shredded Castle's own answer, the type an operator
// reads to know why the event was refused. A body without a request token
// of its own hides no property's value either.
func TestShortRequestTokenLeavesTheErrorReadable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"type":"invalid_request_token","message":"The request token is invalid"}`)
	}))
	defer srv.Close()
	c, _, _ := newClient(t, destination.Config{URL: srv.URL, Retry: fastRetry, Timeout: time.Second}, nil)
	defer c.Close()
	evs := []destination.Event{
		{Body: []byte(`{"type":"$custom","name":"E","request_token":"token","user":{"id":"u"},"properties":{}}`), UserID: "u", Type: "track"},
		{Body: []byte(`{"type":"$custom","name":"E","user":{"id":"u"},"properties":{"request_token":"The request token"}}`), UserID: "u", Type: "track"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, r := range deliver(c, ctx, evs) {
		const want = "castle: HTTP 400 invalid_request_token: The request token is invalid"
		if r.Err == nil || r.Err.Error() != want {
			t.Errorf("event %d: error %v, want %s", i, r.Err, want)
		}
	}
}
