package destination_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
)

// noJitter is a retry schedule whose waits are exact: 100 ms doubling.
var noJitter = destination.RetryPolicy{
	Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, MaxElapsed: time.Minute,
}

func deliverOne(t *testing.T, c *destination.Client, ev destination.Event) destination.Result {
	t.Helper()
	res := deliver(c, context.Background(), []destination.Event{ev})
	if len(res) != 1 {
		t.Fatalf("got %d results", len(res))
	}
	return res[0]
}

func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
		defer e.stop()
		e.srv.FailNext(3, castleserver.Status(500))
		start := time.Now()
		r := deliverOne(t, e.c, event("u", 1))
		if r.Status != destination.Delivered || r.Attempts != 4 {
			t.Fatalf("got %v after %d attempts (%v), want delivered after 4", r.Status, r.Attempts, r.Err)
		}
		// Waits of 100, 200 and 400 ms: the last attempt starts at 700 ms.
		if got := time.Since(start); got != 700*time.Millisecond {
			t.Errorf("delivered after %v, want 700ms", got)
		}
		acc := e.srv.Accepted()
		if len(acc) != 1 || acc[0].ReceivedAt.Sub(start) != 700*time.Millisecond {
			t.Errorf("accepted %d, at %v", len(acc), acc[0].ReceivedAt.Sub(start))
		}
		if got := counter(t, e.reg, "castle_destination_castle_retries_total", "cause", "5xx"); got != 3 {
			t.Errorf("retries{5xx} = %v, want 3", got)
		}
	})
}

func TestBackoffCappedAtMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter
		p.Max = 300 * time.Millisecond
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: p})
		defer e.stop()
		e.srv.FailNext(4, castleserver.Status(503))
		start := time.Now()
		r := deliverOne(t, e.c, event("u", 1))
		// 100 + 200 + 300 + 300.
		if r.Status != destination.Delivered || time.Since(start) != 900*time.Millisecond {
			t.Fatalf("got %v after %v, want delivered after 900ms", r.Status, time.Since(start))
		}
	})
}

func TestRetriesExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := destination.RetryPolicy{Initial: time.Second, Max: 4 * time.Second, Multiplier: 2, MaxElapsed: 10 * time.Second}
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: p})
		defer e.stop()
		e.srv.StartOutage(castleserver.Status(503))
		start := time.Now()
		r := deliverOne(t, e.c, event("u", 1))
		// Attempts at 0, 1, 3, 7 s, then the wait of 4 s is cut to end at
		// the 10 s deadline: a last attempt at 10 s.
		if r.Status != destination.RetriesExhausted || r.Attempts != 5 || r.Code != 503 {
			t.Fatalf("got %v attempts=%d code=%d, want retries_exhausted after 5 with 503", r.Status, r.Attempts, r.Code)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("gave up after %v, want 10s", got)
		}
		var ae *destination.APIError
		if !errors.As(r.Err, &ae) || ae.StatusCode != 503 || ae.Type != "service_unavailable" {
			t.Errorf("Err = %v, want the last 503 APIError", r.Err)
		}
		if err := e.c.Reachable(); err == nil {
			t.Error("Reachable() = nil during an outage")
		}
		e.srv.EndOutage()
		if r := deliverOne(t, e.c, event("u2", 1)); r.Status != destination.Delivered {
			t.Fatalf("after the outage: %v", r.Status)
		}
		if err := e.c.Reachable(); err != nil {
			t.Errorf("Reachable() = %v after a delivery", err)
		}
	})
}

