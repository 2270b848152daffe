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

// BenchmarkNetHTTPCeiling is the reference point for BenchmarkDeliver: the
// bare standard library POSTing the same body over kept-alive loopback
// connections to a handler that only answers 204. No client built on
// net/http can beat it on the same machine. With 64 requests in flight it
// is the bare client of the peer bench; with 1,024, what the adaptive
// limit reaches with Castle 30 ms away. Over TLS too, as to Castle.
// cpu-µs/req is the process's CPU time (client and server) per request:
// it shows what each connection in use costs.
func BenchmarkNetHTTPCeiling(b *testing.B) {
	for _, tls := range []bool{false, true} {
		for _, inflight := range []int{64, 1024} {
			b.Run(fmt.Sprintf("tls=%v/inflight=%d", tls, inflight), func(b *testing.B) { benchNetHTTP(b, tls, inflight) })
		}
	}
}

func benchNetHTTP(b *testing.B, useTLS bool, inflight int) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	tr := destination.NewTransport(inflight)
	if useTLS {
		ts.StartTLS()
		tr.TLSClientConfig.RootCAs = x509.NewCertPool()
		tr.TLSClientConfig.RootCAs.AddCert(ts.Certificate())
	} else {
		ts.Start()
	}
	defer ts.Close()
	hc := &http.Client{Transport: tr}
	defer hc.CloseIdleConnections()
	body := benchBody("u")
	b.SetParallelism(inflight / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/log", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
