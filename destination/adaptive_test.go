package destination_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
)

// users returns n events of n distinct users, so per-user pacing never
// binds.
func users(prefix string, n int) []destination.Event {
	evs := make([]destination.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("%s%d", prefix, i), i)
	}
	return evs
}

// limitGauge reads castle_destination_castle_concurrency_limit.
func limitGauge(t *testing.T, e *env) int {
	t.Helper()
	return int(counter(t, e.reg, "castle_destination_castle_concurrency_limit"))
}

// rate is the server's accepted requests per second between the arrivals
// of the from-th and the to-th fraction of them.
func rate(t *testing.T, acc []castleserver.Received, from, to float64) float64 {
	t.Helper()
	times := make([]time.Time, len(acc))
	for i, r := range acc {
		times[i] = r.ReceivedAt
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	i, j := int(from*float64(len(times))), int(to*float64(len(times)))-1
	d := times[j].Sub(times[i])
	if d <= 0 {
		t.Fatalf("accepted %d..%d at the same instant", i, j)
	}
	return float64(j-i) / d.Seconds()
}

// At a fixed latency and with capacity to spare, the limit climbs to the
// ceiling within a few round trips, and the client delivers at the
// ceiling over the latency, the most it may.
func TestAdaptiveConcurrencyFixedLatency(t *testing.T) {
	const ceiling = 256
	for _, latency := range []time.Duration{0, time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond} {
		t.Run(latency.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := startMemServer(t, castleserver.Config{}, destination.Config{Concurrency: ceiling, Retry: noJitter})
				defer e.stop()
				e.srv.SetLatency(latency)
				if got := limitGauge(t, e); got != 32 {
					t.Errorf("limit gauge %d at start, want 32", got)
				}
				evs := users("u", 8000)
				start := time.Now()
				for i, r := range deliver(e.c, context.Background(), evs) {
					if r.Status != destination.Delivered || r.Attempts != 1 {
						t.Fatalf("event %d: %v after %d attempts", i, r.Status, r.Attempts)
					}
				}
				took := time.Since(start)
				if latency == 0 {
					// No time passes: nothing to adapt to.
					if took != 0 {
						t.Errorf("took %v with no latency", took)
					}
					return
				}
				if got := e.c.ConcurrencyLimit(); got != ceiling {
					t.Errorf("limit %d after %d events, want the ceiling %d", got, len(evs), ceiling)
				}
				if got := limitGauge(t, e); got != e.c.ConcurrencyLimit() {
					t.Errorf("limit gauge %d, ConcurrencyLimit %d", got, e.c.ConcurrencyLimit())
				}
				bound := ceiling / latency.Seconds()
				if got := rate(t, e.srv.Accepted(), 0.25, 0.95); got < 0.95*bound {
					t.Errorf("%.0f events/s in steady state, want >= 95%% of %d / %v = %.0f", got, ceiling, latency, bound)
				}
				// Ramping up from 32 costs a few round trips, not seconds.
				if ideal := time.Duration(float64(len(evs)) / bound * float64(time.Second)); took > ideal+20*latency {
					t.Errorf("took %v, want within 20 round trips of the ideal %v", took, ideal)
				}
			})
		})
	}
}

