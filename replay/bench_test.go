package replay_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/johannesboyne/gofakes3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/internal/traffic"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/replay"
)

// BenchmarkDryRunNDJSONGz replays REPLAY_BENCH_EVENTS (default 1,000,000)
// generated Segment messages from one .ndjson.gz file with --dry-run
// (bodies written to io.Discard), as `castle-destination replay --dry-run`
// does, and reports events/s and the process's peak RSS.
//
//	go test ./replay -run XXX -bench DryRun -benchtime 1x
func BenchmarkDryRunNDJSONGz(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("REPLAY_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	path := filepath.Join(b.TempDir(), "events.ndjson.gz")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	bw := bufio.NewWriterSize(zw, 1<<20)
	g := traffic.New(traffic.Config{Seed: 1, Secret: secret, Now: time.Now(), EnvelopeFraction: -1})
	for range n {
		r := g.Next()
		bw.Write(bytes.ReplaceAll(r.Value, []byte("\n"), []byte(" ")))
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	inputs, err := replay.Expand([]string{path})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		dry := replay.NewDryRun(io.Discard)
		m := mapping.New(mapping.Config{Secret: []byte(secret)})
		start := time.Now()
		sum, err := replay.Run(context.Background(), &replay.Files{Inputs: inputs}, replay.Config{
			Pipeline: pipeline.Config{DedupeSize: 1_000_000, UserCacheSize: 100_000}, Mapper: m, Deliverer: dry, Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
			DeadLetters: deadletter.SinkFunc(func(context.Context, ...deadletter.Letter) error { return nil }),
		})
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		if sum.Consumed != n {
			b.Fatalf("consumed %d of %d", sum.Consumed, n)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
		b.ReportMetric(float64(sum.Forwarded["page"]+sum.Forwarded["track"])/el.Seconds(), "events/s")
	}
	b.ReportMetric(peakRSSMB(), "peakRSS_MB")
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// s3ServerEnv makes the test binary serve a generated S3 archive instead
// of running tests: "objectsPerDay,perObject". The benchmark below runs it
// as a separate process, so that what it measures is the replay's memory,
// not the fake S3 server's.
const s3ServerEnv = "REPLAY_BENCH_S3_SERVER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(s3ServerEnv); spec != "" {
		os.Exit(serveS3Archive(spec))
	}
	os.Exit(m.Run())
}

// serveS3Archive serves the archive on loopback, prints its address and
// serves until its standard input closes.
func serveS3Archive(spec string) int {
	var perDay, perObject int
	if _, err := fmt.Sscanf(spec, "%d,%d", &perDay, &perObject); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_, be, err := buildS3Archive(perDay, perObject)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: gofakes3.New(be).Server(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Println("http://" + ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// BenchmarkS3ManyObjects replays a bucket of REPLAY_BENCH_OBJECTS (default
// 2,000) objects of 50 messages, served by an S3-compatible server in a
// separate process, with --dry-run and a checkpoint saved every 100 ms.
// It reports this process's peak RSS and its live heap, sampled after a
// GC every 100 ms: the median and the peak, in the first and in the
// second half of the run (flat memory: the second half holds no more than
// the first, and a bigger bucket no more than a small one). The mapping
// runs without its dedupe and user caches, whose size is their own
// setting; REPLAY_BENCH_IN_FLIGHT sets the pipeline's bound of events in
// flight (default 20,000), which holds most of what is live.
//
//	REPLAY_BENCH_OBJECTS=1000 go test ./replay -run XXX -bench S3ManyObjects -benchtime 1x
//	REPLAY_BENCH_OBJECTS=8000 go test ./replay -run XXX -bench S3ManyObjects -benchtime 1x
func BenchmarkS3ManyObjects(b *testing.B) {
	objects := 2000
	if s := os.Getenv("REPLAY_BENCH_OBJECTS"); s != "" {
		objects, _ = strconv.Atoi(s)
	}
	inFlight, _ := strconv.Atoi(os.Getenv("REPLAY_BENCH_IN_FLIGHT")) // 0: the pipeline's default
	perDay := max(1, objects/4/2)                                    // 4 days, 2 sources
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	server := exec.Command(exe, "-test.run=^$")
	server.Env = append(os.Environ(), fmt.Sprintf("%s=%d,50", s3ServerEnv, perDay))
	stdin, err := server.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := server.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	server.Stderr = os.Stderr
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); server.Wait() })
	endpoint, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(strings.TrimSpace(endpoint)), UsePathStyle: true, Region: "us-east-1",
		Credentials: aws.AnonymousCredentials{}, Logger: logging.Nop{},
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	b.ResetTimer()
	for b.Loop() {
		var samples []float64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					runtime.GC()
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					samples = append(samples, float64(int64(ms.HeapAlloc)-int64(base))/(1<<20))
				}
			}
		}()
		src := &replay.S3{Client: client, Bucket: bucket, Prefix: "segment-logs/"}
		m := mapping.New(mapping.Config{Secret: []byte(secret)})
		start := time.Now()
		sum, err := replay.Run(context.Background(), src, replay.Config{
			Pipeline: pipeline.Config{MaxInFlightEvents: inFlight}, Mapper: m, Deliverer: replay.NewDryRun(io.Discard), Registry: prometheus.NewRegistry(),
			DeadLetters: deadletter.SinkFunc(func(context.Context, ...deadletter.Letter) error { return nil }),
			Checkpoint:  filepath.Join(b.TempDir(), "cp.json"), SaveEvery: 100 * time.Millisecond,
		})
		close(stop)
		<-sampled
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		if len(samples) < 4 {
			b.Fatalf("only %d heap samples: use a bigger archive", len(samples))
		}
		half := len(samples) / 2
		b.ReportMetric(float64(sum.Progress.Total), "objects")
		b.ReportMetric(float64(sum.Consumed)/el.Seconds(), "records/s")
		b.ReportMetric(slices.Max(samples[:half]), "peak_live_1st_half_MB")
		b.ReportMetric(slices.Max(samples[half:]), "peak_live_2nd_half_MB")
		slices.Sort(samples)
		b.ReportMetric(samples[len(samples)/2], "median_live_MB")
	}
	b.ReportMetric(peakRSSMB(), "peakRSS_MB")
}
