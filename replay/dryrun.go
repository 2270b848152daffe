package replay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/internal/rawjson"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
)

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// paced spaces submissions so that events go out at most at one per every.
type paced struct {
	d     pipeline.Deliverer
	every time.Duration
	mu    sync.Mutex
	next  time.Time
	stop  chan struct{} // closed by StopSending: no more waiting
	once  sync.Once
}

func newPaced(d pipeline.Deliverer, every time.Duration) *paced {
	return &paced{d: d, every: every, stop: make(chan struct{})}
}

// Unwrap returns the deliverer paced: the pipeline learns from it whether
// Castle takes the API secret, and pauses it while an output cannot be
// written.
func (p *paced) Unwrap() pipeline.Deliverer { return p.d }

// StopSending ends every wait for a pacing slot, and stops the deliverer's
// sending if it can: batches waiting for their turn go to it at once and
// are canceled there, rather than each waiting out its slot after an
// interrupt.
func (p *paced) StopSending() {
	p.once.Do(func() { close(p.stop) })
	if s, ok := p.d.(sendStopper); ok {
		s.StopSending()
	}
}

func (p *paced) Submit(ctx context.Context, events []destination.Event, settled func(int, destination.Result)) {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(time.Duration(len(events)) * p.every)
	p.mu.Unlock()
	if wait := at.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		case <-p.stop:
			t.Stop()
		}
	}
	p.d.Submit(ctx, events, settled)
}

// DryRun is a Deliverer that writes each Castle request body as one NDJSON
// line and reports it delivered. Nothing is sent. A request token reads
// [redacted], as in the demo's samples: the output shows that one would
// be sent, never its value.
type DryRun struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

// NewDryRun writes to w; call Flush at the end.
func NewDryRun(w io.Writer) *DryRun { return &DryRun{w: bufio.NewWriterSize(w, 256<<10)} }

// Submit writes the bodies in order. After a write error (a closed pipe)
// every event is settled Canceled, so nothing is marked done.
func (d *DryRun) Submit(ctx context.Context, events []destination.Event, settled func(int, destination.Result)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res := make([]destination.Result, len(events))
	for i, ev := range events {
		if d.err == nil {
			if _, err := d.w.Write(hideToken(ev.Body)); err != nil {
				d.err = err
			} else if err := d.w.WriteByte('\n'); err != nil {
				d.err = err
			}
		}
		if d.err != nil || ctx.Err() != nil {
			res[i] = destination.Result{Status: destination.Canceled, Err: fmt.Errorf("dry run output: %w", firstErr(d.err, ctx.Err()))}
			continue
		}
		res[i] = destination.Result{Status: destination.Delivered}
	}
	for i, r := range res {
		settled(i, r)
	}
}

// requestTokenKey is the key of a body's request token, quotes included,
// as the mapping writes it: a member of the body itself.
var requestTokenKey = []byte(`"request_token"`)

// hideToken returns body with its request token's value, the body's own
// request_token member, read [redacted]. Nothing else is changed: a
// property whose key reads like a credential's is printed as it is sent.
func hideToken(body []byte) []byte {
	value := rawjson.Member(body, requestTokenKey)
	if rawjson.First(value) != '"' {
		return body
	}
	// value is body's own: its offset is what cap says.
	start := cap(body) - cap(value)
	out := make([]byte, 0, len(body))
	out = append(out, body[:start]...)
	out = append(out, `"[redacted]"`...)
	return append(out, body[start+len(value):]...)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// Flush writes out what is buffered and reports the first write error.
func (d *DryRun) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	return d.w.Flush()
}

// Window keeps forwarded messages whose event time is in [since, until); a
// zero bound is open. A message without a readable time is kept only when
// both bounds are open.
func Window(since, until time.Time) func(r *mapping.Result) bool {
	return func(r *mapping.Result) bool {
		t := r.Event.Time()
		if t.IsZero() {
			return since.IsZero() && until.IsZero()
		}
		return (since.IsZero() || !t.Before(since)) && (until.IsZero() || t.Before(until))
	}
}
