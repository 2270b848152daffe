// Command bench measures castle-destination end to end on this machine:
// an in-process Kafka-protocol broker (kfake) and the Castle-compatible API
// on loopback, N preloaded realistic messages, the real worker, and a
// report of events/s, Castle request latency, CPU per million events and
// peak RSS, as a table and as JSON.
//
//	go run ./cmd/bench                    # 500,000 messages
//	go run ./cmd/bench -messages 100000 -json bench.json
//	go run ./cmd/bench -messages 1000000 -worker-process
//	go run ./cmd/bench -worker-process -latency 30ms  # Castle a network away
//
// By default everything runs in one process, so CPU and RSS include the
// broker and the API server, not only the worker: they are upper bounds.
// With -worker-process the worker runs in a child process and CPU and peak
// RSS are its own; throughput is also reported per quarter of the events,
// to show whether it holds steady over a long backlog. -latency delays
// every answer of the Castle API, as a Castle a network away does; the
// report then shows the adaptive concurrency limit, second by second.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/worker"
)

var (
	profileTo     string
	workerProcess bool
	castleLatency time.Duration
	castleTLS     bool
)

// Result is the JSON report.
type Result struct {
	Messages         int     `json:"messages"`
	Records          int     `json:"records"`
	Partitions       int     `json:"partitions"`
	EventsForwarded  int     `json:"events_forwarded"`
	Seconds          float64 `json:"seconds"`
	MessagesPerSec   float64 `json:"messages_per_second"`
	EventsPerSec     float64 `json:"events_per_second"`
	RequestP50Ms     float64 `json:"castle_request_p50_ms"`
	RequestP99Ms     float64 `json:"castle_request_p99_ms"`
	CPUSecPerMillion float64 `json:"cpu_seconds_per_million_events"`
	// GCCPUSecPerMillion is the garbage collector's part of it, as the
	// runtime estimates it (-worker-process only).
	GCCPUSecPerMillion float64 `json:"gc_cpu_seconds_per_million_events,omitempty"`
	PeakRSSMB          float64 `json:"peak_rss_mb"`
	BaselineRSSMB      float64 `json:"rss_before_worker_mb"`
	WorkerProcess      bool    `json:"worker_process"`
	// EventsPerSecByQuarter is the delivery rate over each quarter of the
	// events (-worker-process only).
	EventsPerSecByQuarter []float64 `json:"events_per_second_by_quarter,omitempty"`
	// CastleLatencyMs is the delay the Castle API added to every answer.
	CastleLatencyMs float64 `json:"castle_latency_ms"`
	// CastleTLS says the Castle API was served over HTTPS.
	CastleTLS bool `json:"castle_tls"`
	// ConcurrencyLimit is the client's adaptive concurrency limit, sampled
	// every second of the run.
	ConcurrencyLimit []float64 `json:"concurrency_limit_by_second"`
	GoMaxProcs       int       `json:"gomaxprocs"`
	GoVersion        string    `json:"go_version"`
}

