package replay

import (
	"fmt"
	"strings"
	"time"

	"github.com/castle-destination/castle-destination/pipeline"
)

// progress reports periodically until the returned func is called, which
// also prints the last report.
func progress(cfg Config, src Source, start time.Time) func() {
	every := cfg.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
		if cfg.Terminal {
			every = 200 * time.Millisecond
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var last struct {
		at   time.Time
		sent int
	}
	last.at = start
	report := func(final bool) {
		o, err := pipeline.Observe(cfg.Registry)
		if err != nil {
			return
		}
		now := time.Now()
		sent := sumMap(o.Forwarded)
		rate := float64(sent) / max(now.Sub(start).Seconds(), 1e-3)
		if !final && now.Sub(last.at) > 0 && cfg.Terminal {
			// The bar shows a recent rate, the lines an average.
			rate = float64(sent-last.sent) / max(now.Sub(last.at).Seconds(), 1e-3)
		}
		last.at, last.sent = now, sent
		r := report{
			term: cfg.Terminal, final: final, shard: cfg.Shard, o: o, sent: sent, rate: rate,
			p: src.Progress(), elapsed: now.Sub(start),
		}
		if w, ok := cfg.Deliverer.(waitCounter); ok && !final {
			r.waiting = w.Waiting()
		}
		fmt.Fprint(cfg.Progress, r.line())
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report(false)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		report(true)
	}
}

// waitCounter is a Deliverer that tells how many users wait for their
// per-user pacing or a retry (destination.Client.Waiting).
type waitCounter interface{ Waiting() int }

// report is one progress line.
type report struct {
	term, final bool
	shard       Shard
	o           pipeline.Outcomes
	sent        int
	rate        float64
	waiting     int // users waiting for their pacing or a retry
	p           Progress
	elapsed     time.Duration
}

// fraction is how far the input is read: by bytes when sizes are known,
// else by units; -1 when unknown.
func (p Progress) fraction() float64 {
	switch {
	case p.Size > 0:
		return min(float64(p.Bytes)/float64(p.Size), 1)
	case p.Total > 0:
		return min(float64(p.Done)/float64(p.Total), 1)
	}
	return -1
}

func (r report) line() string {
	frac := r.p.fraction()
	eta := "?"
	if frac > 0 && !r.final {
		eta = (time.Duration(float64(r.elapsed)/frac) - r.elapsed).Round(time.Second).String()
	}
	if r.final {
		eta = "0s"
	}
	units := ""
	if r.p.Unit != "" {
		if r.p.Total > 0 {
			units = fmt.Sprintf("%d/%d %s, ", r.p.Done, r.p.Total, r.p.Unit)
		} else {
			units = fmt.Sprintf("%d %s, ", r.p.Done, r.p.Unit)
		}
	}
	stats := fmt.Sprintf("%s%d read, %d sent, %d dropped, %d dead-lettered, %.0f events/s",
		units, r.o.Consumed, r.sent, sumMap(r.o.Dropped), sumMap(r.o.DeadLettered), r.rate)
	if r.waiting > 0 {
		// A low rate with users waiting is Castle's per-user limit (or
		// retries), not a hang.
		users := "users"
		if r.waiting == 1 {
			users = "user"
		}
		stats += fmt.Sprintf(" (%d %s waiting for Castle's per-user limit or a retry)", r.waiting, users)
	}
	name := "replay"
	if s := r.shard.String(); s != "" {
		name = "replay shard " + s
	}
	if !r.term {
		if frac >= 0 {
			return fmt.Sprintf("%s: %5.1f%% %s, ETA %s\n", name, 100*frac, stats, eta)
		}
		return fmt.Sprintf("%s: %s\n", name, stats)
	}
	const width = 30
	bar := strings.Repeat("?", width)
	pct := "  ?  "
	if frac >= 0 {
		n := int(frac * width)
		bar = strings.Repeat("=", n) + strings.Repeat(" ", width-n)
		pct = fmt.Sprintf("%5.1f%%", 100*frac)
	}
	end := ""
	if r.final {
		end = "\n"
	}
	prefix := ""
	if s := r.shard.String(); s != "" {
		prefix = "shard " + s + " "
	}
	return fmt.Sprintf("\r%s[%s] %s %s ETA %s\x1b[K%s", prefix, bar, pct, stats, eta, end)
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
