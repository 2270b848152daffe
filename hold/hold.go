// Package hold keeps track of the systemic faults that hold delivery: a
// secret Castle refuses, a CASTLE_API_URL that names no API route or a
// host that does not exist, a TLS failure, a dead-letter or verdict topic
// that cannot be written. Such a fault says that every event would fail
// the same way, so the worker neither dead-letters nor commits anything:
// it holds, probes, and resumes by itself once the fault is gone.
//
// A Board is where the parts that detect faults (the Castle client, the
// pipeline's writers) report them, and where operators see them: /readyz
// answers 503 with the reason while any fault is held, the metric
// castle_destination_delivery_held{class} is 1, and one ERROR line names
// the setting to fix, repeated at most once per RepeatEvery. The Board
// decides nothing about delivery itself.
package hold

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The classes of systemic faults: the bounded values of the class label.
const (
	Auth            = "auth"              // Castle answered 401 or 403: the API secret
	Route           = "route"             // Castle answered 404 (or a redirect) on the API route, or its host does not exist: the URL
	TLS             = "tls"               // the TLS handshake with Castle failed
	DeadLetterTopic = "dead_letter_topic" // dead letters cannot be written
	VerdictTopic    = "verdict_topic"     // verdicts cannot be written
)

// Classes returns every class, in a fixed order.
func Classes() []string { return []string{Auth, Route, TLS, DeadLetterTopic, VerdictTopic} }

// DefaultRepeatEvery is how often the ERROR line of a fault still held is
// logged again.
const DefaultRepeatEvery = time.Minute

// Board records the faults currently held. Safe for concurrent use; a nil
// *Board ignores every call, for parts used without one.
type Board struct {
	log    *zap.Logger
	now    func() time.Time
	repeat time.Duration
	held   *prometheus.GaugeVec
	faults *prometheus.CounterVec

	mu     sync.Mutex
	active map[string]*fault
}

type fault struct {
	msg     string
	since   time.Time
	logged  time.Time
	reports int64 // since the last log line
}

// Options tune a Board; zero values take defaults.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RepeatEvery bounds how often the ERROR line of a held fault repeats
	// (default DefaultRepeatEvery).
	RepeatEvery time.Duration
}

// New returns an empty Board whose metrics are registered on reg (nil: not
// registered) and which logs to log (nil: no logs).
func New(log *zap.Logger, reg prometheus.Registerer, opt Options) (*Board, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.RepeatEvery <= 0 {
		opt.RepeatEvery = DefaultRepeatEvery
	}
	b := &Board{
		log: log, now: opt.Now, repeat: opt.RepeatEvery,
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "castle_destination", Name: "delivery_held",
			Help: "1 while delivery is held by a systemic fault of this class (auth, route, tls, dead_letter_topic, verdict_topic): no event is dead-lettered for it and no offset committed past the held events until it clears."},
			[]string{"class"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "castle_destination", Name: "systemic_faults_total",
			Help: "Failures classified as systemic (every event would fail the same way), by class."}, []string{"class"}),
		active: map[string]*fault{},
	}
	for _, c := range Classes() {
		b.held.WithLabelValues(c)
		b.faults.WithLabelValues(c)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.held, b.faults} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register hold metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Raise reports one failure of class; msg says what is wrong and which
// setting to fix ("CASTLE_API_SECRET was refused by Castle (401
// unauthorized)"). It must not contain a secret. The first report of a
// fault logs an ERROR line; while it stays held, the line is repeated at
// most once per RepeatEvery, with the number of failures meanwhile.
func (b *Board) Raise(class, msg string) {
	if b == nil {
		return
	}
	if !slices.Contains(Classes(), class) {
		class = Route // unreachable with the package's constants; keep the label bounded
	}
	b.faults.WithLabelValues(class).Inc()
	now := b.now()
	b.mu.Lock()
	f := b.active[class]
	first := f == nil
	if first {
		f = &fault{since: now}
		b.active[class] = f
		b.held.WithLabelValues(class).Set(1)
	}
	f.msg = msg
	f.reports++
	logIt := first || now.Sub(f.logged) >= b.repeat
	var reports int64
	var since time.Time
	if logIt {
		reports, since = f.reports, f.since
		f.logged, f.reports = now, 0
	}
	b.mu.Unlock()
	if logIt {
		b.log.Error("delivery held: "+msg+"; no event is dead-lettered for it and no offset committed past the held events until it clears",
			zap.String("class", class), zap.Time("since", since), zap.Int64("failures", reports))
	}
}

// Clear reports that class works again. It logs once, at INFO, if the
// fault was held.
func (b *Board) Clear(class string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	f := b.active[class]
	delete(b.active, class)
	b.mu.Unlock()
	if f == nil {
		return
	}
	b.held.WithLabelValues(class).Set(0)
	b.log.Info("delivery resumed: "+class+" fault cleared", zap.String("class", class),
		zap.Duration("held_for", b.now().Sub(f.since).Round(time.Millisecond)))
}

// Held reports whether class is held.
func (b *Board) Held(class string) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active[class] != nil
}

// Holding returns the class of any held fault, "" if none. Every class stops
// delivery now (a dead-letter or verdict topic that cannot be written
// pauses the Castle client too), so nothing in flight will settle while
// one is held: a stopping worker cancels rather than drains.
func (b *Board) Holding() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range Classes() {
		if b.active[c] != nil {
			return c
		}
	}
	return ""
}

// Ready is nil when nothing is held, and otherwise an error naming every
// held fault: the /readyz check.
func (b *Board) Ready() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.active) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(b.active))
	for c, f := range b.active {
		msgs = append(msgs, c+": "+f.msg)
	}
	sort.Strings(msgs)
	return errors.New("delivery held: " + strings.Join(msgs, "; "))
}