func TestDefaultPolicyRidesOutThirtySecondOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{})
		defer e.stop()
		e.srv.StartOutage(castleserver.Status(503))
		p := submit(e.c, context.Background(), []destination.Event{event("u", 1), event("", 2), event("v", 3)})
		time.Sleep(30 * time.Second)
		e.srv.EndOutage()
		start := time.Now()
		for i, r := range p.Wait() {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v (%v)", i, r.Status, r.Err)
			}
		}
		// The default backoff caps at 10 s (+20 % jitter).
		if d := time.Since(start); d > 12*time.Second {
			t.Errorf("took %v after the outage ended, want <= 12s", d)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		value  func(now time.Time) string
		max    time.Duration
		wantAt time.Duration
	}{
		{"delta seconds", func(time.Time) string { return "3" }, 10 * time.Second, 3 * time.Second},
		{"http date", func(now time.Time) string { return now.Add(5 * time.Second).UTC().Format(http.TimeFormat) }, 10 * time.Second, 5 * time.Second},
		{"past http date", func(now time.Time) string { return now.Add(-time.Hour).UTC().Format(http.TimeFormat) }, 10 * time.Second, 100 * time.Millisecond},
		{"capped by Max", func(time.Time) string { return "60" }, 2 * time.Second, 2 * time.Second},
		{"garbage ignored", func(time.Time) string { return "soon" }, 10 * time.Second, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := noJitter
				p.Max = tt.max
				e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: p})
				defer e.stop()
				start := time.Now()
				e.srv.FailNext(1, castleserver.TooManyRequests(tt.value(start)))
				r := deliverOne(t, e.c, event("u", 1))
				if r.Status != destination.Delivered || r.Attempts != 2 {
					t.Fatalf("got %v after %d attempts", r.Status, r.Attempts)
				}
				if got := time.Since(start); got != tt.wantAt {
					t.Errorf("retried after %v, want %v", got, tt.wantAt)
				}
				if got := counter(t, e.reg, "castle_destination_castle_retries_total", "cause", "429"); got != 1 {
					t.Errorf("retries{429} = %v", got)
				}
			})
		})
	}
}

// A 429 without Retry-After: X-RateLimit-Reset says when to come back.
func TestRateLimitResetOn429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				w.Header().Set("X-RateLimit-Limit", "6")
				w.Header().Set("X-RateLimit-Remaining", "0")
				w.Header().Set("X-RateLimit-Reset", "3")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		e := startMem(t, h, destination.Config{Retry: noJitter})
		defer e.stop()
		start := time.Now()
		r := deliverOne(t, e.c, event("u", 1))
		if r.Status != destination.Delivered || time.Since(start) != 3*time.Second {
			t.Fatalf("got %v after %v, want delivered after 3s", r.Status, time.Since(start))
		}
	})
}

// X-RateLimit-Remaining: 0 on a success holds the user until the reset, so
// a server stricter than our pacing is not hit with a 429.
func TestRateLimitHeadersInformPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loose := destination.UserRate{Windows: []destination.RateWindow{{Requests: 100, Per: time.Second}}}
		e := startMemServer(t,
			castleserver.Config{Limits: []castleserver.Limit{{Requests: 2, Per: time.Second}}},
			destination.Config{Retry: noJitter, UserRate: loose})
		defer e.stop()
		start := time.Now()
		evs := []destination.Event{event("u", 1), event("u", 2), event("u", 3), event("u", 4)}
		for i, r := range deliver(e.c, context.Background(), evs) {
			if r.Status != destination.Delivered || r.Attempts != 1 {
				t.Errorf("event %d: %v after %d attempts", i, r.Status, r.Attempts)
			}
		}
		if n := e.srv.Stats().ByStatus[429]; n != 0 {
			t.Errorf("server answered %d 429s", n)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("took %v, want 1s (two per second)", got)
		}
	})
}

// transports are the client's two: its own connections, and net/http's
// Transport (behind a proxy, or a given http.Client).
var transports = []struct {
	name    string
	netHTTP bool
}{{"own", false}, {"net-http", true}}

func TestTimeoutRetried(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { synctest.Test(t, func(t *testing.T) { testTimeoutRetried(t, tr.netHTTP) }) })
	}
}