// pause waits d, or until the request is canceled (a handler that sleeps
// through the server's Close would outlive a synctest bubble). It reads
// the body first: the server notices a closed connection, and cancels the
// request, only once the body is read.
func pause(r *http.Request, d time.Duration) {
	_, _ = io.Copy(io.Discard, r.Body)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// capped is Castle with a capacity that can drop: beyond cap requests in
// flight (0: no cap) it answers 503 (after the same latency as any
// answer), or, with queue, serves them in turn, cap at a time, so that the
// latency grows with the queue.
type capped struct {
	srv     *castleserver.Server
	latency time.Duration
	queue   bool
	cap     atomic.Int32
	cur     atomic.Int32
	slots   chan struct{}
}

func (h *capped) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.cur.Add(1)
	defer h.cur.Add(-1)
	if c := h.cap.Load(); c > 0 {
		if !h.queue && n > c {
			pause(r, h.latency)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"type":"service_unavailable","message":"over capacity"}`)
			return
		}
		if h.queue {
			select {
			case h.slots <- struct{}{}:
				defer func() { <-h.slots }()
			case <-r.Context().Done():
				return
			}
		}
	}
	h.srv.ServeHTTP(w, r)
}

// When Castle's capacity drops mid-run, the limit comes down to about the
// new capacity (not to 1), delivery goes on at about that capacity, and
// once the capacity is back the limit climbs back to the ceiling. Nothing
// is lost on the way.
func TestAdaptiveConcurrencyCapacityDrop(t *testing.T) {
	const ceiling, capacity, latency = 64, 16, 30 * time.Millisecond
	for _, mode := range []string{"503", "queue"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newServer(t, castleserver.Config{})
				srv.SetLatency(latency)
				h := &capped{srv: srv, latency: latency, queue: mode == "queue", slots: make(chan struct{}, capacity)}
				e := startMem(t, h, destination.Config{Concurrency: ceiling})
				defer func() { e.stop(); srv.Close() }()
				ctx, cancel := context.WithCancel(context.Background())
				p := submit(e.c, ctx, users("u", 40_000))

				time.Sleep(time.Second)
				if got := limitGauge(t, e); got != ceiling {
					t.Fatalf("limit %d at full capacity, want the ceiling %d", got, ceiling)
				}

				h.cap.Store(capacity)
				time.Sleep(3 * time.Second) // settle: a cut per round trip or two
				before := srv.Stats().Accepted
				lo, hi := ceiling, 0
				for range 30 {
					time.Sleep(100 * time.Millisecond)
					n := limitGauge(t, e)
					lo, hi = min(lo, n), max(hi, n)
				}
				served := float64(srv.Stats().Accepted-before) / 3
				t.Logf("at capacity %d: limit within [%d, %d], %.0f events/s", capacity, lo, hi, served)
				// 503 beyond the capacity: the limit saws between 0.8 and
				// about 1x the capacity. Queueing: a latency up to 1.5x the
				// base plus 2 ms is fine, so up to 1.57x the capacity.
				if lo < capacity/2 || hi > 2*capacity {
					t.Errorf("limit ranged over [%d, %d] at capacity %d, want within [%d, %d]", lo, hi, capacity, capacity/2, 2*capacity)
				}
				if full := capacity / latency.Seconds(); served < 0.7*full {
					t.Errorf("%.0f events/s at capacity %d, want >= 70%% of %.0f", served, capacity, full)
				}

				h.cap.Store(0)
				back := time.Now()
				for limitGauge(t, e) < ceiling {
					if time.Since(back) > 5*time.Second {
						t.Fatalf("limit %d 5 s after the capacity came back, want the ceiling %d", limitGauge(t, e), ceiling)
					}
					time.Sleep(10 * time.Millisecond)
				}
				t.Logf("limit back at the ceiling after %v", time.Since(back))

				cancel()
				delivered := 0
				for i, r := range p.Wait() {
					switch r.Status {
					case destination.Delivered:
						delivered++
					case destination.Canceled:
					default:
						t.Fatalf("event %d: %v (%v)", i, r.Status, r.Err)
					}
				}
				// Requests in flight at the cancel may have been accepted.
				if got := srv.Stats().Accepted; got < int64(delivered) || got > int64(delivered+ceiling) {
					t.Errorf("server accepted %d, client delivered %d", got, delivered)
				}
				if mode == "503" && counter(t, e.reg, "castle_destination_castle_requests_total", "class", "5xx") == 0 {
					t.Error("no 503 was answered: the test did not test")
				}
			})
		})
	}
}

// feed submits 2,400 events/s of distinct users until ctx ends (against
// at most 64 / 30 ms = 2,133 delivered, so the limit binds and the backlog
// stays short); the returned function waits for every event to settle.
func feed(ctx context.Context, c *destination.Client) (wait func()) {
	fed := make(chan []*pending, 1)
	go func() {
		var ps []*pending
		for i := 0; ctx.Err() == nil; i++ {
			ps = append(ps, submit(c, ctx, users(fmt.Sprintf("u%d-", i), 24)))
			time.Sleep(10 * time.Millisecond)
		}
		fed <- ps
	}()
	return func() {
		for _, p := range <-fed {
			p.Wait()
		}
	}
}

// A 429 for one user's own budget is for per-user pacing: it does not
// bring the global limit down. (TestCapacitySignal pins the rule; here it
// is seen end to end.)
func TestAdaptiveConcurrencyPerUser429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ceiling = 64
		srv := newServer(t, castleserver.Config{})
		srv.SetLatency(30 * time.Millisecond)
		var refused atomic.Int32
		start := time.Now()
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if bytes.Contains(b, []byte(`"id":"heavy`)) && time.Since(start) < 3*time.Second {
				refused.Add(1)
				// Castle says this user's budget is spent.
				w.Header().Set("X-RateLimit-Limit", "10")
				w.Header().Set("X-RateLimit-Remaining", "0")
				w.Header().Set("X-RateLimit-Reset", "0")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			srv.ServeHTTP(w, r)
		})
		e := startMem(t, h, destination.Config{Concurrency: ceiling, Retry: noJitter})
		defer func() { e.stop(); srv.Close() }()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		wait := feed(ctx, e.c)
		defer func() { cancel(); wait() }()
		time.Sleep(time.Second)
		if got := limitGauge(t, e); got != ceiling {
			t.Fatalf("limit %d, want the ceiling %d before any 429", got, ceiling)
		}
		var heavy []destination.Event
		for i := range 10 {
			heavy = append(heavy, event("heavy1", i), event("heavy2", i))
		}
		ph := submit(e.c, ctx, heavy)
		lo := ceiling
		for range 60 {
			time.Sleep(50 * time.Millisecond)
			lo = min(lo, limitGauge(t, e))
		}
		// Each heavy user's head event retries at a doubling backoff.
		if got := refused.Load(); got < 6 {
			t.Fatalf("server refused %d requests of the heavy users, want several", got)
		}
		if lo != ceiling {
			t.Errorf("limit went down to %d from %d on per-user 429s", lo, ceiling)
		}
		if got := counter(t, e.reg, "castle_destination_castle_throttled"); got != 0 {
			t.Errorf("per-user 429s throttled the account")
		}
		for i, r := range ph.Wait() {
			if r.Status != destination.Delivered {
				t.Errorf("heavy event %d: %v (%v)", i, r.Status, r.Err)
			}
		}
	})
}