func main() {
	if os.Getenv(childEnv) == "1" {
		childMain()
		return
	}
	n := flag.Int("messages", 500_000, "Kafka records to preload")
	partitions := flag.Int("partitions", 12, "partitions of the topic")
	seed := flag.Int64("seed", 1, "traffic seed")
	jsonOut := flag.String("json", "", "also write the result as JSON to this file")
	limits := flag.Bool("user-limits", false, "keep Castle's per-user rate limit (server) and pacing (client): then the busiest generated user, not the worker, sets the duration")
	env := flag.String("env", "", "extra worker settings, NAME=value,NAME=value (e.g. BATCH_SIZE=1000)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run (with -worker-process: of the worker) to this file")
	flag.BoolVar(&workerProcess, "worker-process", false, "run the worker in a child process: CPU and peak RSS are the worker's alone")
	memprofile := flag.String("memprofile", "", "with -worker-process: the worker writes its heap profile at its peak to this file")
	flag.DurationVar(&castleLatency, "latency", 0, "delay every answer of the Castle API by this much (Castle a network away, e.g. 30ms)")
	flag.BoolVar(&castleTLS, "tls", false, "serve the Castle API over HTTPS, as Castle is (with -worker-process: the worker trusts the run's certificate through SSL_CERT_FILE)")
	flag.Parse()
	if castleTLS && !workerProcess {
		fmt.Fprintln(os.Stderr, "bench: -tls needs -worker-process (the worker trusts the run's certificate through SSL_CERT_FILE, read when it starts)")
		os.Exit(2)
	}
	if *memprofile != "" {
		// The child inherits the environment.
		if err := os.Setenv(memProfileEnv, *memprofile); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if *cpuprofile != "" {
		profileTo = *cpuprofile
		if workerProcess {
			// Profile the worker, not the broker and the API server.
			if err := os.Setenv(cpuProfileEnv, *cpuprofile); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
		}
	}
	res, err := bench(*n, *partitions, *seed, *env, *limits)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "messages\t%d (%d records, %d partitions)\n", res.Messages, res.Records, res.Partitions)
	fmt.Fprintf(tw, "events forwarded\t%d\n", res.EventsForwarded)
	fmt.Fprintf(tw, "duration\t%.2f s\n", res.Seconds)
	fmt.Fprintf(tw, "throughput\t%.0f messages/s, %.0f events/s to Castle\n", res.MessagesPerSec, res.EventsPerSec)
	over := "HTTP"
	if res.CastleTLS {
		over = "HTTPS"
	}
	fmt.Fprintf(tw, "Castle request latency\tp50 %.2f ms, p99 %.2f ms (the API adds %.0f ms; over %s)\n", res.RequestP50Ms, res.RequestP99Ms, res.CastleLatencyMs, over)
	fmt.Fprintf(tw, "concurrency limit by second\t%.0f\n", res.ConcurrencyLimit)
	if res.WorkerProcess {
		fmt.Fprintf(tw, "throughput by quarter\t%.0f events/s\n", res.EventsPerSecByQuarter)
		fmt.Fprintf(tw, "CPU per million events\t%.1f s (worker process; the garbage collector %.1f s)\n", res.CPUSecPerMillion, res.GCCPUSecPerMillion)
		fmt.Fprintf(tw, "peak RSS\t%.0f MB (worker process; the broker process holds %.0f MB)\n", res.PeakRSSMB, res.BaselineRSSMB)
	} else {
		fmt.Fprintf(tw, "CPU per million events\t%.1f s (whole process)\n", res.CPUSecPerMillion)
		fmt.Fprintf(tw, "peak RSS\t%.0f MB (whole process; %.0f MB before the worker started: broker holding the messages)\n", res.PeakRSSMB, res.BaselineRSSMB)
	}
	fmt.Fprintf(tw, "machine\tGOMAXPROCS=%d, %s\n", res.GoMaxProcs, res.GoVersion)
	tw.Flush()
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

func bench(n, partitions int, seed int64, extra string, limits bool) (Result, error) {
	res := Result{Records: n, Partitions: partitions, GoMaxProcs: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	env, err := harness.Start(harness.Options{Partitions: partitions, Castle: castleserver.Config{MaxRecords: 1, RateLimitOff: !limits}, TLS: castleTLS})
	if err != nil {
		return res, err
	}
	defer env.Close()
	env.Castle.SetLatency(castleLatency)
	res.CastleLatencyMs = float64(castleLatency) / float64(time.Millisecond)
	res.CastleTLS = castleTLS
	fmt.Fprintf(os.Stderr, "generating and producing %d records...\n", n)
	ctx := context.Background()
	gen := harness.NewGenerator(seed, n, time.Now())
	var want traffic.Tally
	for left := n; left > 0; {
		chunk := make([]traffic.Record, 0, min(left, 20_000))
		for range cap(chunk) {
			r := gen.Next()
			want.Add(r)
			chunk = append(chunk, r)
		}
		if err := env.Produce(ctx, chunk); err != nil {
			return res, err
		}
		left -= len(chunk)
	}
	runtime.GC()
	// Measure the peak RSS of the run, not of generating the messages.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	res.BaselineRSSMB = procMB("/proc/self/status", "VmRSS:")
	res.Messages = want.Total()
	overrides := map[string]string{"LOG_LEVEL": "warn"}
	for _, kv := range strings.Split(extra, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			overrides[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if workerProcess {
		forwardable := 0
		for _, v := range want.Forward {
			forwardable += v
		}
		fmt.Fprintf(os.Stderr, "running the worker process over %d messages...\n", res.Messages)
		if err := runChild(ctx, env, overrides, limits, forwardable, &res); err != nil {
			return res, err
		}
		res.MessagesPerSec = float64(res.Messages) / res.Seconds
		res.EventsPerSec = float64(res.EventsForwarded) / res.Seconds
		return res, nil
	}
	cfg, err := env.Config(overrides)
	if err != nil {
		return res, err
	}
	// A plain registry: the Go and process collectors would add the cost
	// of reading /proc to every poll of the counters.
	reg := prometheus.NewRegistry()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	if profileTo != "" {
		f, err := os.Create(profileTo)
		if err != nil {
			return res, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	fmt.Fprintf(os.Stderr, "running the worker over %d messages...\n", res.Messages)
	opt := worker.Options{Registry: reg}
	if !limits {
		opt.UserRate = &destination.UserRate{Off: true}
	}
	go func() { done <- worker.Run(runCtx, cfg, opt) }()
	stopSampling := sampleLimit(reg)
	if os.Getenv("BENCH_TRACE") != "" {
		go func() {
			for range time.Tick(time.Second) {
				mfs, _ := reg.Gather()
				var line []string
				for _, mf := range mfs {
					switch mf.GetName() {
					case "castle_destination_messages_consumed_total", "castle_destination_in_flight_events",
						"castle_destination_castle_requests_in_flight", "castle_destination_consumer_in_flight", "castle_destination_castle_pacing_waits_total":
						v := 0.0
						for _, m := range mf.GetMetric() {
							v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
						}
						line = append(line, fmt.Sprintf("%s=%.0f", strings.TrimPrefix(mf.GetName(), "castle_destination_"), v))
					}
				}
				fmt.Fprintln(os.Stderr, strings.Join(line, " "))
			}
		}()
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	got, werr := harness.WaitSettled(waitCtx, reg, res.Messages)
	cancel()
	elapsed := time.Since(start)
	cpu := cpuSeconds() - cpu0
	res.ConcurrencyLimit = stopSampling()
	stop()
	if err := <-done; err != nil {
		return res, err
	}
	if werr != nil {
		return res, werr
	}
	st := env.Castle.Stats()
	fmt.Fprintf(os.Stderr, "Castle API: %d requests, %d accepted, by status %v, faults %v\n", st.Requests, st.Accepted, st.ByStatus, st.Faults)
	for _, v := range got.Forwarded {
		res.EventsForwarded += v
	}
	res.Seconds = elapsed.Seconds()
	res.MessagesPerSec = float64(res.Messages) / res.Seconds
	res.EventsPerSec = float64(res.EventsForwarded) / res.Seconds
	res.CPUSecPerMillion = cpu / float64(max(res.EventsForwarded, 1)) * 1e6
	res.PeakRSSMB = peakRSSMB()
	res.RequestP50Ms, res.RequestP99Ms = latency(reg)
	return res, nil
}

// latency reads p50 and p99 of successful Castle requests from the
// client's histogram.
func latency(g prometheus.Gatherer) (p50, p99 float64) {
	mfs, err := g.Gather()
	if err != nil {
		return math.NaN(), math.NaN()
	}
	type bucket struct{ le, n float64 }
	var buckets []bucket
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "castle_destination_castle_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" && l.GetValue() == "2xx" {
					ok = true
				}
			}
			if !ok {
				continue
			}
			h := m.GetHistogram()
			total = float64(h.GetSampleCount())
			for _, b := range h.GetBucket() {
				buckets = append(buckets, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
			}
		}
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	q := func(f float64) float64 {
		want := f * total
		prevLe, prevN := 0.0, 0.0
		for _, b := range buckets {
			if b.n >= want {
				if b.n == prevN {
					return b.le * 1000
				}
				return (prevLe + (b.le-prevLe)*(want-prevN)/(b.n-prevN)) * 1000
			}
			prevLe, prevN = b.le, b.n
		}
		return math.Inf(1)
	}
	return q(0.5), q(0.99)
}

// sampleLimit reads the Castle client's concurrency limit from g every
// second until the returned func is called; that returns the samples.
func sampleLimit(g prometheus.Gatherer) func() []float64 {
	quit := make(chan struct{})
	out := make(chan []float64, 1)
	go func() {
		var series []float64
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				out <- series
				return
			case <-t.C:
			}
			mfs, err := g.Gather()
			if err != nil {
				continue
			}
			for _, mf := range mfs {
				if mf.GetName() == "castle_destination_castle_concurrency_limit" {
					for _, m := range mf.GetMetric() {
						series = append(series, m.GetGauge().GetValue())
					}
				}
			}
		}
	}()
	return func() []float64 { close(quit); return <-out }
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func peakRSSMB() float64 { return procMB("/proc/self/status", "VmHWM:") }

// procMB reads a kB field of a /proc/PID/status file, in MB.
func procMB(status, field string) float64 {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}