func testTimeoutRetried(t *testing.T, netHTTP bool) {
	e := startMemOver(t, newServer(t, castleserver.Config{}), destination.Config{Retry: noJitter, Timeout: 2 * time.Second}, netHTTP)
	defer e.stop()
	// Castle has answered (before any answer, a timeout holds:
	// TestNoAnswerSinceStartHolds).
	if err := e.c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.srv.FailNext(1, castleserver.Hang())
	start := time.Now()
	r := deliverOne(t, e.c, event("u", 1))
	if r.Status != destination.Delivered || r.Attempts != 2 {
		t.Fatalf("got %v after %d attempts (%v)", r.Status, r.Attempts, r.Err)
	}
	if got := time.Since(start); got != 2*time.Second+100*time.Millisecond {
		t.Errorf("delivered after %v, want 2.1s", got)
	}
	if got := counter(t, e.reg, "castle_destination_castle_requests_total", "class", "timeout"); got != 1 {
		t.Errorf("requests{timeout} = %v, want 1", got)
	}
	if got := counter(t, e.reg, "castle_destination_castle_retries_total", "cause", "timeout"); got != 1 {
		t.Errorf("retries{timeout} = %v, want 1", got)
	}
}

func TestConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, castleserver.Config{})
		s.SetLatency(time.Second)
		var cur, peak atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			defer cur.Add(-1)
			s.ServeHTTP(w, r)
		})
		e := startMem(t, h, destination.Config{Concurrency: 4, Retry: noJitter})
		defer func() { e.stop(); s.Close() }()
		evs := make([]destination.Event, 20)
		for i := range evs {
			evs[i] = event("", i)
		}
		start := time.Now()
		for i, r := range deliver(e.c, context.Background(), evs) {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v", i, r.Status)
			}
		}
		if got := peak.Load(); got != 4 {
			t.Errorf("peak concurrency %d, want 4", got)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("took %v, want 5s (20 requests, 4 at a time, 1s each)", got)
		}
	})
}

func TestCancelMidRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
		defer e.stop()
		e.srv.StartOutage(castleserver.Status(503))
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		start := time.Now()
		res := deliver(e.c, ctx, []destination.Event{event("u", 1), event("", 2)})
		if got := time.Since(start); got != 1500*time.Millisecond {
			t.Errorf("Deliver returned after %v, want 1.5s", got)
		}
		for i, r := range res {
			if r.Status != destination.Canceled || r.Attempts < 1 || !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("event %d: %v attempts=%d err=%v, want canceled with DeadlineExceeded", i, r.Status, r.Attempts, r.Err)
			}
		}
		before := e.srv.Stats().Requests
		time.Sleep(time.Minute)
		if after := e.srv.Stats().Requests; after != before {
			t.Errorf("%d requests after cancellation", after-before)
		}
		if got := counter(t, e.reg, "castle_destination_castle_events_total", "type", "track", "result", "canceled"); got != 2 {
			t.Errorf("events{canceled} = %v, want 2", got)
		}
	})
}

func TestCancelInFlight(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { synctest.Test(t, func(t *testing.T) { testCancelInFlight(t, tr.netHTTP) }) })
	}
}

func testCancelInFlight(t *testing.T, netHTTP bool) {
	e := startMemOver(t, newServer(t, castleserver.Config{}), destination.Config{Retry: noJitter, Timeout: time.Minute}, netHTTP)
	defer e.stop()
	e.srv.FailNext(1, castleserver.Hang())
	ctx, cancel := context.WithCancel(context.Background())
	p := submit(e.c, ctx, []destination.Event{event("u", 1)})
	time.Sleep(time.Second)
	cancel()
	r := p.Wait()[0]
	if r.Status != destination.Canceled || r.Attempts != 1 || !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("got %v attempts=%d err=%v", r.Status, r.Attempts, r.Err)
	}
	if got := counter(t, e.reg, "castle_destination_castle_requests_total", "class", "canceled"); got != 1 {
		t.Errorf("requests{canceled} = %v", got)
	}
}

