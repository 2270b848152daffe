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
		sent := 0
		for _, v := range o.Forwarded {
			sent += v
		}
		rate := float64(sent) / max(now.Sub(start).Seconds(), 1e-3)
		if !final && now.Sub(last.at) > 0 && cfg.Terminal {
			// The bar shows a recent rate, the lines an average.
			rate = float64(sent-last.sent) / max(now.Sub(last.at).Seconds(), 1e-3)
		}
		last.at, last.sent = now, sent
		done, total := src.Progress()
		fmt.Fprint(cfg.Progress, line(cfg.Terminal, final, o, sent, rate, done, total, now.Sub(start)))
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

func line(term, final bool, o pipeline.Outcomes, sent int, rate float64, done, total int64, elapsed time.Duration) string {
	frac := -1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	eta := "?"
	if frac > 0 && !final {
		eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
	}
	if final {
		eta = "0s"
	}
	stats := fmt.Sprintf("%d read, %d sent, %d dropped, %d dead-lettered, %.0f events/s",
		o.Consumed, sent, sumMap(o.Dropped), sumMap(o.DeadLettered), rate)
	if !term {
		if frac >= 0 {
			return fmt.Sprintf("replay: %5.1f%% %s, ETA %s\n", 100*frac, stats, eta)
		}
		return fmt.Sprintf("replay: %s\n", stats)
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
	if final {
		end = "\n"
	}
	return fmt.Sprintf("\r[%s] %s %s ETA %s\x1b[K%s", bar, pct, stats, eta, end)
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
