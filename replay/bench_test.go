package replay_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
		m := mapping.New(mapping.Config{Secret: []byte(secret)}, mapping.NewDedupe(1_000_000), mapping.NewUsers(100_000))
		start := time.Now()
		sum, err := replay.Run(context.Background(), &replay.Files{Inputs: inputs}, replay.Config{
			Pipeline: pipeline.Config{}, Mapper: m, Deliverer: dry, Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
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
