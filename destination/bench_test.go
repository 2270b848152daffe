package destination_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
)

// benchBody is a realistic mapped page event (about 600 bytes).
func benchBody(user string) []byte {
	return fmt.Appendf(nil, `{"type":"$page","user":{"id":%q,"email":"%s@example.com","traits":{"plan":"pro"}},`+
		`"properties":{"url":"https://shop.example.com/products/42?ref=mail","path":"/products/42",`+
		`"referrer":"https://mail.example.com/","title":"Product 42","name":"Product"},`+
		`"context":{"ip":"203.0.113.7","headers":{"User-Agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",`+
		`"Accept-Language":"en-US,en;q=0.9","Referer":"https://mail.example.com/"},"library":{"name":"castle-destination","version":"dev"}},`+
		`"created_at":"2026-11-01T12:00:00.000Z"}`, user, user)
}

// BenchmarkDeliver measures the client against castleserver on loopback:
// distinct users (pacing on, but not binding), the server validating and
// rate-limiting every request. inflight is how many batches the caller
// keeps in flight (the pipeline keeps several).
func BenchmarkDeliver(b *testing.B) {
	for _, bs := range []int{1, 100, 500} {
		for _, inflight := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/inflight=%d", bs, inflight), func(b *testing.B) {
				benchDeliver(b, bs, inflight)
			})
		}
	}
}

// BenchmarkDeliverLatency is delivery when Castle is a network away: the
// server answers every request after latency (30 ms stands for a worker in
// a cloud region talking to Castle's API). With no concurrency setting the
// client finds its own limit; "limit" is where it ended. "ceiling=64" is
// the fixed limit of 64 the client had before it adapted: it cannot exceed
// 64/latency events/s. Compare events/s across latencies within one run:
// on a shared machine the absolute figures move from run to run.
func BenchmarkDeliverLatency(b *testing.B) {
	run := func(b *testing.B, latency time.Duration, ceiling int) {
		e := startLoopback(b, castleserver.Config{MaxRecords: 1}, destination.Config{Concurrency: ceiling})
		e.srv.SetLatency(latency)
		runBench(b, e, 500, 4)
		b.ReportMetric(float64(e.c.ConcurrencyLimit()), "limit")
	}
	for _, latency := range []time.Duration{0, 30 * time.Millisecond, 60 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", latency), func(b *testing.B) { run(b, latency, 0) })
	}
	b.Run("latency=30ms/ceiling=64", func(b *testing.B) { run(b, 30*time.Millisecond, 64) })
}

// benchEvents are built once: 50k distinct users, so at 30k events/s each
// user sends 0.6 per second, well inside Castle's limits (pacing never
// binds, but every event goes through it).
var benchEvents = sync.OnceValue(func() []destination.Event {
	events := make([]destination.Event, 50_000)
	for i := range events {
		u := "user-" + strconv.Itoa(i)
		events[i] = destination.Event{Body: benchBody(u), UserID: u, Type: "page"}
	}
	return events
})

func benchDeliver(b *testing.B, batchSize, inflight int) {
	e := startLoopback(b, castleserver.Config{MaxRecords: 1}, destination.Config{})
	runBench(b, e, batchSize, inflight)
}

func runBench(b *testing.B, e *env, batchSize, inflight int) {
	events := benchEvents()
	pool := len(events)
	ctx := context.Background()
	failed := 0
	wait := func(p *pending) {
		for _, r := range p.Wait() {
			if r.Status != destination.Delivered {
				failed++
			}
		}
	}
	var queue []*pending // batches in flight, oldest first
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		off := sent % pool
		n := min(batchSize, b.N-sent, pool-off)
		sent += n
		if len(queue) == inflight {
			wait(queue[0])
			queue = queue[1:]
		}
		queue = append(queue, submit(e.c, ctx, events[off:off+n]))
	}
	for _, p := range queue {
		wait(p)
	}
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d events not delivered", failed)
	}
	if got := e.srv.Stats().Accepted; e.url != "" && got != int64(b.N) {
		b.Fatalf("server accepted %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkHTTPCeiling is the reference point for BenchmarkDeliver: one
// body POSTed over and over on kept-alive loopback connections to a
// net/http handler that only answers 204, by net/http's client (the peer
// bench's bare client, with 64 in flight) and by the Client's own HTTP/1.1
// connections. With 1,024 in flight, what the adaptive limit reaches with
// Castle 30 ms away. Over TLS too, as to Castle. cpu-µs/req is the
// process's CPU time (client and server) per request: it shows what each
// connection in use costs, and what the client costs beside the server.
func BenchmarkHTTPCeiling(b *testing.B) {
	for _, client := range []string{"net-http", "h1"} {
		for _, tls := range []bool{false, true} {
			for _, inflight := range []int{64, 1024} {
				b.Run(fmt.Sprintf("client=%s/tls=%v/inflight=%d", client, tls, inflight), func(b *testing.B) {
					benchHTTP(b, client, tls, inflight)
				})
			}
		}
	}
}

// benchHTTP posts one body over and over with inflight requests in flight
// to a net/http server that answers 204, with net/http's Transport as
// NewTransport tunes it (client "net-http", what the Client uses behind a
// proxy) or with the Client's own connections ("h1").
func benchHTTP(b *testing.B, client string, useTLS bool, inflight int) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	var roots *x509.CertPool
	if useTLS {
		ts.StartTLS()
		roots = x509.NewCertPool()
		roots.AddCert(ts.Certificate())
	} else {
		ts.Start()
	}
	defer ts.Close()
	post, closeIdle := netHTTPPost(ts.URL, roots, inflight)
	if client == "h1" {
		var err error
		if post, closeIdle, err = destination.H1Post(ts.URL, roots); err != nil {
			b.Fatal(err)
		}
	}
	defer closeIdle()
	body := benchBody("u")
	b.SetParallelism(inflight / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			code, err := post(body)
			if err != nil || code != http.StatusNoContent {
				b.Errorf("post: %d %v", code, err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
}

// netHTTPPost is H1Post with net/http's Transport.
func netHTTPPost(base string, roots *x509.CertPool, inflight int) (func([]byte) (int, error), func()) {
	tr := destination.NewTransport(inflight)
	tr.TLSClientConfig.RootCAs = roots
	hc := &http.Client{Transport: tr}
	return func(body []byte) (int, error) {
		resp, err := hc.Post(base+"/v1/log", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, hc.CloseIdleConnections
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
