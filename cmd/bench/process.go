package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/harness"
	"github.com/castle-destination/castle-destination/ops"
	"github.com/castle-destination/castle-destination/worker"
)

// With -worker-process the worker runs in a child process (this binary,
// re-executed with childEnv set), so that its CPU time and peak RSS are
// measured apart from the broker's and the Castle API's.
const childEnv = "CASTLE_BENCH_WORKER_CHILD"

// childReport is what the child prints on stdout when it stops.
type childReport struct {
	// GCCPUSeconds is the runtime's estimate of the CPU its garbage
	// collector used.
	GCCPUSeconds float64 `json:"gc_cpu_seconds"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// Limit is the concurrency limit, sampled every second.
	Limit []float64 `json:"limit"`
}

// childMain runs the worker from the environment until SIGTERM, then
// reports its request latency.
func childMain() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := harness.ParseConfig(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		os.Exit(2)
	}
	// The runtime settings castle-destination run applies.
	for _, note := range ops.TuneRuntime(os.Getenv) {
		fmt.Fprintln(os.Stderr, "bench worker:", note)
	}
	reg := prometheus.NewRegistry()
	opt := worker.Options{Registry: reg}
	if limits, _ := strconv.ParseBool(os.Getenv("CASTLE_BENCH_USER_LIMITS")); !limits {
		opt.UserRate = &destination.UserRate{Off: true}
	}
	if path := os.Getenv(memProfileEnv); path != "" {
		go writeHeapProfiles(ctx, path)
	}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench worker: cpu profile:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	stopSampling := sampleLimit(reg)
	if err := worker.Run(ctx, cfg, opt); err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		os.Exit(1)
	}
	var r childReport
	r.Limit = stopSampling()
	r.P50Ms, r.P99Ms = latency(reg)
	gc := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gc)
	if gc[0].Value.Kind() == metrics.KindFloat64 {
		r.GCCPUSeconds = gc[0].Value.Float64()
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

// memProfileEnv names the file the child writes its heap profile to: it is
// rewritten whenever the heap in use reaches a new high (checked every
// second), so it shows the heap at its peak.
const memProfileEnv = "CASTLE_BENCH_MEMPROFILE"

// cpuProfileEnv names the file the child writes its CPU profile to.
const cpuProfileEnv = "CASTLE_BENCH_CPUPROFILE"

func writeHeapProfiles(ctx context.Context, path string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var peak uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= peak {
			continue
		}
		peak = ms.HeapInuse
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench worker: heap profile:", err)
			return
		}
		runtime.GC() // the profile shows the heap as of the last collection
		if err := pprof.WriteHeapProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench worker: heap profile:", err)
		}
		f.Close()
	}
}

// runChild runs the worker as a child process over the preloaded topic:
// it times delivery of the forwardable events as the Castle API counts
// them, waits for the commits to reach the log end, stops the child with
// SIGTERM and reads its resource usage.
func runChild(ctx context.Context, env *harness.Env, overrides map[string]string, limits bool, forwardable int, res *Result) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	vars := env.Vars(overrides)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1", "CASTLE_BENCH_USER_LIMITS="+strconv.FormatBool(limits))
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	reports := make(chan childReport, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		var r childReport
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				break
			}
		}
		reports <- r
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func() { _ = cmd.Process.Kill(); <-exited }

	// Quarter marks: when 25, 50, 75 and 100 % of the events arrived.
	var marks []time.Duration
	deadline := time.Now().Add(30 * time.Minute)
	for len(marks) < 4 {
		n := int(env.Castle.Stats().Accepted)
		for len(marks) < 4 && n >= forwardable*(len(marks)+1)/4 {
			marks = append(marks, time.Since(start))
		}
		select {
		case err := <-exited:
			return fmt.Errorf("worker process exited after %d of %d events: %v", n, forwardable, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			kill()
			return fmt.Errorf("only %d of %d events delivered in 30 minutes", n, forwardable)
		}
	}
	res.Seconds = marks[3].Seconds()
	prev := time.Duration(0)
	for _, m := range marks {
		res.EventsPerSecByQuarter = append(res.EventsPerSecByQuarter, float64(forwardable)/4/(m-prev).Seconds())
		prev = m
	}

	cfg, err := env.Config(overrides)
	if err != nil {
		kill()
		return err
	}
	cctx, cancel := context.WithDeadline(ctx, start.Add(30*time.Minute))
	defer cancel()
	if err := env.WaitCommitted(cctx, cfg.Kafka.GroupID); err != nil {
		kill()
		return err
	}

	// Not the rusage of the exited child: Linux carries the parent's peak
	// RSS into it across the fork and exec. VmHWM belongs to the new image.
	res.PeakRSSMB = procMB(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid), "VmHWM:")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		kill()
		return err
	}
	if err := <-exited; err != nil {
		return fmt.Errorf("worker process: %w", err)
	}
	r := <-reports
	res.RequestP50Ms, res.RequestP99Ms = r.P50Ms, r.P99Ms
	res.ConcurrencyLimit = r.Limit
	st := cmd.ProcessState
	res.CPUSecPerMillion = (st.UserTime() + st.SystemTime()).Seconds() / float64(max(forwardable, 1)) * 1e6
	res.GCCPUSecPerMillion = r.GCCPUSeconds / float64(max(forwardable, 1)) * 1e6
	res.EventsForwarded = forwardable
	res.WorkerProcess = true
	return nil
}
