package replay_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/deadletter"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
	"github.com/castle-destination/castle-destination/replay"
)

// TestInterruptDrainsInFlightEvents interrupts a replay while its first
// batches are being delivered. Events that settle within the drain time
// are delivered and marked done (a resume skips them); events still
// unsettled at the drain timeout are canceled, not marked done, and the
// replay returns at the timeout; at once while delivery is held (Castle
// refuses everything, so nothing in flight can settle).
func TestInterruptDrainsInFlightEvents(t *testing.T) {
	for _, tc := range []struct {
		name         string
		delay, drain time.Duration
		canceled     bool
		held         string // what Config.Held says
	}{
		{"settles within the drain time", 10 * time.Second, 25 * time.Second, false, ""},
		{"canceled at the drain timeout", time.Minute, 25 * time.Second, true, ""},
		{"canceled at once while held", time.Minute, 25 * time.Second, true, "auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var lines []byte
			for i := range 400 {
				lines = append(lines, []byte(`{"type":"track","event":"E","channel":"client","messageId":"d-`+itoa(i)+`","userId":"u`+itoa(i)+`","properties":{"trace_id":"d-`+itoa(i)+`"},"context":{"library":{"name":"analytics.js"}}}`+"\n")...)
			}
			write(t, filepath.Join(dir, "d.ndjson"), lines)
			inputs, err := replay.Expand([]string{dir})
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(t.TempDir(), "cp.json")
			synctest.Test(t, func(t *testing.T) {
				ctx, interrupt := context.WithCancel(context.Background())
				defer interrupt()
				var once sync.Once
				var interruptedAt time.Time
				d := &slowDeliverer{delay: tc.delay, submitted: func() {
					once.Do(func() { interruptedAt = time.Now(); interrupt() })
				}}
				m := mapping.New(mapping.Config{Secret: []byte(secret)})
				sum, err := replay.Run(ctx, &replay.Files{Inputs: inputs}, replay.Config{
					Pipeline: pipeline.Config{Batch: destinationBatch()}, Mapper: m, Deliverer: d,
					DeadLetters: deadletter.SinkFunc(func(context.Context, ...deadletter.Letter) error { return nil }),
					Registry:    prometheus.NewRegistry(), Checkpoint: cp, DrainTimeout: tc.drain,
					Held: func() string { return tc.held },
				})
				took := time.Since(interruptedAt)
				if !errors.Is(err, replay.ErrInterrupted) {
					t.Fatalf("Run returned %v, want ErrInterrupted", err)
				}
				c, lerr := replay.LoadCheckpoint(cp)
				if lerr != nil {
					t.Fatal(lerr)
				}
				var next int64
				if len(c.Open) == 1 {
					next = c.Open[0].Next
				}
				if tc.canceled {
					if sum.Canceled == 0 || sum.Sent() != 0 || len(d.delivered) != 0 {
						t.Errorf("canceled %d, sent %d, delivered %d; want all canceled", sum.Canceled, sum.Sent(), len(d.delivered))
					}
					want := tc.drain
					if tc.held != "" {
						want = 0
					}
					if took != want {
						t.Errorf("returned %v after the interrupt, want %v", took, want)
					}
					if next != 0 {
						t.Errorf("the checkpoint marks %d canceled records done", next)
					}
					return
				}
				if sum.Canceled != 0 || sum.Sent() == 0 || sum.Sent() != len(d.delivered) {
					t.Errorf("canceled %d, summary sent %d, delivered %d; want every event in flight delivered and counted", sum.Canceled, sum.Sent(), len(d.delivered))
				}
				if took != tc.delay {
					t.Errorf("returned %v after the interrupt, want when the last batch settled (%v)", took, tc.delay)
				}
				if next != int64(sum.Consumed) {
					t.Errorf("the checkpoint marks %d records done, %d were read and settled", next, sum.Consumed)
				}
			})
		})
	}
}