// A canceled batch returns promptly even when its event waits behind
// another batch's event of the same user that is retrying.
func TestCancelQueuedBehindRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
		defer e.stop()
		e.srv.StartOutage(castleserver.Status(503))
		a := submit(e.c, context.Background(), []destination.Event{event("u", 1)})
		ctx, cancel := context.WithCancel(context.Background())
		b := submit(e.c, ctx, []destination.Event{event("u", 2), event("w", 3)})
		time.Sleep(time.Second)
		start := time.Now()
		cancel()
		rb := b.Wait()
		if time.Since(start) != 0 {
			t.Errorf("canceled batch took %v to return", time.Since(start))
		}
		if rb[0].Status != destination.Canceled || rb[0].Attempts != 0 {
			t.Errorf("queued event: %v attempts=%d, want canceled with 0 attempts", rb[0].Status, rb[0].Attempts)
		}
		if rb[1].Status != destination.Canceled {
			t.Errorf("other user's event: %v, want canceled", rb[1].Status)
		}
		select {
		case <-a.Done():
			t.Fatal("batch a settled during the outage")
		default:
		}
		e.srv.EndOutage()
		if r := a.Wait()[0]; r.Status != destination.Delivered {
			t.Fatalf("batch a: %v", r.Status)
		}
		for _, rec := range e.srv.Accepted() {
			if rec.Properties["seq"] != float64(1) {
				t.Errorf("server accepted canceled event %s", rec.Body)
			}
		}
	})
}

func TestCloseCancelsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
		defer e.stop()
		e.srv.StartOutage(castleserver.Status(503))
		p := submit(e.c, context.Background(), []destination.Event{event("u", 1), event("u", 2), event("", 3)})
		time.Sleep(time.Second)
		e.c.Close()
		for i, r := range p.Wait() {
			if r.Status != destination.Canceled || !errors.Is(r.Err, destination.ErrClosed) {
				t.Errorf("event %d: %v %v, want canceled by ErrClosed", i, r.Status, r.Err)
			}
		}
		r := deliver(e.c, context.Background(), []destination.Event{event("u", 4)})
		if r[0].Status != destination.Canceled || !errors.Is(r[0].Err, destination.ErrClosed) {
			t.Errorf("after Close: %v %v", r[0].Status, r[0].Err)
		}
		e.c.Close() // idempotent
	})
}

// deliverFirstTry delivers evs and checks that pacing kept every event
// within Castle's limits: each delivered at its first attempt, no 429s.
func deliverFirstTry(t *testing.T, e *env, evs []destination.Event) {
	t.Helper()
	for i, r := range deliver(e.c, context.Background(), evs) {
		if r.Status != destination.Delivered || r.Attempts != 1 {
			t.Errorf("event %d: %v after %d attempts", i, r.Status, r.Attempts)
		}
	}
	if n := e.srv.Stats().ByStatus[429]; n != 0 {
		t.Errorf("server answered %d 429s to a paced client", n)
	}
}

// heavyArrivals returns when the server received the "heavy" user's
// events, and checks that every other user's arrived at start: a paced
// user holds up nobody else.
func heavyArrivals(t *testing.T, e *env, start time.Time) []time.Time {
	t.Helper()
	var heavy []time.Time
	for _, rec := range e.srv.Accepted() {
		if rec.UserID == "heavy" {
			heavy = append(heavy, rec.ReceivedAt)
		} else if d := rec.ReceivedAt.Sub(start); d != 0 {
			t.Errorf("light user %s delivered after %v, want at once", rec.UserID, d)
		}
	}
	return heavy
}

// checkWindows verifies arrival times keep every limit.
func checkWindows(t *testing.T, user string, times []time.Time, limits []castleserver.Limit) {
	t.Helper()
	for _, l := range limits {
		for i := l.Requests; i < len(times); i++ {
			if d := times[i].Sub(times[i-l.Requests]); d < l.Per {
				t.Errorf("user %s: requests %d and %d only %v apart (limit %d per %v)", user, i-l.Requests, i, d, l.Requests, l.Per)
			}
		}
	}
}

func TestPacingHeavyUserDoesNotSlowOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
		defer e.stop()
		var evs []destination.Event
		for i := range 25 {
			evs = append(evs, event("heavy", i))
			evs = append(evs, event("light"+strconv.Itoa(i), i))
		}
		start := time.Now()
		deliverFirstTry(t, e, evs)
		heavy := heavyArrivals(t, e, start)
		checkWindows(t, "heavy", heavy, castleserver.DefaultLimits)
		// 25 events at 10 per 5.1 s: the 21st cannot go before 10.2 s.
		if d := heavy[len(heavy)-1].Sub(start); d < 10200*time.Millisecond {
			t.Errorf("heavy user done after %v, want >= 10.2s", d)
		}
		if got := counter(t, e.reg, "castle_destination_castle_pacing_waits_total"); got < 1 {
			t.Errorf("pacing_waits_total = %v", got)
		}
	})
}

// Submitting to a closed client, or with a context already done, settles
// everything at once from another goroutine, possibly before Submit has
// returned: that must not race with Submit's own bookkeeping.
func TestSubmitSettledAtOnce(t *testing.T) {
	e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
	defer e.stop()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 2000 {
		r := deliver(e.c, done, []destination.Event{event("u", i)})
		if r[0].Status != destination.Canceled {
			t.Fatalf("submit %d with a done context: %v %v", i, r[0].Status, r[0].Err)
		}
	}
	e.c.Close()
	for i := range 2000 {
		r := deliver(e.c, context.Background(), []destination.Event{event("u", i)})
		if r[0].Status != destination.Canceled || !errors.Is(r[0].Err, destination.ErrClosed) {
			t.Fatalf("submit %d after Close: %v %v", i, r[0].Status, r[0].Err)
		}
	}
}

// A user who sent little rests in a compact form between bursts, and is
// paced on waking as if it had kept its lane: two sends, then nine more
// 1.5 s later, and the eleventh must still wait for the first to leave
// the 10-per-5.1 s window. Users who sent once rest until their send
// leaves the longest window, then are forgotten. The server sends no
// X-RateLimit hints, which would hold u by themselves: the client's own
// memory of u's sends is what is tested.
func TestPacingRemembersRestingUsers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{RateLimitOff: true}, destination.Config{Retry: noJitter})
		defer e.stop()
		start := time.Now()
		evs := []destination.Event{event("u", 0), event("u", 1)}
		for i := range 200 {
			evs = append(evs, event("once"+strconv.Itoa(i), i))
		}
		deliverFirstTry(t, e, evs)
		if lanes, resting := e.c.PacedUsers(); lanes != 201 || resting != 0 {
			t.Fatalf("after the first sends: %d lanes, %d resting; want 201 lanes (no sweep yet)", lanes, resting)
		}

		time.Sleep(1500 * time.Millisecond)
		evs = evs[:0]
		for i := range 9 {
			evs = append(evs, event("u", 2+i))
		}
		p := submit(e.c, context.Background(), evs)
		// The submit swept: everyone rested, then u woke for its events.
		if lanes, resting := e.c.PacedUsers(); lanes != 1 || resting != 200 {
			t.Errorf("after the sweep: %d lanes, %d resting; want 1 and 200", lanes, resting)
		}
		for i, r := range p.Wait() {
			if r.Status != destination.Delivered || r.Attempts != 1 {
				t.Errorf("event %d: %v after %d attempts", i, r.Status, r.Attempts)
			}
		}
		var u []time.Time
		for _, rec := range e.srv.Accepted() {
			if rec.UserID == "u" {
				u = append(u, rec.ReceivedAt)
			}
		}
		checkWindows(t, "u", u, castleserver.DefaultLimits)
		if d := u[len(u)-1].Sub(start); d < 5100*time.Millisecond {
			t.Errorf("u's eleventh event sent after %v, want >= 5.1s", d)
		}

		// Past the longest window of u's last send, a sweep forgets all.
		time.Sleep(6 * time.Second)
		deliverFirstTry(t, e, []destination.Event{event("", 0)})
		if lanes, resting := e.c.PacedUsers(); lanes != 0 || resting != 0 {
			t.Errorf("after every window passed: %d lanes, %d resting; want none", lanes, resting)
		}
	})
}