// An account limit: Castle answers 429, for no user in particular, to
// requests beyond 16 in flight. The limit comes down towards it.
func TestAdaptiveConcurrencyAccountWide429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ceiling, capacity, latency = 64, 16, 30 * time.Millisecond
		srv := newServer(t, castleserver.Config{})
		srv.SetLatency(latency)
		var cur, refused atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := cur.Add(1)
			defer cur.Add(-1)
			if n > capacity {
				pause(r, latency)
				refused.Add(1)
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			srv.ServeHTTP(w, r)
		})
		e := startMem(t, h, destination.Config{Concurrency: ceiling})
		defer func() { e.stop(); srv.Close() }()
		ctx, cancel := context.WithCancel(context.Background())
		wait := feed(ctx, e.c)
		defer func() { cancel(); wait() }()
		time.Sleep(5 * time.Second)
		hi := 0
		for range 30 {
			time.Sleep(100 * time.Millisecond)
			hi = max(hi, limitGauge(t, e))
		}
		if refused.Load() == 0 {
			t.Fatal("no 429 was answered: the test did not test")
		}
		t.Logf("limit up to %d, %d refused, throttled %v", hi, refused.Load(), counter(t, e.reg, "castle_destination_castle_throttled"))
		if hi > 2*capacity {
			t.Errorf("limit up to %d under an account limit of %d in flight, want <= %d", hi, capacity, 2*capacity)
		}
	})
}