// StopSending lets the requests in flight finish and cancels, at once,
// every event not yet sent: waiting for its user's pacing, or waiting to
// be retried. An interrupted replay then stops in a round trip, not after
// its drain timeout.
func TestStopSendingCancelsWhatWasNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newServer(t, castleserver.Config{})
		srv.SetLatency(10 * time.Millisecond)
		// The user "slow" takes a second more: its request is in flight
		// when the client is stopped.
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if bytes.Contains(b, []byte(`"id":"slow"`)) {
				time.Sleep(time.Second)
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			srv.ServeHTTP(w, r)
		})
		retry := noJitter
		retry.Initial = 2 * time.Second
		e := startMem(t, h, destination.Config{Retry: retry})
		defer e.stop()
		var evs []destination.Event
		for i := range 20 {
			evs = append(evs, event("heavy", i)) // 10 go in the first 1.1 s, the rest after 5 s
		}
		for i := range 10 {
			evs = append(evs, event("light"+strconv.Itoa(i), i))
		}
		srv.FailNext(2, castleserver.Status(503)) // two events wait 2 s for their retry
		p := submit(e.c, context.Background(), evs)
		time.Sleep(1400 * time.Millisecond)
		slow := submit(e.c, context.Background(), []destination.Event{event("slow", 1)})
		time.Sleep(100 * time.Millisecond)
		stopAt := time.Now()
		e.c.StopSending()
		res := p.Wait()
		if took := time.Since(stopAt); took > 50*time.Millisecond {
			t.Errorf("settled %v after StopSending, want at once: nothing of the batch was in flight", took)
		}
		var delivered, stopped int
		for i, r := range res {
			switch {
			case r.Status == destination.Delivered:
				delivered++
			case r.Status == destination.Canceled && errors.Is(r.Err, destination.ErrStopped):
				stopped++
			default:
				t.Errorf("event %d: %v %v, want delivered or canceled as stopped", i, r.Status, r.Err)
			}
		}
		// At most 10 of the heavy user's went before the stop, and the two
		// answered 503 were waiting for their retry.
		if accepted := srv.Stats().Accepted; delivered != int(accepted) || stopped < 12 {
			t.Errorf("delivered %d (Castle accepted %d), canceled %d; want the rest of the heavy user's and the two retries canceled", delivered, accepted, stopped)
		}
		// The request in flight at the stop finishes.
		if r := slow.Wait()[0]; r.Status != destination.Delivered {
			t.Errorf("the event in flight at the stop: %v %v, want delivered", r.Status, r.Err)
		}
		if took := time.Since(stopAt); took < 900*time.Millisecond {
			t.Errorf("the request in flight settled %v after the stop, before its answer", took)
		}
		// Later events are not sent.
		late := time.Now()
		r := deliver(e.c, context.Background(), []destination.Event{event("late", 1)})
		if r[0].Status != destination.Canceled || !errors.Is(r[0].Err, destination.ErrStopped) || time.Since(late) > 0 {
			t.Errorf("an event submitted after StopSending: %v %v after %v, want canceled as stopped at once", r[0].Status, r[0].Err, time.Since(late))
		}
	})
}

// Waiting counts the users whose next event waits for their pacing: a
// replay shows it while a heavy user is paced.
func TestWaitingCountsPacedUsers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMemServer(t, castleserver.Config{}, destination.Config{Retry: noJitter})
		defer e.stop()
		var evs []destination.Event
		for i := range 12 {
			evs = append(evs, event("heavy", i), event("other", i))
		}
		p := submit(e.c, context.Background(), evs)
		time.Sleep(500 * time.Millisecond) // 6 each sent; both wait for the next second
		if got := e.c.Waiting(); got != 2 {
			t.Errorf("Waiting() = %d while two users are paced, want 2", got)
		}
		p.Wait()
		if got := e.c.Waiting(); got != 0 {
			t.Errorf("Waiting() = %d after everything was delivered, want 0", got)
		}
	})
}
